"""The train/ and generate/ packages: the public gate helpers, the one replies file, the old import paths, and the
import direction (training never imports generation; the CLI's replies path does not import torch)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from socialalign_lib.generate.reply_file import REPLY_COLUMNS, ReplyFile, reply_key, reply_row
from socialalign_lib.pac_lora import (
    PacLoraConfig,
    gate_weights,
    get_pac_model,
    is_pac_model,
    mean_gates,
    use_gate_mode,
)

LIB = Path(__file__).resolve().parents[1] / "socialalign_lib"


def _tiny_pac(routing: str):
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=0,
    )
    torch.manual_seed(1)
    return get_pac_model(Qwen2ForCausalLM(config), PacLoraConfig(routing=routing, init_weights=False)).eval()


def _run(model, lengths=(12, 9)):
    """One left-padded prefill; spans in each row's own coordinates: user = first third, news = second third."""
    width = max(lengths)
    ids = torch.zeros((len(lengths), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        ids[i, width - n :] = torch.randint(1, 50, (n,), generator=torch.Generator().manual_seed(i))
        mask[i, width - n :] = 1
    spans = torch.tensor([[[0, n // 3], [n // 3, 2 * n // 3]] for n in lengths])
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask, pac_spans=spans)
    return spans, width - torch.tensor(lengths)


@pytest.mark.parametrize("routing", ["sequence", "token"])
def test_mean_gates_average_each_span_then_the_layers(routing):
    model = _tiny_pac(routing)
    spans, pads = _run(model)
    gate_a, gate_b = mean_gates(model)
    expected_a, expected_b = [], []
    for a, b in gate_weights(model).values():
        if routing == "token":  # by hand: the mean over the span's (padded-coordinate) tokens
            a = torch.stack(
                [a[i, pads[i] + spans[i, 1, 0] : pads[i] + spans[i, 1, 1]].mean(0) for i in range(len(a))]
            )
            b = torch.stack(
                [b[i, pads[i] + spans[i, 0, 0] : pads[i] + spans[i, 0, 1]].mean(0) for i in range(len(b))]
            )
        expected_a.append(a)
        expected_b.append(b)
    torch.testing.assert_close(gate_a, torch.stack(expected_a).float().mean(0))
    torch.testing.assert_close(gate_b, torch.stack(expected_b).float().mean(0))
    torch.testing.assert_close(gate_a.sum(-1), torch.ones(2))
    assert not torch.allclose(
        gate_a, torch.full_like(gate_a, 1 / 3)
    )  # random gates: the test can see a mix-up


def test_use_gate_mode_switches_and_restores_every_layer():
    model = _tiny_pac("sequence")
    assert is_pac_model(model) and not is_pac_model(torch.nn.Linear(2, 2))
    with use_gate_mode(model, "uniform"):
        _run(model)
        gate_a, gate_b = mean_gates(model)
    torch.testing.assert_close(gate_a, torch.full_like(gate_a, 1 / 3))
    _run(model)
    assert not torch.allclose(mean_gates(model)[0], torch.full_like(gate_a, 1 / 3))
    with (
        pytest.raises(ValueError, match="needs a PAC-LoRA model"),
        use_gate_mode(torch.nn.Linear(2, 2), "uniform"),
    ):
        pass


def _records(n):
    return [{"case_id": f"c{i}", "variant": "full", "output": f"ref {i}"} for i in range(n)]


def test_reply_file_resumes_appends_and_keeps_input_order(tmp_path):
    path = tmp_path / "replies" / "r.jsonl"
    path.parent.mkdir()
    records = _records(5)
    with ReplyFile.open(path) as replies:
        assert replies.pending(records) == records
        replies.append(records[3:4], [reply_row(records[3], "three", [], [])])
    with path.open("a", encoding="utf-8") as f:  # a killed writer's torn last line
        f.write('{"case_id": "c1", "gener')
    with ReplyFile.open(path) as replies:
        todo = replies.pending(records)
        assert [r["case_id"] for r in todo] == ["c0", "c1", "c2", "c4"]
        replies.append(todo, [reply_row(r, f"new {r['case_id']}", [0.5], [0.5]) for r in todo])
        frame = replies.frame(records)
    assert list(frame.columns) == list(REPLY_COLUMNS)
    assert frame["case_id"].tolist() == [r["case_id"] for r in records]
    assert frame["generated"].tolist() == ["new c0", "new c1", "new c2", "three", "new c4"]
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert sorted(reply_key(r) for r in lines) == sorted(reply_key(r) for r in records)  # each row once


def test_reply_file_without_a_path_writes_nothing(tmp_path):
    records = _records(2)
    with ReplyFile.open(None) as replies:
        replies.append(replies.pending(records), [reply_row(r, "x", [], []) for r in records])
        assert replies.frame(records)["generated"].tolist() == ["x", "x"]
    assert list(tmp_path.iterdir()) == []


def test_old_import_paths_are_the_new_objects():
    from socialalign_lib import evaluation, experiments, run_files, socialllm, train, vllm_backend
    from socialalign_lib.generate import decode, paths, reply_file, sampling
    from socialalign_lib.generate import vllm as vllm_module
    from socialalign_lib.train import config, run_folder, sft
    from socialalign_lib.train import socialllm as trainer

    assert evaluation is experiments and vllm_backend is vllm_module and run_files is paths
    assert train.SFTConfig is sft.SFTConfig and train.train_sft is sft.train_sft
    assert socialllm.SocialLLMConfig is config.SocialLLMConfig and socialllm.run_hash is trainer.run_hash
    assert (
        socialllm.generate_replies is decode.generate_replies
        and socialllm.GenerationConfig is sampling.GenerationConfig
    )
    assert (
        socialllm.REPLY_COLUMNS is reply_file.REPLY_COLUMNS and socialllm.STATE_FILE is run_folder.STATE_FILE
    )
    assert socialllm.gate_mode is socialllm._gate_mode_ctx  # the context manager, under its old name
    assert all(hasattr(socialllm, name) for name in socialllm.__all__)


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # resolve relative to the file's package
                package = path.parent.relative_to(LIB.parent).parts
                base = ".".join(package[: len(package) - node.level + 1] + ((base,) if base else ()))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


@pytest.mark.parametrize(
    "package, upward",
    [
        (
            "train",
            (
                "socialalign_lib.generate",
                "socialalign_lib.experiments",
                "socialalign_lib.cli",
                "socialalign_lib.socialllm",
                "socialalign_lib.evaluation",
            ),
        ),
        (
            "generate",
            (
                "socialalign_lib.experiments",
                "socialalign_lib.cli",
                "socialalign_lib.socialllm",
                "socialalign_lib.evaluation",
                "socialalign_lib.world",
            ),
        ),
    ],
)
def test_stages_do_not_import_upward(package, upward):
    found = {
        f"{p.name}: {m}"
        for p in sorted((LIB / package).glob("*.py"))
        for m in _imports(p)
        if m.startswith(upward)
    }
    assert found == set()


def test_the_cli_reaches_the_replies_path_without_torch():
    code = (
        "import sys, socialalign_lib.cli, socialalign_lib.generate.paths as p; "
        "assert 'torch' not in sys.modules, 'torch imported'; print(p.replies_path('r', 'test_user', 'full', 0))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()) == Path("r/replies/test_user-full-seed0.jsonl")
