"""The vLLM backend against a stand-in ``vllm`` package (vLLM needs CUDA): prompts, sampling, LoRA, resume."""

from __future__ import annotations

import sys
import types

import pytest

from socialalign_lib.build.records.chat import prompt_ids_with_spans
from socialalign_lib.data.read import read_jsonl
from socialalign_lib.generate.reply_file import REPLY_COLUMNS
from socialalign_lib.generate.sampling import GenerationConfig
from socialalign_lib.generate.vllm import generate_replies_vllm, row_seed
from socialalign_lib.train.config import SocialLLMConfig
from socialalign_lib.train.run_folder import SocialLLMError
from socialalign_lib.train.run_folder import write_run_state as _write_state


class FakeLLM:
    calls: list[dict] = []

    def __init__(self, **kwargs):
        FakeLLM.init = kwargs

    def generate(self, prompts, params, lora_request=None, use_tqdm=True):
        FakeLLM.calls.append({"prompts": prompts, "params": params, "lora": lora_request})
        reply = types.SimpleNamespace
        return [
            reply(outputs=[reply(text=f" n={len(p['prompt_token_ids'])} seed={s.kwargs['seed']} ")])
            for p, s in zip(prompts, params)
        ]


@pytest.fixture
def fake_vllm(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.LLM = FakeLLM
    vllm.SamplingParams = lambda **kw: types.SimpleNamespace(kwargs=kw)
    lora_mod = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = lambda name, i, path: types.SimpleNamespace(name=name, id=i, path=path)
    for name, mod in {"vllm": vllm, "vllm.lora": lora_mod, "vllm.lora.request": request}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    FakeLLM.calls = []
    return vllm


@pytest.fixture(scope="module")
def records(tiny_course):
    return tiny_course.split("test_user").to_list()[:5]


def _run_dir(tmp_path, method):
    _write_state(tmp_path, {"finished": True, "config": SocialLLMConfig(method=method).to_dict()})
    if method != "base":  # an adapter folder as save_pretrained leaves it (the CLI verifies it before use)
        import torch
        from safetensors.torch import save_file

        (tmp_path / "adapter").mkdir(parents=True, exist_ok=True)
        (tmp_path / "adapter" / "adapter_config.json").write_text("{}", encoding="utf-8")
        save_file({"w": torch.zeros(1)}, tmp_path / "adapter" / "adapter_model.safetensors")
    return tmp_path


def test_lora_run_prompts_sampling_and_adapter(fake_vllm, records, tmp_path):
    from transformers import AutoTokenizer

    from socialalign_lib.build.records.chat import ChatConfig
    from socialalign_lib.paths import EMBEDDED_MODEL

    gen = GenerationConfig(seed=3)
    out = generate_replies_vllm(_run_dir(tmp_path, "lora"), records, gen)
    assert list(out.columns) == list(REPLY_COLUMNS) and list(out["case_id"]) == [
        r["case_id"] for r in records
    ]
    call = FakeLLM.calls[0]
    assert call["lora"].path == str(tmp_path / "adapter") and FakeLLM.init["enable_lora"]
    tok = AutoTokenizer.from_pretrained(EMBEDDED_MODEL)
    # the same token ids as the transformers path renders (no re-tokenisation by vLLM)
    assert call["prompts"][0]["prompt_token_ids"] == prompt_ids_with_spans(tok, records[0], ChatConfig())[0]
    p = call["params"][0].kwargs
    assert (p["temperature"], p["top_p"], p["top_k"], p["repetition_penalty"]) == (0.7, 0.9, 20, 1.2)
    assert p["seed"] == row_seed(records[0], 3) and p["stop_token_ids"]
    assert out["generated"][0] == f"n={len(call['prompts'][0]['prompt_token_ids'])} seed={p['seed']}"
    assert all(g == [] for g in out["gate_a"])


def test_greedy_base_run_and_resume_without_duplicates(fake_vllm, records, tmp_path):
    run = _run_dir(tmp_path / "run", "base")
    path = tmp_path / "replies.jsonl"
    generate_replies_vllm(run, records[:2], GenerationConfig.greedy(), out_path=path)
    assert FakeLLM.calls[0]["lora"] is None and FakeLLM.calls[0]["params"][0].kwargs["temperature"] == 0.0
    out = generate_replies_vllm(run, records, GenerationConfig.greedy(), out_path=path)
    assert len(FakeLLM.calls[1]["prompts"]) == 3  # only the cases not yet in the file
    assert [r["case_id"] for r in read_jsonl(path)] == [r["case_id"] for r in records]
    assert len(out) == len(records)


def test_pac_lora_and_unfinished_runs_are_refused(fake_vllm, records, tmp_path):
    with pytest.raises(SocialLLMError, match="PAC-LoRA"):
        generate_replies_vllm(_run_dir(tmp_path / "pac", "pac_lora"), records)
    with pytest.raises(SocialLLMError, match="no finished"):
        generate_replies_vllm(tmp_path / "empty", records)


def test_cli_generate_with_the_vllm_backend(fake_vllm, records, tmp_path):
    from socialalign_lib import cli
    from socialalign_lib.data.write import write_jsonl

    run = _run_dir(tmp_path / "run", "lora")
    data = tmp_path / "records.jsonl"
    write_jsonl(data, records)
    out = tmp_path / "replies.jsonl"
    argv = ["generate", "--run-dir", str(run), "--dataset", str(data), "--backend", "vllm", "--out", str(out)]
    assert cli.main(argv) == 0
    rows = read_jsonl(out)
    assert [r["case_id"] for r in rows] == [r["case_id"] for r in records]
    assert all(r["generated"].startswith("n=") for r in rows)
