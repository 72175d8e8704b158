"""Committed adapters (data/checkpoints): current with the code and data, refused when stale, found by default."""

from __future__ import annotations

import pytest

from socialalign_lib import checkpoints, paths
from socialalign_lib.checkpoints import CheckpointPlan, build_checkpoints, stale_checkpoints
from socialalign_lib.train.config import socialllm_config
from socialalign_lib.train.run_folder import SocialLLMError, default_output_dir
from socialalign_lib.train.socialllm import train_socialllm


def test_committed_checkpoints_are_current():
    """Every run notebook 06 loads is committed and was trained on what the current code builds. Fails after any
    change to the world, the records, the base model or the course training config: rerun `make checkpoints`."""
    problems = stale_checkpoints(CheckpointPlan())
    assert not problems, "stale committed checkpoints (run `make checkpoints`):\n" + "\n".join(problems)


@pytest.fixture
def tiny_plan(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CHECKPOINTS_DIR", tmp_path / "checkpoints")
    monkeypatch.setattr(paths, "FIGURES_DIR", tmp_path / "figures")
    return CheckpointPlan(
        size="tiny",
        seeds=(0,),
        specs=(("lora", "full"),),
        curve_every=4,
        curve_specs=(("lora", "full"),),
        curve_seeds=(0,),
    )


@pytest.mark.slow
def test_build_find_and_refuse_stale(tiny_plan, tmp_path):
    curve = build_checkpoints(tiny_plan, progress=False)
    # a learning curve: step 0, every 4 steps, and the last (8) step
    assert curve["step"].tolist() == [0, 4, 8]
    assert curve["val_loss"].iloc[-1] < curve["val_loss"].iloc[0]
    assert (tmp_path / "figures" / checkpoints.CURVE_FILE).exists()
    assert stale_checkpoints(tiny_plan) == []
    cfg = socialllm_config("lora", "tiny", seed=0)
    folder = default_output_dir(cfg, "tiny", 0)
    assert folder.is_relative_to(tmp_path / "checkpoints")  # the committed run is the default
    assert not (folder / "replies").exists()
    assert default_output_dir(cfg, "tiny", 0, committed=False).is_relative_to(paths.OUTPUTS_DIR)

    # stale: the same config on another world's records is reported, and training into the folder is refused
    other_world = CheckpointPlan(
        size="tiny", world_seed=1, seeds=(0,), specs=(("lora", "full"),), curve_specs=()
    )
    problems = stale_checkpoints(other_world)
    assert len(problems) == 1 and "trained on other data" in problems[0]
    from socialalign_lib.build.pipeline import course_data

    other_train = course_data(size="tiny", seed=1).split("train")
    with pytest.raises(SocialLLMError, match="make checkpoints"):
        train_socialllm(cfg, other_train, default_output_dir(cfg, "tiny", 0), progress=False)


@pytest.mark.slow
def test_learning_curve_does_not_change_the_trained_weights(tiny_course, tmp_path):
    """Measuring must not change what is measured: whatever the probe draws from the global RNG (here an extra draw
    per measurement, standing in for any sampling code), the next dropout masks - and so the weights - must be
    those of a run without a curve."""
    import torch
    from transformers import AutoTokenizer

    from socialalign_lib.checkpoints import LearningCurve
    from socialalign_lib.sentiment import build_labeller
    from socialalign_lib.train.run_folder import read_finished_state

    class DrawingCurve(LearningCurve):
        def _accuracy(self, model, records):
            torch.rand(1)
            return super()._accuracy(model, records)

    cfg = socialllm_config("lora", "tiny", seed=0)
    probe = DrawingCurve(
        tiny_course.split("validation"),
        build_labeller("ngram", world=tiny_course.world),
        3,
        AutoTokenizer.from_pretrained(cfg.base_model),
    )
    plain = train_socialllm(cfg, tiny_course.split("train"), tmp_path / "plain", progress=False).output_dir
    probed = train_socialllm(
        cfg, tiny_course.split("train"), tmp_path / "probed", progress=False, callbacks=[probe]
    ).output_dir
    assert len(probe.rows) == 4  # steps 0, 3, 6 and the last (8)
    assert read_finished_state(plain)["adapter_sha256"] == read_finished_state(probed)["adapter_sha256"]


def test_configs_and_hashes_do_not_depend_on_the_checkout(tmp_path, monkeypatch):
    """A committed run must be the same run in a fresh clone at another absolute path: the base model inside the
    repository is stored and hashed by its repository-relative path."""
    from socialalign_lib.train.config import SocialLLMConfig
    from socialalign_lib.train.run_folder import base_fingerprint as _base_fingerprint

    cfg = socialllm_config("lora", "course", seed=0)
    stored = cfg.to_dict()  # what a committed socialllm.json holds
    assert stored["base_model"] == "data/socialalign-tiny"
    assert SocialLLMConfig.from_dict(stored).base_model == str(paths.EMBEDDED_MODEL)
    before = (cfg.config_hash(), _base_fingerprint(cfg.base_model))
    clone = tmp_path / "clone"
    (clone / "data").mkdir(parents=True)
    (clone / "data" / "socialalign-tiny").symlink_to(paths.EMBEDDED_MODEL)
    monkeypatch.setattr(paths, "ROOT", clone)
    moved = SocialLLMConfig.from_dict(stored)
    assert moved.base_model == str(clone / "data" / "socialalign-tiny")
    assert (moved.config_hash(), _base_fingerprint(moved.base_model)) == before


def test_replies_of_another_run_are_never_reused(tiny_course, tmp_path):
    """A run folder whose run hash changed (another base model, config or data) keeps no replies: a notebook would
    otherwise read back replies another model wrote (the zero-shot row once did, after the base model changed)."""
    from socialalign_lib.data.write import write_json
    from socialalign_lib.generate.paths import replies_path
    from socialalign_lib.train.run_folder import STATE_FILE

    cfg = socialllm_config("base", "tiny", seed=0)
    folder = tmp_path / "run"
    stale = replies_path(folder, "test_topic", "full", 0)
    stale.parent.mkdir(parents=True)
    stale.write_text('{"case_id": "old"}\n')
    write_json(
        folder / STATE_FILE,
        {
            "format": "socialalign-socialllm/1",
            "run_hash": "another model",
            "finished": True,
            "config": cfg.to_dict(),
        },
    )
    train_socialllm(cfg, tiny_course.split("train"), folder, progress=False)
    assert not stale.exists()
    again = replies_path(folder, "test_topic", "full", 0)
    again.parent.mkdir(parents=True, exist_ok=True)
    again.write_text('{"case_id": "new"}\n')
    assert train_socialllm(cfg, tiny_course.split("train"), folder, progress=False).loaded  # same run: kept
    assert again.exists()


def test_cli_refuses_an_unknown_row():
    with pytest.raises(SystemExit) as exc:
        checkpoints.main(["--only", "Lora"])
    assert exc.value.code == 2


def test_portable_adapter_writes_the_same_bytes_whatever_order_peft_wrote_the_modules_in(tmp_path):
    """peft writes ``target_modules`` from a set (string-hash order, new in every process): the committed bytes
    must not depend on it, or ``--verify`` reports a rebuilt run as different."""
    import json

    from socialalign_lib.train.run_folder import portable_adapter

    written = []
    for order in (["q_proj", "v_proj", "k_proj"], ["k_proj", "q_proj", "v_proj"]):
        folder = tmp_path / "-".join(order)
        folder.mkdir()
        (folder / "adapter_config.json").write_text(json.dumps({"target_modules": order, "r": 8}))
        (folder / "README.md").write_text("card")
        portable_adapter(folder)
        written.append((folder / "adapter_config.json").read_bytes())
        assert not (folder / "README.md").exists()
    assert written[0] == written[1]
    assert json.loads(written[0])["target_modules"] == ["k_proj", "q_proj", "v_proj"]
