"""The crawler's silent endings, made loud: an expired login, a transient ``ok: 0``, a lasting ban, a second
writer and a cookie with a stray ``\\r``. Each case is injected by the local mock (127.0.0.1 only); in each,
nothing collected is lost, the user is told what happened and how to go on, and a resume ends byte-identical
to a crawl that never saw the fault."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from crawl_helpers import crawl_files as files
from crawl_helpers import mock_crawl_config

from socialalign_lib.collect import (
    CrawlBanned,
    CrawlConfig,
    CrawlStore,
    FaultConfig,
    FetchError,
    LoginRequired,
    MockWeiboServer,
    OutputLocked,
    WeiboClient,
    crawl,
)
from socialalign_lib.collect.__main__ import main as collect_main
from socialalign_lib.world import generate_world

ROOT = Path(__file__).resolve().parents[1]
NO_SLOW = {**FaultConfig().mix, "slow": 0.0}  # with a generous timeout a 'slow' fault only costs wall time
FAST = [
    "--rate",
    "0",
    "--timeout",
    "10",
    "--backoff-base",
    "0.001",
    "--backoff-max",
    "0.005",
    "--no-progress",
    "--no-fsync",
]


@pytest.fixture(scope="module")
def world():
    return generate_world(size="tiny", seed=0)


@pytest.fixture(scope="module")
def tags(world):
    return [t.hashtag for t in world.topics[:2]]


@pytest.fixture(autouse=True)
def no_cookie_from_the_environment(monkeypatch):
    monkeypatch.delenv("WEIBO_COOKIE", raising=False)


def fast(base_url: str, out_dir: Path, **kw) -> CrawlConfig:
    return mock_crawl_config(base_url, out_dir, kw.pop("timeout_s", 10), **kw)


@pytest.fixture(scope="module")
def reference(world, tags, tmp_path_factory):
    """A fault-free crawl: what every crawl below must end up with, byte for byte."""
    out = tmp_path_factory.mktemp("reference")
    with MockWeiboServer(world) as srv:
        summary = crawl(fast(srv.base_url, out), tags)
    assert summary.complete and summary.users > 10
    # each search's end is asked about twice more; a timeline that delivered the profile's statuses_count is not
    assert summary.stats.confirmations == 2 * len(tags)
    return out


def cli(srv: MockWeiboServer, out: Path, tags: list[str], *extra: str) -> list[str]:
    argv = ["--base-url", srv.base_url, "--out-dir", str(out), *FAST, *extra]
    for tag in tags:
        argv += ["--hashtag", tag]
    return argv


def run_cli(argv: list[str], capsys) -> tuple[int, dict | None, str]:
    status = collect_main(argv)
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.startswith("{")]
    return status, (json.loads(lines[-1]) if lines else None), captured.err


def pending(out: Path) -> dict:
    state = json.loads((out / "checkpoint.json").read_text(encoding="utf-8"))
    return {
        "hashtags_open": [t for t, s in state["search"].items() if not s["done"]],
        "users_open": [u for u in state["user_queue"] if u not in state["users_done"]],
    }


# --- 1. an expired login ------------------------------------------------------------------------------------


@pytest.mark.parametrize("expiry", ["ok-100", "302"])
@pytest.mark.parametrize(
    "after", [3, 7, 60]
)  # during the search, the comments, the users (116 requests in all)
def test_expired_login_stops_keeps_the_unit_pending_and_resumes(
    world, tags, reference, tmp_path, capsys, expiry, after
):
    out = tmp_path / "crawl"
    with MockWeiboServer(world, FaultConfig(login_expires_after=after, login_expiry=expiry)) as srv:
        status, summary, err = run_cli(cli(srv, out, tags), capsys)
        assert status == 4, err
        assert "cookie expired / login required" in err and "rerun the same command" in err
        assert summary["stopped"] == "login_required" and "Traceback" not in err
        assert srv.stats[f"fault:login:{expiry}"] == 1  # stopped at the first such answer, no retries
        open_units = pending(out)
        assert open_units["hashtags_open"] or open_units["users_open"]  # the unit in progress was not closed
        before = files(out)
        status, _, _ = run_cli(cli(srv, out, tags), capsys)  # still logged out: stops again, changes nothing
        assert status == 4 and files(out) == before and srv.stats[f"fault:login:{expiry}"] == 2
        srv.faults = FaultConfig()  # a fresh cookie
        status, summary, err = run_cli(cli(srv, out, tags), capsys)
    assert status == 0, err
    assert summary["stopped"] is None and summary["failed"] == []
    assert files(out) == files(reference)  # 0 lost, 0 duplicated


def test_client_reads_login_answers_as_login_required():
    sleeps: list[float] = []
    cfg = CrawlConfig(base_url="https://m.weibo.cn", cookie="SUB=abcdef123456", rate_per_s=None, retries=4)
    answers = {
        "ok": httpx.Response(
            200, json={"ok": -100, "url": "https://passport.weibo.cn/signin/welcome?entry=mweibo"}
        ),
        "302": httpx.Response(
            302, headers={"Location": "https://passport.weibo.cn/signin/welcome?entry=mweibo&r=x"}
        ),
        "login": httpx.Response(302, headers={"Location": "/login?backURL=%2F"}),
    }
    for name, answer in answers.items():
        with WeiboClient(
            cfg, transport=httpx.MockTransport(lambda r, a=answer: a), sleep=sleeps.append
        ) as client:
            with pytest.raises(LoginRequired, match="login" if name != "ok" else "-100"):
                client.timeline_page("1", 3)
            assert client.stats.requests == 1 and sleeps == []
    # another redirect is still a plain failure of this unit, not a login
    other = httpx.Response(302, headers={"Location": "https://m.weibo.cn/detail/1"})
    with (
        WeiboClient(cfg, transport=httpx.MockTransport(lambda r: other), sleep=sleeps.append) as client,
        pytest.raises(FetchError, match="HTTP 302"),
    ):
        client.profile("1")


# --- 1b. a transient ok: 0 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mix", [{"empty": 1.0}, {**NO_SLOW, "empty": 3.0}], ids=["ok0", "ok0+all"])
def test_transient_ok0_is_asked_again_and_nothing_is_lost(world, tags, reference, tmp_path, mix):
    faults = FaultConfig(rate=0.3, mix=mix, retry_after_s=0, max_consecutive=2, seed=3)
    with MockWeiboServer(world, faults) as srv:
        summary = crawl(fast(srv.base_url, tmp_path / "crawl"), tags)
        served = srv.fault_counts()
    assert served["empty"] > 5, served
    assert (
        summary.complete and summary.stats.confirmations > 5
    )  # the faults were met (116 requests without them)
    assert files(tmp_path / "crawl") == files(reference)


def test_believing_a_transient_ok0_would_lose_records(world, tags, reference, tmp_path):
    """The check above can fail: with no confirmation (the old behaviour) the same faults lose records."""
    faults = FaultConfig(rate=0.3, mix={"empty": 1.0}, max_consecutive=2, seed=3)
    with MockWeiboServer(world, faults) as srv:
        summary = crawl(fast(srv.base_url, tmp_path / "crawl", end_confirmations=0), tags)
    assert summary.complete  # exit 0 ...
    got, want = files(tmp_path / "crawl"), files(reference)
    assert sum(v.count(b"\n") for v in got.values()) < sum(
        v.count(b"\n") for v in want.values()
    )  # ... records lost


def test_a_real_end_is_still_an_end(tmp_path):
    """A listing that really ends costs `end_confirmations` more asks, then closes; a deleted account is done."""
    asked: list[str] = []

    def handler(request):
        cid = request.url.params.get("containerid", "")
        asked.append(cid[:6])
        return httpx.Response(200, json={"ok": 0, "msg": "这里还没有内容", "data": {"cards": []}})

    cfg = CrawlConfig(
        base_url="https://m.weibo.cn",
        out_dir=tmp_path,
        cookie=None,
        rate_per_s=None,
        progress=False,
        fsync=False,
        end_confirmations=2,
    )
    with WeiboClient(cfg, transport=httpx.MockTransport(handler), sleep=lambda s: None) as client:
        summary = crawl(cfg, ["话题"], ["u1"], client=client)
    assert summary.complete and asked == ["100103"] * 3 + ["100505"] * 3
    assert pending(tmp_path) == {"hashtags_open": [], "users_open": []}


# --- 2. a lasting ban, the circuit breaker, --rate 0, the request budget -------------------------------------


@pytest.mark.parametrize("ban", ["418", "captcha"])
def test_lasting_ban_trips_the_breaker_and_resumes(world, tags, reference, tmp_path, capsys, ban):
    out = tmp_path / "crawl"
    after = 60
    with MockWeiboServer(world, FaultConfig(banned_after=after, ban=ban)) as srv:
        status, summary, err = run_cli(cli(srv, out, tags, "--max-bans", "8", "--retries", "5"), capsys)
        assert status == 5, err
        assert "banned" in err and "rerun the same command" in err and "Traceback" not in err
        assert summary["stopped"] == "banned"
        assert srv.stats["requests"] - after == 8  # not every pending unit's full retries
        srv.faults = FaultConfig()  # the ban is lifted
        status, summary, err = run_cli(cli(srv, out, tags), capsys)
    assert status == 0, err
    assert files(out) == files(reference)


def test_ban_streak_needs_bans_without_a_success_between():
    seq = iter(["418", "418", "ok", "captcha", "418", "ok", "418", "418", "418"])

    def handler(request):
        kind = next(seq)
        if kind == "ok":
            return httpx.Response(200, json={"ok": 1, "data": {}})
        if kind == "captcha":
            return httpx.Response(
                302, headers={"Location": "https://passport.weibo.com/visitor/visitor?entry=miniblog"}
            )
        return httpx.Response(418)

    cfg = CrawlConfig(
        base_url="https://m.weibo.cn", cookie=None, rate_per_s=None, retries=9, max_consecutive_bans=3
    )
    with WeiboClient(cfg, transport=httpx.MockTransport(handler), sleep=lambda s: None) as client:
        client.profile("1")
        client.profile("1")
        with pytest.raises(CrawlBanned, match="3 answers in a row"):
            client.profile("1")
        assert client.stats.outcomes["captcha"] == 1


def test_rate_0_is_refused_against_the_live_site(tmp_path, capsys, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("a request was sent")

    monkeypatch.setattr(httpx.Client, "send", no_network)
    out = tmp_path / "live"
    status = collect_main(
        ["--base-url", "https://m.weibo.cn", "--rate", "0", "--hashtag", "话题", "--out-dir", str(out)]
    )
    err = capsys.readouterr().err
    assert status == 2 and "--rate 0" in err and "Traceback" not in err and not out.exists()
    for host, allowed in [
        ("http://127.0.0.1:8000", True),
        ("http://localhost:1", True),
        ("http://[::1]:1", True),
        ("http://192.168.1.2", False),
        ("https://m.weibo.cn.evil.example", False),
    ]:
        cfg = CrawlConfig(base_url=host, cookie=None, rate_per_s=None)
        if allowed:
            WeiboClient(cfg).close()
        else:
            with pytest.raises(ValueError, match="polite rate"):
                WeiboClient(cfg)
    assert CrawlConfig(cookie=None).rate_per_s == 0.2  # the live default stays polite
    with pytest.raises(ValueError, match="rate_per_s"):
        CrawlConfig(cookie=None, rate_per_s=-1)


def test_request_budget_ends_with_a_summary_not_a_traceback(world, tags, reference, tmp_path, capsys):
    out = tmp_path / "crawl"
    with MockWeiboServer(world) as srv:
        status, summary, err = run_cli(cli(srv, out, tags, "--max-requests", "25"), capsys)
        assert status == 3 and "Traceback" not in err and "request budget of 25 used up" in err
        assert summary["stopped"] == "request_budget" and summary["requests"] == 25 and summary["posts"] > 0
        status, _, err = run_cli(cli(srv, out, tags), capsys)
    assert status == 0, err
    assert files(out) == files(reference)


# --- 3. one writer per output folder --------------------------------------------------------------------------


def test_a_second_collect_on_the_same_output_is_refused(world, tags, reference, tmp_path, capsys):
    out = tmp_path / "crawl"
    with MockWeiboServer(world) as srv:
        argv = [sys.executable, "-m", "socialalign_lib.collect", *cli(srv, out, tags)]
        argv[argv.index("--rate") + 1] = "60"  # a few seconds long, so the second writer meets it mid-crawl
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.time() + 30
        while not (out / "checkpoint.json").exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        status, _, err = run_cli(cli(srv, out, tags), capsys)
        assert proc.poll() is None, "the first crawl ended before the second one tried"
        assert status == 6 and "another crawl is writing to this folder" in err and "Traceback" not in err
        with pytest.raises(OutputLocked):
            CrawlStore(out)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert files(out) == files(reference)  # nothing duplicated, nothing cut


def test_the_lock_is_held_while_open_and_released_after(tmp_path):
    with CrawlStore(tmp_path) as store:
        with pytest.raises(OutputLocked, match="another crawl"):
            CrawlStore(tmp_path)
        store.commit({"topics": [{"topic_id": "t1"}]})
    with CrawlStore(tmp_path) as again:  # released: a resume opens it
        assert again.has("topics", "t1")
    with pytest.raises(RuntimeError, match="closed"):
        store.commit({"topics": [{"topic_id": "t2"}]})


@pytest.mark.parametrize("resume", [True, False])
def test_files_of_a_folder_without_checkpoint_are_never_cut(world, tmp_path, resume):
    """Pointing --out-dir at a world's folder must not empty its users.jsonl."""
    foreign = tmp_path / "users.jsonl"
    foreign.write_text(json.dumps(world.users[0].to_dict(), ensure_ascii=False) + "\n", encoding="utf-8")
    before = foreign.read_bytes()
    with pytest.raises(ValueError, match="no checkpoint.json"):
        CrawlStore(tmp_path, resume=resume)
    assert foreign.read_bytes() == before
    CrawlStore(tmp_path / "fresh").close()  # an empty folder is fine


# --- 6b. the cookie -------------------------------------------------------------------------------------------

SECRET_PARTS = ("_2A25LmockSecretCookieValue0123", "98765secretwm")
SECRET = f"SUB={SECRET_PARTS[0]}; _T_WM={SECRET_PARTS[1]}"


def test_cookie_ending_in_cr_works_and_never_shows_with_verbose(world, tags, tmp_path):
    out = tmp_path / "crawl"
    with MockWeiboServer(world, FaultConfig(rate=0.5, mix=NO_SLOW, retry_after_s=0, seed=7)) as srv:
        argv = [sys.executable, "-m", "socialalign_lib.collect", *cli(srv, out, tags[:1], "--no-users", "-v")]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "WEIBO_COOKIE": SECRET + "\r"}
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert srv.cookie_requests == srv.stats["requests"] > 0  # the (stripped) cookie was sent every time
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1])["retries"] > 0
    assert (
        "DEBUG httpcore.http11" in proc.stderr and ", retry 1 in" in proc.stderr
    )  # -v showed every debug log
    for token in SECRET_PARTS:
        assert token not in proc.stdout + proc.stderr
        for path in out.iterdir():
            assert token.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    "bad", [SECRET.replace("; ", ";\n"), SECRET + "\x1bx", SECRET.replace("_T_WM", "_T_微")]
)
def test_a_broken_cookie_is_refused_without_showing_it(tmp_path, capsys, monkeypatch, bad):
    monkeypatch.setenv("WEIBO_COOKIE", bad)
    status = collect_main(
        ["--base-url", "http://127.0.0.1:9", "--hashtag", "话题", "--out-dir", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert status == 2 and "cookie (WEIBO_COOKIE)" in err and "Traceback" not in err
    assert all(token not in err for token in SECRET_PARTS)
    assert (
        CrawlConfig(cookie=f"  {SECRET}\r\n").cookie == SECRET and CrawlConfig(cookie=" \r\n").cookie is None
    )


def test_cookie_is_redacted_from_every_logger(caplog):
    caplog.set_level(logging.DEBUG)
    cfg = CrawlConfig(base_url="https://m.weibo.cn", cookie=SECRET, rate_per_s=0.2)
    with WeiboClient(cfg, transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"ok": 1}))):
        logging.getLogger("httpcore.http11").debug(
            "send_request_headers.failed exception=%r",
            ValueError(f"Illegal header value {SECRET.encode()!r}"),
        )
        logging.getLogger("httpx").info("headers %s", {"Cookie": SECRET})
        try:
            raise RuntimeError(f"cookie {SECRET}")
        except RuntimeError:
            logging.getLogger("some.other.library").exception("failed")
    assert caplog.text.count("<redacted>") >= 3
    for token in SECRET_PARTS:
        assert token not in caplog.text
        for record in caplog.records:
            assert token not in record.getMessage() and token not in (record.exc_text or "")


# --- the mock's new faults ------------------------------------------------------------------------------------


def test_fault_config_names_its_lasting_states():
    f = FaultConfig(login_expires_after=5, banned_after=2, ban="captcha")
    assert [f.lasting(n) for n in (0, 2, 5)] == [None, "ban:captcha", "login:ok-100"]
    with pytest.raises(ValueError, match="login_expiry"):
        FaultConfig(login_expiry="401")
    with pytest.raises(ValueError, match="mix"):
        FaultConfig(rate=0.1, mix={"nope": 1.0})
