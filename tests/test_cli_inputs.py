"""The command line under bad input and beside other processes: one clear line and a non-zero exit instead of a
traceback, inputs never rewritten, one writer per output, builds swapped in whole, adapters verified before use,
and the README's route for the official files (build --cases --split, train, generate, evaluate) end to end."""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
from pathlib import Path

import pytest

from socialalign_lib import cli
from socialalign_lib.data.read import read_jsonl
from socialalign_lib.data.write import write_jsonl

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL = ROOT / "tests" / "fixtures" / "socialalign" / "SocialWeibo_sample.json"
COMMON = ["--threads", "1", "--no-progress"]


def call(*argv: str) -> tuple[int, str, str]:
    """``socialalign argv`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([*argv, *COMMON])
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def ok(*argv: str) -> dict:
    code, out, err = call(*argv)
    assert code == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cases(tiny_world):
    return [c.to_dict() for c in tiny_world.cases()[:4]]


# ------------------------------------------------------------------------------------------------ bad input


def _bad(case: dict, how: str) -> None:
    if how == "label":
        case["sentiment"] = "postive"
    elif how == "date":
        case["response"]["created_at"] = "yesterday 5pm"
    elif how == "empty":
        case["response"]["text"] = "  "
    elif how == "huge":
        case["topic"]["news"] = "新" * 1_000_000


@pytest.mark.parametrize(
    ("how", "field", "message"),
    [
        ("duplicate", "case_id", "duplicate"),
        ("label", "sentiment", "unknown label 'postive'"),
        ("date", "response.created_at", "not an ISO 8601 time"),
        ("empty", "response.text", "empty"),
        ("huge", "topic.news", "1000000 characters"),
    ],
)
def test_bad_case_files_end_in_one_line_naming_file_line_and_field(cases, tmp_path, how, field, message):
    rows = json.loads(json.dumps(cases))
    if how == "duplicate":
        rows[2]["case_id"] = rows[0]["case_id"]
    else:
        _bad(rows[2], how)
    path = tmp_path / "cases.jsonl"
    write_jsonl(path, rows)
    start = time.perf_counter()
    code, out, err = call("build", "--cases", str(path), "--out-dir", str(tmp_path / "out"))
    assert code == 2 and out == "" and time.perf_counter() - start < 60
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert f"{path} line 3, field '{field}'" in err and message in err
    assert not (tmp_path / "out").exists()
    code, _, err = call("build", "--cases", str(path), "--out-dir", str(tmp_path / "out"), "-v")
    assert code == 2 and "Traceback" in err  # -v keeps the traceback


def test_history_filter_that_leaves_no_record_is_an_error(cases, tmp_path):
    rows = json.loads(json.dumps(cases))
    for row in rows:
        for post in row["user"]["history"]:
            post["text"] = "@小王 转发微博"
    write_jsonl(tmp_path / "cases.jsonl", rows)
    code, _, err = call(
        "build",
        "--cases",
        str(tmp_path / "cases.jsonl"),
        "--history-filter",
        "--variants",
        "full",
        "--out-dir",
        str(tmp_path / "out"),
    )
    assert code == 2 and "no records were built" in err and "--history-filter" in err


def test_a_variant_typo_and_a_string_for_a_list_in_toml(tmp_path):
    code, _, err = call(
        "generate", "--run-dir", str(tmp_path), "--dataset", str(tmp_path), "--variant", "ful"
    )
    assert code == 2 and "--variant 'ful'" in err and "Traceback" not in err
    _, args = cli.command_parser("build")
    (tmp_path / "run.toml").write_text('variants = "full"\n', encoding="utf-8")
    assert args.file_values(tmp_path / "run.toml")["data.variants"] == ("full",)  # not ('f', 'u', 'l', 'l')


def test_extra_training_arguments_are_an_allow_list(tmp_path):
    for bad in ('{"push_to_hub": true}', '{"report_to": ["wandb"]}', '{"hub_model_id": "me/x"}'):
        code, _, err = call("train", "--dataset", str(tmp_path), "--extra", bad)
        assert code == 2 and "not allowed" in err
    from socialalign_lib.train import SFTConfig

    assert (
        SFTConfig(extra={"optim": "adamw_torch", "disable_tqdm": True}).training_arguments().optim
        == "adamw_torch"
    )


def test_build_refuses_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    code, _, err = call("build", "--cases", str(OFFICIAL), "--split", "test_user", "--out-dir", str(tmp_path))
    assert code == 2 and "notes.txt" in err and (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_an_interrupted_build_leaves_the_previous_build_whole(tmp_path, monkeypatch):
    out = tmp_path / "data"
    ok("build", "--cases", str(OFFICIAL), "--split", "test_user", "--variants", "full", "--out-dir", str(out))
    before = _tree(out)
    from socialalign_lib.build.records import dataset as records

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as a kill after the dataset is saved, before the JSONL copy and build.json

    monkeypatch.setattr(records, "export_jsonl", killed)
    with pytest.raises(KeyboardInterrupt):
        call(
            "build",
            "--cases",
            str(OFFICIAL),
            "--split",
            "test_topic",
            "--variants",
            "full",
            "--out-dir",
            str(out),
        )
    assert _tree(out) == before  # not test_topic data beside a test_user build.json
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # no staging folder left behind


# ------------------------------------------------------------------------------------------------ the README route


@pytest.fixture(scope="module")
def route(tmp_path_factory):
    """README step 3 for the official files, then train (tiny budget) and generate on that split."""
    root = tmp_path_factory.mktemp("route")
    data, run = root / "sw-test", root / "run"
    built = ok(
        "build",
        "--cases",
        str(OFFICIAL),
        "--split",
        "test_user",
        "--variants",
        "full",
        "--out-dir",
        str(data),
    )
    dataset_files = _tree(data)
    trained = ok(
        "train",
        "--dataset",
        str(data),
        "--split",
        "test_user",
        "--max-steps",
        "1",
        "--logging-steps",
        "1",
        "--per-device-train-batch-size",
        "2",
        "--output-dir",
        str(run),
    )
    generated = ok(
        "generate",
        "--run-dir",
        str(run),
        "--dataset",
        str(data),
        "--split",
        "test_user",
        "--batch-size",
        "2",
        "--max-new-tokens",
        "4",
    )
    return {
        "root": root,
        "data": data,
        "run": run,
        "built": built,
        "trained": trained,
        "generated": generated,
        "dataset_files": dataset_files,
    }


@pytest.mark.slow
def test_readme_route_for_the_official_files_builds_trains_and_generates(route):
    # the sample holds one record per variant; `--variants full` keeps the full one, rendered verbatim
    assert route["built"]["counts"] == {
        "train": 0,
        "validation": 0,
        "test_user": 1,
        "test_topic": 0,
        "test_both": 0,
    }
    assert route["trained"]["n_train"] == 1 and route["trained"]["first_loss"] is not None
    assert route["generated"]["records"] == 1 and route["generated"]["generated_now"] == 1
    replies = read_jsonl(route["generated"]["out"])
    assert sorted(r["case_id"] for r in replies) == sorted(
        r["case_id"] for r in read_jsonl(route["data"] / "jsonl" / "test_user.jsonl")
    )
    assert (
        _tree(route["data"]) == route["dataset_files"]
    )  # train and generate left no cache in the input folder
    code, _, err = call(
        "train",
        "--dataset",
        str(route["data"]),
        "--split",
        "train",
        "--max-steps",
        "1",
        "--output-dir",
        str(route["root"] / "empty"),
    )
    assert code == 2 and "no training records" in err, err  # an empty split loads, and says it is empty


@pytest.mark.slow
def test_evaluate_never_rewrites_its_input(route, tmp_path):
    replies = tmp_path / "replies.jsonl"
    replies.write_bytes(
        Path(route["generated"]["out"]).read_bytes() + b'{"case_id": "torn'
    )  # a writer mid-line
    before = replies.read_bytes()
    summary = ok(
        "evaluate",
        "--replies",
        str(replies),
        "--labeller",
        "lexicon",
        "--no-persona",
        "--n-boot",
        "10",
        "--gold",
        "labeller",
        "--out",
        str(tmp_path / "m.csv"),
    )
    assert summary["replies"] == route["built"]["counts"]["test_user"] and replies.read_bytes() == before


@pytest.mark.slow
def test_a_second_generate_on_one_replies_file_is_refused(route, tmp_path):
    from socialalign_lib.cli import load_records
    from socialalign_lib.generate.decode import generate_replies
    from socialalign_lib.generate.sampling import GenerationConfig
    from socialalign_lib.train.socialllm import load_socialllm

    lib = load_socialllm(route["run"])
    inner, entered, release = lib.model.generate, threading.Event(), threading.Event()

    def held(*args, **kwargs):  # the first writer, caught in the middle of its run
        entered.set()
        assert release.wait(60)
        return inner(*args, **kwargs)

    lib.model.generate = held
    out = tmp_path / "replies.jsonl"
    records = load_records(route["data"], "test_user")
    result: dict = {}
    first = threading.Thread(
        target=lambda: result.update(
            frame=generate_replies(
                lib.model,
                lib.tokenizer,
                records,
                GenerationConfig(batch_size=1, max_new_tokens=4),
                out_path=out,
                progress=False,
            )
        )
    )
    first.start()
    try:
        assert entered.wait(60)
        code, _, err = call(
            "generate",
            "--run-dir",
            str(route["run"]),
            "--dataset",
            str(route["data"]),
            "--split",
            "test_user",
            "--out",
            str(out),
        )
        assert code == 2 and "another process is writing" in err and "Traceback" not in err
    finally:
        release.set()
        first.join(120)
    rows = read_jsonl(out)
    assert len(result["frame"]) == len(records) and sorted(r["case_id"] for r in rows) == sorted(
        records["case_id"]
    )


@pytest.mark.slow
def test_a_damaged_adapter_is_named_before_use(route, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    def damaged(how: str) -> Path:
        run = tmp_path / how
        shutil.copytree(route["run"], run, ignore=shutil.ignore_patterns("replies"))
        weights = run / "adapter" / "adapter_model.safetensors"
        if how == "missing":
            weights.unlink()
        elif how == "corrupt":
            weights.write_bytes(b"\x00" * 7 + weights.read_bytes()[7:])
        elif (
            how == "keys"
        ):  # a file that reads fine but lacks a tensor; its checksum recorded as if trained so
            tensors = load_file(weights)
            tensors.pop(sorted(tensors)[0])
            save_file(tensors, weights)
            from socialalign_lib.train.run_folder import adapter_checksums

            state = json.loads((run / "socialllm.json").read_text(encoding="utf-8"))
            state["adapter_sha256"] = adapter_checksums(run / "adapter")
            (run / "socialllm.json").write_text(json.dumps(state), encoding="utf-8")
        return run

    for how, message in (
        ("missing", "adapter_model.safetensors: missing"),
        ("corrupt", "checksum differs"),
        ("keys", "1 missing"),
    ):
        code, _, err = call(
            "generate",
            "--run-dir",
            str(damaged(how)),
            "--dataset",
            str(route["data"]),
            "--split",
            "test_user",
            "--out",
            str(tmp_path / f"{how}.jsonl"),
        )
        assert code == 2 and message in err and "Traceback" not in err, (how, err)
        assert not (tmp_path / f"{how}.jsonl").exists()


# ------------------------------------------------------------------------------------------------ persona


def test_persona_against_a_dead_endpoint_stops_at_once_and_caches_nothing(tmp_path, monkeypatch):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-sent-0123")
    start = time.perf_counter()
    code, _, err = call(
        "persona",
        "--backend",
        "openai",
        "--base-url",
        f"http://127.0.0.1:{port}/v1",
        "--no-require-key",
        "--size",
        "tiny",
        "--limit",
        "5",
        "--out-dir",
        str(tmp_path),
    )
    assert code == 2 and "cannot reach" in err and time.perf_counter() - start < 30
    assert not (tmp_path / "personas.jsonl").exists() and "sk-never-sent" not in err
