"""The ``socialalign`` command line: every option documented, config files with the right precedence, and each
command writing exactly what the library calls of the notebooks produce (same records, same adapter weights,
same replies under the same seed), with resumable persona extraction and generation."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
import torch

from socialalign_lib import cli
from socialalign_lib.cliargs import ConfigFileError

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# few steps, short replies: the numbers must match, not be good
TRAIN = [
    "--max-steps",
    "3",
    "--per-device-train-batch-size",
    "4",
    "--logging-steps",
    "1",
    "--save-steps",
    "2",
    "--learning-rate",
    "5e-3",
]
GEN = ["--batch-size", "4", "--max-new-tokens", "12"]
COMMON = ["--threads", "1", "--no-progress"]


def run(*argv: str) -> dict:
    """``socialalign argv`` in-process; its JSON summary line."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main([*argv, *COMMON])
    assert code == 0, out.getvalue()
    return json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def course(tiny_course):
    return tiny_course


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "data"
    summary = run("build", "--size", "tiny", "--seed", "0", "--out-dir", str(out))
    assert summary["out_dir"] == str(out)
    return out


# ------------------------------------------------------------------------------------------------ options


@pytest.mark.parametrize("name", [n for n, c in cli.COMMANDS.items() if c.delegate is None])
def test_every_option_of_every_command_is_documented(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([name, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    _, args = cli.command_parser(name)
    undocumented = [o.flag for o in args.options if not o.help.strip()]
    assert not undocumented, f"{name}: options without help {undocumented}"
    assert all(o.flag in text for o in args.options) and "--config" in text
    assert len({o.flag for o in args.options}) == len(args.options)  # no two fields share a flag


@pytest.mark.parametrize("name", ["collect", "bench"])
def test_delegated_commands_show_their_own_help(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([name, "--help"])
    assert exit_.value.code == 0
    assert "--help" in capsys.readouterr().out


def test_python_dash_m_lists_the_commands():
    proc = subprocess.run(
        [sys.executable, "-m", "socialalign_lib", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    for name in cli.COMMANDS:
        assert name in proc.stdout


def test_config_file_values_sit_between_defaults_and_options(tmp_path):
    parser, args = cli.command_parser("build")
    cfg = tmp_path / "build.toml"
    cfg.write_text(
        'size = "tiny"\nvariants = ["full"]\nk1 = 1.2\n[data.retrieval]\nk = 7\n[build]\nout_dir = "x"\n',
        encoding="utf-8",
    )
    c = args.build(parser.parse_args(["--config", str(cfg), "--k", "3"]))
    data = c["data"]
    assert (data.size, data.variants, data.retrieval.k1, data.retrieval.k) == ("tiny", ("full",), 1.2, 3)
    assert data.seed == 0 and data.retrieval.b == 0.75 and c["build"].out_dir == "x"  # untouched defaults
    assert args.build(parser.parse_args(["--config", str(cfg)]))["data"].retrieval.k == 7

    as_json = tmp_path / "build.json"
    as_json.write_text(json.dumps({"data": {"seed": 3, "retrieval": {"method": "recent"}}}), encoding="utf-8")
    data = args.build(parser.parse_args(["--config", str(as_json)]))["data"]
    assert (data.seed, data.retrieval.method) == (3, "recent")

    for bad, message in (('sizee = "tiny"\n', "unknown key 'sizee'"), ('k = "many"\n', "k")):
        cfg.write_text(bad, encoding="utf-8")
        with pytest.raises(ConfigFileError, match=message):
            args.build(parser.parse_args(["--config", str(cfg)]))


def test_the_shipped_paper_config_is_the_official_run():
    parser, args = cli.command_parser("train")
    c = args.build(
        parser.parse_args(
            [
                "--config",
                str(ROOT / "configs" / "paper" / "train_pac_lora_qwen7b.toml"),
                "--dataset",
                "d",
                "--learning-rate",
                "1e-5",
            ]
        )
    )
    model, sft = c["model"], c["model"].sft
    assert (model.base_model, model.method, model.n_experts, model.r, model.alpha, model.max_length) == (
        "Qwen/Qwen2.5-7B-Instruct",
        "pac_lora",
        3,
        8,
        16,
        1024,
    )
    assert (sft.num_train_epochs, sft.max_steps, sft.lr_scheduler_type, sft.bf16) == (2, -1, "cosine", True)
    assert sft.per_device_train_batch_size * sft.gradient_accumulation_steps == 16
    # the official method: per-token routing on the official spans, bf16 weights, no quantisation
    assert (model.routing, model.chat_config().spans) == ("token", "official")
    assert (model.dtype, model.load_in_4bit) == ("bfloat16", False)
    assert model.peft_config().routing == "token"
    assert sft.learning_rate == 1e-5 and c["train"].dataset == "d"  # the command line wins over the file
    # our QLoRA variant is a separate file, and says what it is
    q = args.build(
        parser.parse_args(
            [
                "--config",
                str(ROOT / "configs" / "paper" / "train_pac_lora_qwen7b_qlora.toml"),
                "--dataset",
                "d",
            ]
        )
    )["model"]
    assert (q.routing, q.load_in_4bit, q.chat_config().spans) == ("sequence", True, "record")


def test_same_field_name_in_two_groups_needs_a_table(tmp_path):
    parser, args = cli.command_parser("persona")
    flags = {o.dest: o.flag for o in args.options}
    assert (
        flags["openai.temperature"] == "--openai.temperature"
        and flags["hf.temperature"] == "--hf.temperature"
    )
    cfg = tmp_path / "p.toml"
    cfg.write_text("temperature = 0.5\n", encoding="utf-8")
    with pytest.raises(ConfigFileError, match="ambiguous"):
        args.build(parser.parse_args(["--config", str(cfg)]))
    cfg.write_text("[openai]\ntemperature = 0.5\nrequire_key = false\n", encoding="utf-8")
    c = args.build(parser.parse_args(["--config", str(cfg), "--hf.temperature", "0.9"]))
    assert (c["openai"].temperature, c["openai"].require_key, c["hf"].temperature) == (0.5, False, 0.9)


# ------------------------------------------------------------------------------------------------ build, persona


def test_build_writes_exactly_the_notebooks_records(built, course):
    from datasets import load_from_disk

    from socialalign_lib.data.read import read_jsonl

    saved = load_from_disk(str(built / "dataset"))
    assert list(saved) == list(course.dataset)
    for split, ds in course.dataset.items():
        assert saved[split].to_list() == ds.to_list(), split
        assert read_jsonl(built / "jsonl" / f"{split}.jsonl") == ds.to_list(), split
    info = json.loads((built / "build.json").read_text(encoding="utf-8"))
    assert info["source"] == "world" and info["counts"] == {s: len(d) for s, d in course.dataset.items()}


def test_build_in_two_processes_renders_the_same_records(course):
    from socialalign_lib.build.persona.extractor import personas_of
    from socialalign_lib.build.records.dataset import build_dataset

    variants = ("full", "without_history")
    one = build_dataset(
        course.world, course.config.retrieval, personas_of(course.personas), variants=variants
    )
    two = build_dataset(
        course.world, course.config.retrieval, personas_of(course.personas), variants=variants, num_proc=2
    )
    assert {s: d.to_list() for s, d in two.items()} == {s: d.to_list() for s, d in one.items()}


def test_persona_then_build_from_its_file_equals_the_notebooks_path(tmp_path, course):
    from datasets import load_from_disk

    first = run("persona", "--size", "tiny", "--out-dir", str(tmp_path / "personas"))
    assert first["users"] == len(course.world.users) == first["ok"] == first["backend_calls"]
    assert first["recovery"]["n_users"] == len(course.world.users)
    again = run("persona", "--size", "tiny", "--out-dir", str(tmp_path / "personas"))
    assert again["backend_calls"] == 0 and again["cache_hits"] == again["users"]  # resumed from the cache

    run(
        "build",
        "--size",
        "tiny",
        "--variants",
        "full",
        "--personas",
        str(tmp_path / "personas"),
        "--out-dir",
        str(tmp_path / "data"),
    )
    saved = load_from_disk(str(tmp_path / "data" / "dataset"))
    for split in course.dataset:
        assert saved[split].to_list() == course.split(split, "full").to_list(), split


def test_build_from_the_official_socialalign_file_into_one_split(tmp_path):
    from socialalign_lib.data.loaders.socialalign import load_socialalign_alpaca
    from socialalign_lib.data.read import read_jsonl

    official = ROOT / "tests" / "fixtures" / "socialalign" / "SocialWeibo_sample.json"
    summary = run(
        "build",
        "--cases",
        str(official),
        "--split",
        "test_topic",
        "--variants",
        "full",
        "--out-dir",
        str(tmp_path),
    )
    # only the full record has the history and persona a full prompt needs; nothing is invented for the others
    assert summary["counts"] == {"train": 0, "validation": 0, "test_user": 0, "test_topic": 1, "test_both": 0}
    rows = read_jsonl(tmp_path / "jsonl" / "test_topic.jsonl")
    source = load_socialalign_alpaca(official)
    assert rows[0]["instruction"] == source[0].instruction and rows[0]["output"] == source[0].output
    assert {r["split"] for r in rows} == {"test_topic"} and read_jsonl(
        tmp_path / "jsonl" / "train.jsonl"
    ) == []
    assert rows[0]["instruction"][slice(*rows[0]["news_span"])] == source[0].news


def test_build_round_trips_every_official_record_of_a_multi_topic_file(tmp_path):
    """`socialalign build --cases` on a file where one user answers two topics in several variants, out of order:
    every record is written back with the identical instruction and the parser's spans."""
    from socialalign_lib.data.loaders.socialalign import load_socialalign_alpaca
    from socialalign_lib.data.read import read_jsonl

    official = ROOT / "tests" / "fixtures" / "socialalign" / "SocialWeibo_multitopic.json"
    run("build", "--cases", str(official), "--out-dir", str(tmp_path))
    rows = {(r["case_id"], r["variant"]): r for r in read_jsonl(tmp_path / "jsonl" / "train.jsonl")}
    source = load_socialalign_alpaca(official)
    assert len({s.hashtag for s in source if s.user_name == "阿明"}) == 2
    for i, src in enumerate(source):
        row = rows[f"sa{i:06d}", src.variant]
        assert row["instruction"] == src.instruction, i
        assert (tuple(row["user_span"]), tuple(row["news_span"])) == (src.user_span, src.news_span)


class _SlowOpenAI:
    """A chat-completions endpoint that answers a fixed persona after a short delay and records how many
    requests were in flight at once."""

    ANSWER = "1. 兴趣话题：科技\n2. 语言风格：简洁\n3. 情感基调：积极\n4. 性格特征：理性\n5. 价值观：务实"

    def __init__(self, delay: float = 0.05) -> None:
        self.lock, self.active, self.peak, self.calls = threading.Lock(), 0, 0, 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers["Content-Length"]))
                with fake.lock:
                    fake.active += 1
                    fake.calls += 1
                    fake.peak = max(fake.peak, fake.active)
                time.sleep(delay)
                with fake.lock:
                    fake.active -= 1
                body = json.dumps(
                    {"choices": [{"message": {"role": "assistant", "content": fake.ANSWER}}]}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_persona_against_an_openai_endpoint_keeps_a_bounded_number_of_requests_in_flight(tmp_path):
    from socialalign_lib.data.read import read_jsonl

    server = _SlowOpenAI()
    try:
        args = (
            "persona",
            "--backend",
            "openai",
            "--base-url",
            server.url,
            "--model",
            "qwen-test",
            "--no-require-key",
            "--size",
            "tiny",
            "--limit",
            "12",
            "--max-workers",
            "4",
            "--out-dir",
            str(tmp_path),
        )
        summary = run(*args)
        assert summary["ok"] == 12 and server.calls == 12
        assert 2 <= server.peak <= 4  # concurrent, and never more than --max-workers
        rows = read_jsonl(tmp_path / "personas.jsonl")
        assert len(rows) == 12 and len({r["user_id"] for r in rows}) == 12  # one whole line per user
        assert rows[0]["persona"]["interests"] == "科技"
        assert run(*args)["backend_calls"] == 0 and server.calls == 12  # the rerun asks nobody
    finally:
        server.close()


# ------------------------------------------------------------------------------------------------ train, generate


@pytest.fixture(scope="module")
def trained(built, course, tmp_path_factory):
    """The same PAC-LoRA run twice: through `socialalign train` and through the library call notebook 03 makes."""
    from socialalign_lib.train.config import SocialLLMConfig, course_sft_config
    from socialalign_lib.train.socialllm import train_socialllm

    root = tmp_path_factory.mktemp("runs")
    summary = run("train", "--dataset", str(built), "--output-dir", str(root / "cli"), *TRAIN)
    cfg = SocialLLMConfig(
        sft=course_sft_config(
            max_steps=3, per_device_train_batch_size=4, logging_steps=1, save_steps=2, learning_rate=5e-3
        )
    )
    lib = train_socialllm(cfg, course.split("train"), root / "lib", progress=False)
    return summary, root / "cli", lib


def test_train_command_writes_the_library_run(trained):
    from safetensors.torch import load_file

    summary, cli_dir, lib = trained
    assert summary["output_dir"] == str(cli_dir) and not summary["loaded"]
    cli_state = json.loads((cli_dir / "socialllm.json").read_text(encoding="utf-8"))
    lib_state = json.loads((lib.output_dir / "socialllm.json").read_text(encoding="utf-8"))
    assert cli_state["run_hash"] == lib_state["run_hash"] and cli_state["finished"]
    assert cli_state["n_train"] == lib_state["n_train"] == summary["n_train"]
    losses = [[r["loss"] for r in s["history"] if "loss" in r] for s in (cli_state, lib_state)]
    assert len(losses[0]) == 3 and losses[0] == losses[1]
    assert summary["first_loss"] == losses[0][0] and summary["last_loss"] == losses[0][-1]
    a = load_file(cli_dir / "adapter" / "adapter_model.safetensors")
    b = load_file(lib.output_dir / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and any("gate" in k for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def library_replies(trained, course):
    from socialalign_lib.generate.decode import generate_replies
    from socialalign_lib.generate.sampling import GenerationConfig

    _, _, lib = trained
    return generate_replies(
        lib.model,
        lib.tokenizer,
        course.split("test_user"),
        GenerationConfig(batch_size=4, max_new_tokens=12),
        progress=False,
    )


def _replies(path: Path) -> pd.DataFrame:
    from socialalign_lib.data.read import read_jsonl

    return pd.DataFrame(read_jsonl(path))


def test_generate_command_writes_the_library_replies(trained, built, library_replies):
    _, cli_dir, _ = trained
    summary = run(
        "generate", "--run-dir", str(cli_dir), "--dataset", str(built), "--split", "test_user", *GEN
    )
    out = Path(summary["out"])
    assert out == cli.default_replies_path(cli_dir, "test_user", "full", 0)
    assert summary["records"] == summary["generated_now"] == len(library_replies)
    got = _replies(out)
    assert got["case_id"].tolist() == library_replies["case_id"].tolist()
    assert got["generated"].tolist() == library_replies["generated"].tolist()
    assert got["gate_a"].tolist() == library_replies["gate_a"].tolist()
    assert len(set(got["generated"])) > 1  # sampled replies, not one string repeated


def test_interrupted_generate_finishes_the_rest_without_duplicates(
    trained, built, library_replies, tmp_path, monkeypatch
):
    import socialalign_lib.data.append as io_mod  # where the replies file's appends go through

    _, cli_dir, _ = trained
    out = tmp_path / "replies.jsonl"
    base = (
        "generate",
        "--run-dir",
        str(cli_dir),
        "--dataset",
        str(built),
        "--split",
        "test_user",
        "--out",
        str(out),
        *GEN,
    )
    n = len(library_replies)

    # 1) stop after 5 records on purpose
    assert run(*base, "--limit", "5")["generated_now"] == 5

    # 2) Ctrl-C right after the next batch was written, then a crash in the middle of the following line
    real_append, calls = io_mod.append_jsonl, []

    def append_then_interrupt(*a, **k):
        written = real_append(*a, **k)
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return written

    monkeypatch.setattr(io_mod, "append_jsonl", append_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        cli.main([*base, *COMMON])
    monkeypatch.setattr(io_mod, "append_jsonl", real_append)
    assert len(_replies(out)) == 5 + 4
    with out.open("a", encoding="utf-8") as f:
        f.write('{"case_id": "t0000')  # a torn last line, as a kill during the write leaves

    # 3) the rerun does only what is missing
    summary = run(*base)
    assert summary["already_done"] == 9 and summary["records"] == n
    got = _replies(out)
    assert len(got) == n and not got.duplicated(["case_id", "variant"]).any()
    merged = got.set_index("case_id").loc[library_replies["case_id"]]
    assert merged["generated"].tolist() == library_replies["generated"].tolist()  # as if never interrupted
    assert run(*base)["generated_now"] == 0


def test_sharded_generate_then_evaluate_reports_the_library_metrics(
    trained, built, library_replies, tiny_world
):
    from socialalign_lib.crowd.distributions import label_replies
    from socialalign_lib.experiments import histories
    from socialalign_lib.results import micro_metrics
    from socialalign_lib.sentiment import train_world_labeller

    _, cli_dir, _ = trained
    files = [
        run(
            "generate",
            "--run-dir",
            str(cli_dir),
            "--dataset",
            str(built),
            "--split",
            "test_user",
            "--num-shards",
            "2",
            "--shard",
            str(i),
            *GEN,
        )["out"]
        for i in (0, 1)
    ]
    shards = [_replies(Path(f)) for f in files]
    assert set(shards[0]["case_id"]).isdisjoint(shards[1]["case_id"])
    both = pd.concat(shards).set_index("case_id").loc[library_replies["case_id"]]  # every case, once
    assert (
        both["generated"].tolist() == library_replies["generated"].tolist()
    )  # a row's reply ignores its batch

    summary = run("evaluate", "--replies", *files, "--size", "tiny", "--n-boot", "50")
    table = pd.read_csv(summary["out"])
    assert summary["gold"] == "dataset"  # the world's replies carry their true label
    world = tiny_world
    labelled = label_replies(library_replies, train_world_labeller(world))
    expected = pd.DataFrame(micro_metrics(labelled, histories=histories(world), n_boot=50, seed=0))
    assert table["split"].unique().tolist() == ["test_user"] and (table["n"] == len(library_replies)).all()
    assert "persona" in table["metric"].tolist()
    assert table["metric"].tolist() == expected["metric"].tolist()
    assert table["value"].tolist() == pytest.approx(expected["value"].tolist())
    assert summary["metrics"]["test_user/rouge-1"] == pytest.approx(
        expected.set_index("metric").loc["rouge-1", "value"], abs=1e-4
    )

    doubled = Path(files[0]).with_name("doubled.jsonl")
    doubled.write_text(Path(files[0]).read_text(encoding="utf-8") * 2, encoding="utf-8")
    assert (
        cli.main(["evaluate", "--replies", str(doubled), "--size", "tiny", *COMMON]) == 2
    )  # duplicates refused
