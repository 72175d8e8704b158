"""Notebook 08's committed runs (``popularity.smp_runs``): current, loaded only under their own key, and loaded
back to the very weights that were trained."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from socialalign_lib import paths
from socialalign_lib.popularity import idpop
from socialalign_lib.popularity import smp_llm as smp
from socialalign_lib.popularity import smp_llm_train as st
from socialalign_lib.popularity import smp_runs as R


def test_committed_course_runs_match_the_current_code_and_world():
    """Fails when the world, the examples, the base model or a config of notebook 08 changed since
    ``make checkpoints`` (or when a run is missing): the notebook would silently train instead of loading."""
    assert R.check("course") == []


def test_keys_change_with_every_input():
    ex = [smp.Example("u1", 1, "train", [0], 1, [5.0], 6.0, "p", "6.0")]
    b = R.BUDGETS["tiny"]
    sft = R.sft_key("base", ex, R.sft_config(b, 0))
    assert sft != R.sft_key("other base", ex, R.sft_config(b, 0))
    assert sft != R.sft_key("base", [dataclasses.replace(ex[0], answer="6.1")], R.sft_config(b, 0))
    assert sft != R.sft_key("base", ex, R.sft_config(b, 1))
    assert sft == R.sft_key("base", ex, dataclasses.replace(R.sft_config(b, 0), logging_steps=99))
    cfg = R.preference_config(b, 0)
    key = R.preference_key(sft, "dpo", ex, R.sampling_settings(0), cfg, 16)
    assert key != R.preference_key(sft, "idpop", ex, R.sampling_settings(0), cfg, 16)
    assert key != R.preference_key(sft, "dpo", ex, R.sampling_settings(1), cfg, 16)
    assert key != R.preference_key(sft, "dpo", ex, R.sampling_settings(0), cfg, 8)
    assert key != R.preference_key(
        sft,
        "dpo",
        ex,
        R.sampling_settings(0),
        dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, lam=0.0)),
        16,
    )
    assert key != R.preference_key("another sft", "dpo", ex, R.sampling_settings(0), cfg, 16)


@pytest.mark.slow
def test_a_kept_run_loads_back_bit_for_bit_and_only_under_its_key(tiny_world, tmp_path):
    """Loading merges the saved LoRA with the same operation training ended with, so the weights are identical;
    another key, or ``retrain=True``, never loads."""
    from socialalign_lib.models import load_base_model

    base, tok = load_base_model(paths.EMBEDDED_MODEL)
    data = R.course_data(smp.posts_frame(tiny_world.smp_posts), 0)
    b = dataclasses.replace(R.BUDGETS["tiny"], sft_steps=2, pref_steps=1)
    cfg = R.sft_config(b, 0)
    key = R.sft_key(R.model_fingerprint(base), data.train_ex, cfg)
    trained, loaded = R.sft_or_load(
        R.RunStore(tmp_path, retrain=True, save=True), base, tok, data.train_ex, cfg, key
    )
    assert not loaded and (tmp_path / "sft-seed0" / "adapter_model.safetensors").exists()
    again, loaded = R.sft_or_load(R.RunStore(tmp_path), base, tok, data.train_ex, cfg, key)
    assert (
        loaded and again.history == trained.history
    )  # the log is stored as written (JSON floats round-trip)
    for (name, a), (_, b_) in zip(trained.model.state_dict().items(), again.model.state_dict().items()):
        assert torch.equal(a, b_), name
    assert R.RunStore(tmp_path).load("sft-seed0", "another key", base) is None
    assert R.RunStore(tmp_path, retrain=True).load("sft-seed0", key, base) is None
    # a preference run keeps its held-out curve: the notebook reads it from the loaded history
    samples = st.generate_answers(trained.model, tok, data.align_ex, R.sampling_settings(0))
    pairs, _ = idpop.build_preference_pairs(data.align_ex, samples, R.LOSS)
    train_pairs, held = idpop.split_pairs(pairs, R.HELD_OUT, 0)
    pcfg = R.preference_config(b, 0)
    pkey = R.preference_key(key, "idpop", data.align_ex, R.sampling_settings(0), pcfg, 8)
    run, _ = R.preference_or_load(
        R.RunStore(tmp_path, save=True, retrain=True),
        trained.model,
        tok,
        train_pairs,
        "idpop",
        pcfg,
        held[:8],
        pkey,
    )
    back, loaded = R.preference_or_load(
        R.RunStore(tmp_path), trained.model, tok, train_pairs, "idpop", pcfg, held[:8], pkey
    )
    assert loaded
    assert idpop.eval_curve(back.history).equals(idpop.eval_curve(run.history)) and len(
        idpop.eval_curve(back.history)
    )


def test_a_damaged_committed_run_is_an_error_naming_the_file(tmp_path):
    store = R.RunStore(tmp_path)
    run = tmp_path / "sft-seed0"
    run.mkdir()
    (run / "run.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"sft-seed0/run\.json"):
        store.committed_key("sft-seed0")
    (run / "run.json").write_text('{"key": "k", "history": []}', encoding="utf-8")
    with pytest.raises(ValueError, match="'seconds'"):
        store.committed_key("sft-seed0")
    (run / "run.json").write_text('{"key": "k", "history": [], "seconds": 1}', encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        store.load("sft-seed0", "k", model=None)
    assert store.committed_key("dpo-seed0") is None  # never committed: not an error
