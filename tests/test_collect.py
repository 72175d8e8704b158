"""The crawler against the local mock Weibo: faults cost nothing, kills cost nothing, parsing is exact."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from crawl_helpers import crawl_files as files
from crawl_helpers import mock_crawl_config
from hypothesis import given, settings
from hypothesis import strategies as st

from socialalign_lib.collect import (
    CrawlConfig,
    FaultConfig,
    FetchError,
    MockWeiboServer,
    RequestBudgetExhausted,
    WeiboClient,
    crawl,
    format_count,
    format_weibo_time,
    html_to_text,
    load_crawl,
    mblog_to_post,
    parse_count,
    parse_weibo_time,
    render_mblog,
    render_text,
)
from socialalign_lib.collect.parse import ParseError, cards_to_mblogs
from socialalign_lib.collect.report import compare_with_world, plot_crawl_stats
from socialalign_lib.collect.store import FILES, CrawlStore

ROOT = Path(__file__).resolve().parents[1]
FAULTY = dict(rate=0.3, retry_after_s=0, slow_s=0.6, seed=7)


@pytest.fixture(scope="module")
def world(tiny_world):
    return tiny_world


@pytest.fixture(scope="module")
def tags(world):
    return [t.hashtag for t in world.topics[:3]]


def fast(base_url: str, out_dir: Path, **kw) -> CrawlConfig:
    """Mock-speed settings: no rate limit, millisecond backoff, a timeout shorter than a 'slow' fault."""
    return mock_crawl_config(base_url, out_dir, kw.pop("timeout_s", 0.25), **kw)


@pytest.fixture(scope="module")
def reference(world, tags, tmp_path_factory):
    """A fault-free crawl: what every other crawl must reproduce byte for byte."""
    out = tmp_path_factory.mktemp("reference")
    with MockWeiboServer(world) as srv:
        summary = crawl(fast(srv.base_url, out, timeout_s=10), tags)
    assert summary.complete and summary.stats.retries == 0
    return out


# --- end to end -------------------------------------------------------------------------------------------


def test_reference_crawl_equals_the_world(world, tags, reference):
    data = load_crawl(reference)
    cmp = compare_with_world(data, world)
    assert cmp.perfect, cmp.mismatches
    assert len(data.topics) == len(tags)
    n_replies = sum(1 for r in world.responses if world.topic(r.topic_id).hashtag in tags)
    assert len(data.posts) == n_replies + len(tags)  # the replies and each topic's lead post
    assert len(data.comments) == n_replies
    # explicit, beyond the comparison helper: users with histories, reposts with their original, hashtags, likes
    repliers = {r.post.user_id for r in world.responses if world.topic(r.topic_id).hashtag in tags}
    assert {u.user_id for u in data.users} == repliers
    for user in data.users:
        assert user.to_dict() == world.user(user.user_id).to_dict()
    reposts = [p for u in data.users for p in u.history if p.retweet is not None]
    assert reposts and all(p.retweet.user_id.startswith("media") and p.retweet.hashtags for p in reposts)
    replies = {p.post_id: p for _, p in data.posts}
    for r in world.responses:
        if r.post.post_id in replies:
            got = replies[r.post.post_id]
            assert (got.text, got.hashtags, got.likes, got.created_at) == (
                r.post.text,
                r.post.hashtags,
                r.post.likes,
                r.post.created_at,
            )


def test_faulty_crawl_collects_exactly_the_same_records(world, tags, reference, tmp_path):
    out = tmp_path / "faulty"
    with MockWeiboServer(world, FaultConfig(**FAULTY)) as srv:
        summary = crawl(fast(srv.base_url, out), tags)
        served = srv.fault_counts()
    assert summary.complete
    faults = sum(v for k, v in served.items() if k != "ok")
    assert faults / sum(served.values()) > 0.2, served
    assert {"429", "503", "418", "malformed", "truncated", "slow"} <= set(served), served
    seen = summary.stats.outcomes
    assert seen["timeout"] and seen["truncated"] and seen["bad_json"] and seen["429"], seen
    assert files(out) == files(reference)  # 0 lost, 0 duplicated, same order
    for name in FILES:
        lines = (out / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) == len(set(lines))


def test_fault_pattern_is_reproducible(world, tags, tmp_path):
    events = []
    no_slow = {**FaultConfig().mix, "slow": 0.0}  # a generous timeout, so a busy machine cannot add a retry
    for run in range(2):
        with MockWeiboServer(world, FaultConfig(**{**FAULTY, "mix": no_slow})) as srv:
            crawl(fast(srv.base_url, tmp_path / f"run{run}", crawl_users=False, timeout_s=10), tags)
            events.append(list(srv.events))
    assert events[0] == events[1] and any(kind != "ok" for _, kind in events[0])


@pytest.mark.parametrize("budget", [3, 40, 150])
def test_resume_after_a_kill_gives_identical_files(world, tags, reference, tmp_path, budget):
    out = tmp_path / "killed"
    with MockWeiboServer(world, FaultConfig(**FAULTY)) as srv:
        with pytest.raises(RequestBudgetExhausted):
            crawl(fast(srv.base_url, out, max_requests=budget), tags)
        summary = crawl(fast(srv.base_url, out), tags)
    assert summary.complete
    assert files(out) == files(reference)


def test_many_kills_in_a_row(world, tags, reference, tmp_path):
    out = tmp_path / "many"
    with MockWeiboServer(world, FaultConfig(**FAULTY)) as srv:
        for _ in range(100):
            try:
                crawl(fast(srv.base_url, out, max_requests=30), tags)
                break
            except RequestBudgetExhausted:
                continue
        else:
            pytest.fail("the crawl made no progress across 100 resumptions")
    assert files(out) == files(reference)


def test_torn_write_after_the_checkpoint_is_cut_back(world, tags, reference, tmp_path):
    """A kill between appending a page and replacing the checkpoint leaves extra bytes: resume drops them."""
    out = tmp_path / "torn"
    with MockWeiboServer(world) as srv:
        with pytest.raises(RequestBudgetExhausted):
            crawl(fast(srv.base_url, out, max_requests=60), tags)
        posts = out / "posts_by_topic.jsonl"
        first = posts.read_text(encoding="utf-8").splitlines(keepends=True)[0]
        with open(posts, "a", encoding="utf-8") as f:
            f.write(first + first[: len(first) // 2])  # a duplicate and a half-written line
        crawl(fast(srv.base_url, out), tags)
    assert files(out) == files(reference)


def test_sigkilled_crawl_resumes_byte_identical(world, tags, reference, tmp_path):
    """A real SIGKILL of the CLI mid-crawl (with fsync on), then the same command again."""
    out = tmp_path / "sigkill"
    with MockWeiboServer(world, FaultConfig(**FAULTY)) as srv:
        cmd = [
            sys.executable,
            "-m",
            "socialalign_lib.collect",
            "--base-url",
            srv.base_url,
            "--out-dir",
            str(out),
            "--rate",
            "150",
            "--timeout",
            "0.25",
            "--backoff-base",
            "0.001",
            "--backoff-max",
            "0.005",
            "--no-progress",
        ]
        for tag in tags:
            cmd += ["--hashtag", tag]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "WEIBO_COOKIE": ""}
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ckpt = out / "checkpoint.json"
        deadline = time.time() + 30
        while time.time() < deadline and proc.poll() is None:
            if ckpt.exists() and len(json.loads(ckpt.read_text() or "{}").get("users_done", [])) >= 3:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL, (
            proc.stderr.read().decode()
        )  # killed mid-crawl, not finished
        rerun = subprocess.run(
            cmd[: cmd.index("--rate") + 1] + ["0"] + cmd[cmd.index("--rate") + 2 :],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert rerun.returncode == 0, rerun.stderr
    assert files(out) == files(reference)


def test_since_stops_the_timeline(world, tmp_path):
    user = max(world.users, key=lambda u: len(u.history))
    since = user.history[len(user.history) // 2].created_at
    with MockWeiboServer(world, page_size=3) as srv:
        summary = crawl(fast(srv.base_url, tmp_path, since=since), user_ids=[user.user_id])
        timeline_requests = srv.stats["endpoint:timeline"]
    got = load_crawl(tmp_path).users
    assert summary.users == 1 and got[0].history == [p for p in user.history if p.created_at >= since]
    assert timeline_requests < -(-len(user.history) // 3) + 1  # stopped before the last page


def test_output_restarts_without_resume_and_rejects_a_shrunk_file(world, tags, reference, tmp_path):
    out = tmp_path / "restart"
    with MockWeiboServer(world) as srv:
        crawl(fast(srv.base_url, out, crawl_users=False), tags[:1])
        crawl(fast(srv.base_url, out, resume=False), tags)
    assert files(out) == files(reference)
    (out / "users.jsonl").write_bytes(b"")
    with pytest.raises(ValueError, match="checkpoint vouches"):
        CrawlStore(out)


def test_unreadable_posts_are_skipped_and_missing_users_recorded(tmp_path):
    """A broken mblog is left out (logged, counted) instead of failing its page; a deleted account is done."""
    good = {"id": "1", "created_at": "刚刚", "text": "好", "user": {"id": "u1", "screen_name": "甲"}}
    bad = {"id": "2", "text": "坏", "user": {"id": "u2", "screen_name": "乙"}}  # no created_at

    def handler(request):
        cid, page = request.url.params.get("containerid", ""), request.url.params.get("page")
        if cid.startswith("100103") and page == "1":
            return httpx.Response(
                200, json={"ok": 1, "data": {"cards": [{"card_type": 9, "mblog": m} for m in (good, bad)]}}
            )
        if cid.startswith("100505") and cid.endswith("u1"):
            return httpx.Response(
                200, json={"ok": 1, "data": {"userInfo": {"id": "u1", "screen_name": "甲"}}}
            )
        return httpx.Response(200, json={"ok": 0, "msg": "这里还没有内容"})

    cfg = CrawlConfig(
        base_url="https://m.weibo.cn",
        out_dir=tmp_path,
        cookie=None,
        rate_per_s=None,
        progress=False,
        fsync=False,
        comment_posts=0,
    )
    with WeiboClient(cfg, transport=httpx.MockTransport(handler), sleep=lambda s: None) as client:
        summary = crawl(cfg, ["话题"], client=client)
    assert (summary.posts, summary.skipped, summary.users, summary.failed) == (1, 1, 1, [])
    state = json.loads((tmp_path / "checkpoint.json").read_text())
    assert state["users_done"] == [
        "u1",
        "u2",
    ]  # u2's profile said ok: 0 (each time it was asked): done, no record


# --- the cookie ---------------------------------------------------------------------------------------------


def test_cookie_is_sent_but_never_logged_or_written(world, tags, tmp_path, caplog, monkeypatch):
    secret = "SUB=_2A25LmockSecretCookieValue0123; _T_WM=98765secretwm"
    monkeypatch.setenv("WEIBO_COOKIE", secret)
    assert CrawlConfig().cookie == secret  # read from the environment by default
    caplog.set_level(logging.DEBUG)
    with MockWeiboServer(world, FaultConfig(**FAULTY)) as srv:
        cfg = fast(srv.base_url, tmp_path / "out", cookie=CrawlConfig().cookie)
        with WeiboClient(cfg) as client:
            assert "Secret" not in repr(client) and "Secret" not in repr(cfg) and cfg.has_cookie
            crawl(cfg, tags[:1], client=client)
            logging.getLogger("socialalign_lib.collect").warning("oops %s", cfg.cookie)
            assert srv.cookie_requests == srv.stats["requests"] > 0
            assert client.stats.retries > 0  # the retry path logged too
    for token in ("_2A25LmockSecretCookieValue0123", "98765secretwm"):
        assert token not in caplog.text
        for path in (tmp_path / "out").iterdir():
            assert token.encode() not in path.read_bytes(), path
    assert "<redacted>" in caplog.text


# --- the client's retries, backoff and rate limit (no network: httpx.MockTransport, fake sleep) -------------


def _client(handler, sleeps: list[float], **kw) -> WeiboClient:
    cfg = CrawlConfig(
        **{
            "base_url": "https://m.weibo.cn",
            "cookie": None,
            "rate_per_s": None,
            "retries": 4,
            "backoff_base_s": 1.0,
            "backoff_max_s": 6.0,
            **kw,
        }
    )
    return WeiboClient(cfg, transport=httpx.MockTransport(handler), sleep=sleeps.append)


def test_retry_after_is_honoured_and_backoff_grows():
    calls, sleeps = [], []

    def handler(request):
        calls.append(request)
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "7"})
        if len(calls) <= 4:
            return httpx.Response(503)
        return httpx.Response(
            200, json={"ok": 1, "data": {}}, headers={"Date": "Sat, 28 Dec 2019 12:00:00 GMT"}
        )

    with _client(handler, sleeps) as client:
        resp = client.profile("123")
    assert resp.ok and resp.now == dt.datetime(2019, 12, 28, 20, 0, 0)  # the server's clock, in China time
    assert sleeps[0] >= 7
    for k, s in enumerate(sleeps[1:], start=1):
        assert 0.5 * min(6.0, 2**k) <= s <= min(6.0, 2**k)
    assert calls[0].url.params["containerid"] == "100505123"


def test_retry_after_http_date_and_cap():
    sleeps: list[float] = []
    later = email_date(time.time() + 30)
    responses = iter(
        [
            httpx.Response(429, headers={"Retry-After": later}),
            httpx.Response(429, headers={"Retry-After": "99999"}),
            httpx.Response(200, json={"ok": 1}),
        ]
    )
    with _client(lambda r: next(responses), sleeps, max_retry_after_s=60) as client:
        client.profile("1")
    assert 25 <= sleeps[0] <= 31 and sleeps[1] == 60


def email_date(ts: float) -> str:
    import email.utils

    return email.utils.formatdate(ts, usegmt=True)


def test_non_retryable_status_and_giving_up():
    sleeps: list[float] = []
    with (
        _client(lambda r: httpx.Response(404), sleeps) as client,
        pytest.raises(FetchError, match="HTTP 404"),
    ):
        client.profile("1")
    assert sleeps == []
    with _client(lambda r: httpx.Response(200, text="<html>验证码</html>"), sleeps) as client:
        with pytest.raises(FetchError, match="gave up after 5 attempts"):
            client.timeline_page("1", 2)
        assert client.stats.outcomes["captcha"] == 5 and client.stats.gave_up == 1  # a captcha page is a ban
    with _client(lambda r: httpx.Response(200, text='{"ok": 1, "da'), sleeps) as client:
        with pytest.raises(FetchError, match="gave up after 5 attempts"):
            client.timeline_page("1", 2)
        assert client.stats.outcomes["bad_json"] == 5  # cut JSON is bad luck, not a ban


def test_timeouts_and_dropped_connections_are_retried():
    attempts = []

    def handler(request):
        attempts.append(1)
        if len(attempts) == 1:
            raise httpx.ReadTimeout("slow", request=request)
        if len(attempts) == 2:
            raise httpx.RemoteProtocolError("peer closed connection", request=request)
        return httpx.Response(200, json={"ok": 0})

    with _client(handler, []) as client:
        assert not client.search_page("#话题#", 3).ok
        assert client.stats.outcomes == {"timeout": 1, "truncated": 1, "200": 1}


def test_rate_limit_and_request_budget():
    sleeps: list[float] = []
    clock = [100.0]
    cfg = CrawlConfig(
        base_url="https://m.weibo.cn", cookie=None, rate_per_s=2.0, rate_jitter=0.0, max_requests=3
    )
    client = WeiboClient(
        cfg,
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"ok": 1})),
        sleep=lambda s: (sleeps.append(s), clock.__setitem__(0, clock[0] + s)),
        clock=lambda: clock[0],
    )
    for _ in range(3):
        client.profile("1")
    assert sleeps == [0.5, 0.5]
    with pytest.raises(RequestBudgetExhausted):
        client.profile("1")
    client.close()


# --- parsing ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, value",
    [
        (551894, 551894),
        ("1.2万", 12000),
        ("100万+", 1_000_000),
        ("3亿", 300_000_000),
        ("1,234", 1234),
        ("4.0824万", 40824),
        ("0", 0),
        ("", 0),
        (None, 0),
        ("转发", 0),
        ("评论", 0),
        ("赞", 0),
    ],
)
def test_parse_count(raw, value):
    assert parse_count(raw) == value


def test_parse_count_rejects_garbage():
    with pytest.raises(ParseError, match="unreadable count"):
        parse_count("很多")


@given(st.integers(min_value=0, max_value=10**12), st.integers(0, 2**32))
def test_count_round_trip(n, seed):
    assert parse_count(format_count(n, random.Random(seed))) == n


NOW = dt.datetime(2024, 3, 2, 10, 30, 0)


@pytest.mark.parametrize(
    "raw, iso",
    [
        ("Sat Dec 28 20:00:00 +0800 2019", "2019-12-28T20:00:00"),
        ("Sat Dec 28 12:00:00 +0000 2019", "2019-12-28T20:00:00"),
        ("刚刚", "2024-03-02T10:30:00"),
        ("30秒前", "2024-03-02T10:29:30"),
        ("3分钟前", "2024-03-02T10:27:00"),
        ("2小时前", "2024-03-02T08:30:00"),
        ("今天 08:05", "2024-03-02T08:05:00"),
        ("昨天 23:59", "2024-03-01T23:59:00"),
        ("昨天", "2024-03-01T00:00:00"),
        ("2天前", "2024-02-29T10:30:00"),
        ("02-28", "2024-02-28T00:00:00"),
        ("02-28 14:00", "2024-02-28T14:00:00"),
        ("2023-12-31", "2023-12-31T00:00:00"),
        ("2023-12-31 23:01:02", "2023-12-31T23:01:02"),
        ("2023-12-31T23:01:02", "2023-12-31T23:01:02"),
        ("12月31日 08:00", "2024-12-31T08:00:00"),
        ("2023年12月31日 08:00", "2023-12-31T08:00:00"),
    ],
)
def test_parse_weibo_time(raw, iso):
    assert parse_weibo_time(raw, NOW) == iso


def test_parse_weibo_time_uses_china_time_for_aware_now_and_rejects_garbage():
    utc_now = dt.datetime(2024, 3, 2, 2, 30, tzinfo=dt.timezone.utc)
    assert parse_weibo_time("刚刚", utc_now) == "2024-03-02T10:30:00"
    with pytest.raises(ParseError, match="unreadable created_at"):
        parse_weibo_time("很久以前", NOW)


@given(
    st.datetimes(min_value=dt.datetime(2009, 8, 14), max_value=dt.datetime(2030, 1, 1)).map(
        lambda d: d.replace(microsecond=0)
    ),
    st.integers(0, 24 * 60),
    st.integers(0, 2**32),
)
def test_time_round_trip(when, minutes_later, seed):
    now = when + dt.timedelta(minutes=minutes_later)
    iso = when.strftime("%Y-%m-%dT%H:%M:%S")
    assert parse_weibo_time(format_weibo_time(iso, now, random.Random(seed)), now) == iso


_PLAIN = st.lists(
    st.sampled_from(
        list("今天的新闻真不错@[]<>&;\"' \n赞哈abc123😄") + ["[赞]", "网页链接", "@好友", "&amp;"]
    ),
    max_size=20,
).map("".join)
_SEGMENTS = st.lists(st.one_of(_PLAIN, st.sampled_from(["#话题#", "#北京新进展#", "#抽奖#"])), max_size=6)


@settings(max_examples=200)
@given(_SEGMENTS)
def test_html_round_trip(segments):
    """Any text survives render → parse; the post's own hashtags come back in order, other '#…#' stay text."""
    text = "".join(segments)
    tags = list(dict.fromkeys(seg.strip("#") for seg in segments if seg in ("#话题#", "#北京新进展#")))
    got_text, got_tags = html_to_text(render_text(text, tags))
    assert got_text == text
    assert got_tags == tags


def test_formats_example_timeline_page():
    """The reconstructed timeline page of docs/formats.md#example-timeline-page - a grouped card, a repost, "100万+"."""
    page = {
        "ok": 1,
        "data": {
            "cards": [
                {
                    "card_type": 9,
                    "mblog": {
                        "id": "4454572602912349",
                        "bid": "ImTGkcdDn",
                        "mblogtype": 0,
                        "created_at": "Sat Dec 28 20:00:00 +0800 2019",
                        "text": '今天的<a href="https://m.weibo.cn/search?containerid=231522type%3D1%26q%3D%23星光大赏%23">'
                        '<span class="surl-text">#星光大赏#</span></a> ',
                        "source": "iPhone客户端",
                        "user": {"id": 1669879400, "screen_name": "Dear-迪丽热巴"},
                        "reposts_count": "100万+",
                        "comments_count": 182010,
                        "attitudes_count": 551894,
                        "isLongText": False,
                    },
                },
                {
                    "card_type": 11,
                    "card_group": [
                        {
                            "card_type": 9,
                            "mblog": {
                                "id": "4454081098040623",
                                "created_at": "Fri Dec 27 11:20:00 +0800 2019",
                                "text": "转发微博",
                                "user": {"id": 1669879400, "screen_name": "Dear-迪丽热巴"},
                                "reposts_count": 1000000,
                                "comments_count": 43523,
                                "attitudes_count": 190840,
                                "retweeted_status": {
                                    "id": "4454028484570123",
                                    "created_at": "Fri Dec 27 08:00:00 +0800 2019",
                                    "text": "…",
                                    "user": None,
                                    "reposts_count": "100万+",
                                    "comments_count": 3201,
                                    "attitudes_count": 18389,
                                },
                            },
                        }
                    ],
                },
                {"card_type": 58, "desc": "notice"},
            ]
        },
    }
    a, b = [mblog_to_post(m) for m in cards_to_mblogs(page["data"]["cards"])]
    assert (a.post_id, a.user_id, a.text, a.hashtags, a.reposts, a.likes) == (
        "4454572602912349",
        "1669879400",
        "今天的#星光大赏# ",
        ["星光大赏"],
        1_000_000,
        551894,
    )
    assert a.created_at == "2019-12-28T20:00:00"
    assert b.retweet is not None and b.retweet.user_id == "" and b.retweet.reposts == 1_000_000
    with pytest.raises(ParseError, match="mblog 1: .*created_at"):
        mblog_to_post({"id": 1, "text": "x"})


def test_mock_renders_the_hard_cases(world):
    """The mock really serves display counts, relative times, long-text cut-offs and reposts."""
    srv = MockWeiboServer(world)
    raw = json.dumps(
        [render_mblog(p, srv.now, long_text_chars=srv.long_text_chars) for p in srv.posts.values()],
        ensure_ascii=False,
    )
    for needle in ('万"', "今天", "全文", "retweeted_status", "surl-text", "url-icon"):
        assert needle in raw, needle


def test_plot_crawl_stats(world, tags, tmp_path):
    with MockWeiboServer(world, FaultConfig(**FAULTY)) as srv:
        summary = crawl(fast(srv.base_url, tmp_path, crawl_users=False), tags[:1])
    fig = plot_crawl_stats(summary.stats)
    assert (
        fig.axes[0].get_ylabel() == "failed HTTP attempts"
        and fig.axes[1].get_yticklabels()[0].get_text() == "200"
    )
