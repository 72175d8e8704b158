"""The course's committed adapters: trained to their plateau once by ``make checkpoints``, loaded by notebooks 03–06.

Why: converged training of the course's SocialLLMs (LoRA, PAC-LoRA and its two trained ablations, three seeds
each) takes far longer than a notebook should, and a results table from models stopped early cannot answer its
question. So the repository ships the trained adapters (``data/checkpoints/<size>-seed<seed>/<run>/``: the
adapter's safetensors, its ``socialllm.json`` with the config, the run hash — config hash + base-model fingerprint +
training-data fingerprint — the loss log and the adapter's sha256), and the notebooks find them through
``socialllm.default_output_dir``. ``retrain=True`` in a notebook's parameters trains fresh copies instead.

Guarantees:

* **Current or refused.** A committed run is used only when its run hash equals the one the notebook's config and
  data give; otherwise ``train_socialllm`` raises and names the folder (``tests/test_checkpoints.py`` checks every
  committed run against the current code, so a change to the world, the records, the base model or the training
  config fails CI until ``make checkpoints`` is rerun).
* **Rebuilt bit for bit.** Training runs on one CPU thread with seeded initialisation and data order, so
  ``make checkpoints`` reproduces the same adapter bytes on the same software (``--verify`` retrains one run and
  compares its sha256 with the committed one).
* **Learning curves.** While training LoRA and PAC-LoRA (every seed of ``CheckpointPlan.curve_seeds``),
:class:`LearningCurve` records the validation
  reply loss and the sentiment accuracy of replies generated for the validation split every ``curve_every`` steps;
  ``figures/03_learning_curve.csv`` keeps them and notebook 03 plots them (the training budget is chosen on the
  validation split, never on the test splits).

Usage: ``make checkpoints`` (``python -m socialalign_lib.checkpoints``), ``--verify``, ``--check``.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import TrainerCallback

from . import paths

__all__ = [
    "CURVE_FILE",
    "CheckpointPlan",
    "LearningCurve",
    "build_checkpoints",
    "mean_curve",
    "plot_learning_curve",
    "stale_checkpoints",
]

CURVE_FILE = "03_learning_curve.csv"
#: (method, prompt variant) of every trained row of notebook 06's table (``evaluation.TABLE_METHODS``).
TRAINED_SPECS: tuple[tuple[str, str], ...] = (
    ("lora", "full"),
    ("pac_lora", "full"),
    ("pac_lora", "without_persona"),
    ("pac_lora", "without_history"),
)
_NAMES = {
    ("lora", "full"): "LoRA",
    ("pac_lora", "full"): "PAC-LoRA",
    ("pac_lora", "without_persona"): "PAC-LoRA w/o persona",
    ("pac_lora", "without_history"): "PAC-LoRA w/o history",
}


@dataclass(frozen=True)
class CheckpointPlan:
    """What ``make checkpoints`` trains: every spec of :data:`TRAINED_SPECS` for each training seed, on the world
    of ``size`` / ``world_seed``, with the course config (``socialllm.socialllm_config``)."""

    size: str = "course"
    world_seed: int = 0
    seeds: tuple[int, ...] = (0, 1, 2)
    specs: tuple[tuple[str, str], ...] = TRAINED_SPECS
    curve_every: int = 50
    curve_watch: int = 120  # records of each test split whose sentiment accuracy the curve also follows
    curve_specs: tuple[tuple[str, str], ...] = (("lora", "full"), ("pac_lora", "full"))
    curve_seeds: tuple[int, ...] = (
        0,
        1,
        2,
    )  # seeds whose LoRA and PAC-LoRA runs also record the learning curve


class LearningCurve(TrainerCallback):
    """Every ``every`` optimizer steps (and at step 0): the validation reply loss (``socialllm.reply_loss``) and
    the sentiment accuracy of one sampled reply per validation record, labelled by ``labeller`` against the real
    reply's label. Rows: ``{step, val_loss, val_sent_acc}``, plus ``<name>_sent_acc`` for every record set in
    ``watch`` (e.g. a sample of each test split: watched, never used to choose the budget — the curves show
    whether what the validation split rewards carries over to unseen users and unseen topics)."""

    def __init__(
        self,
        records: Any,
        labeller: Any,
        every: int,
        tokenizer: Any,
        gen: Any | None = None,
        watch: dict[str, Any] | None = None,
    ) -> None:
        self.records, self.labeller, self.every, self.tokenizer = records, labeller, every, tokenizer
        self.gen = gen
        self.watch = watch or {}
        self.rows: list[dict[str, float]] = []

    def _accuracy(self, model: Any, records: Any) -> float:
        from socialalign_lib.generate.decode import generate_replies
        from socialalign_lib.generate.sampling import GenerationConfig

        replies = generate_replies(
            model, self.tokenizer, records, self.gen or GenerationConfig(seed=0), progress=False
        )
        pred = self.labeller.predict(replies["generated"].fillna("").astype(str).tolist())
        return float(np.mean(np.asarray(pred) == np.asarray(replies["sentiment"])))

    def measure(self, model: Any, step: int) -> None:
        from socialalign_lib.train.socialllm import reply_loss

        was_training = model.training
        model.eval()
        # fork_rng: measuring must not change what is measured - sampling replies would otherwise advance the global
        # RNG that dropout draws from next, and a run with a curve would train to other weights than one without
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            row = {
                "step": step,
                "val_loss": float(reply_loss(model, self.tokenizer, self.records)),
                "val_sent_acc": self._accuracy(model, self.records),
            }
            for name, records in self.watch.items():
                row[f"{name}_sent_acc"] = self._accuracy(model, records)
        self.rows.append(row)
        if was_training:
            model.train()

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step == 0:
            self.measure(model, 0)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self.measure(model, state.global_step)


def _course(plan: CheckpointPlan):
    from socialalign_lib.build.pipeline import course_data

    return course_data(size=plan.size, seed=plan.world_seed)


def _config(plan: CheckpointPlan, method: str, variant: str, seed: int):
    from socialalign_lib.train.config import socialllm_config

    return socialllm_config(method, plan.size, seed=seed, variant=variant)


def stale_checkpoints(plan: CheckpointPlan | None = None, data: Any | None = None) -> list[str]:
    """Problems with the committed runs for ``plan``: a missing folder, an unfinished run, or a run hash that no
    longer matches the current config, base model and training data. Empty when everything is current."""
    from socialalign_lib.train.run_folder import STATE_FILE, default_output_dir, read_finished_state
    from socialalign_lib.train.socialllm import run_hash

    plan = plan or CheckpointPlan()
    data = data or _course(plan)
    train = {variant: data.split("train", variant) for variant in {v for _, v in plan.specs}}
    problems = []
    for seed in plan.seeds:
        for method, variant in plan.specs:
            cfg = _config(plan, method, variant, seed)
            folder = default_output_dir(cfg, plan.size, seed)
            if not (folder / STATE_FILE).exists():
                problems.append(
                    f"{_NAMES[method, variant]} seed {seed}: no committed run (expected "
                    f"{folder.relative_to(paths.ROOT) if folder.is_relative_to(paths.ROOT) else folder})"
                )
                continue
            state = read_finished_state(folder)
            if state.get("run_hash") != run_hash(cfg, train[variant]):
                problems.append(
                    f"{_NAMES[method, variant]} seed {seed}: {folder.name} was trained on other data, "
                    "base model or config than the current code gives"
                )
    return problems


def _probe(
    plan: CheckpointPlan, data: Any, labeller: Any, method: str, variant: str, seed: int, cfg: Any
) -> LearningCurve | None:
    """The learning-curve callback of a run that records one (``plan.curve_seeds`` × ``plan.curve_specs``), else None."""  # noqa: E501
    if seed not in plan.curve_seeds or (method, variant) not in plan.curve_specs:
        return None
    from transformers import AutoTokenizer

    watch = {
        s: data.split(s, variant)
        .shuffle(seed=0)
        .select(range(min(plan.curve_watch, len(data.split(s, variant)))))
        for s in ("test_user", "test_topic")
    }
    return LearningCurve(
        data.split("validation", variant),
        labeller,
        plan.curve_every,
        AutoTokenizer.from_pretrained(cfg.base_model),
        watch=watch,
    )


def build_checkpoints(
    plan: CheckpointPlan | None = None, only: Sequence[str] | None = None, progress: bool = True
) -> pd.DataFrame:
    """Train every run of ``plan`` into ``data/checkpoints`` (replacing a stale folder), on one torch thread;
    write the learning curves to ``figures/03_learning_curve.csv``. ``only``: names of :data:`TRAINED_SPECS` rows
    (e.g. ``["LoRA"]``) to rebuild. Returns the curve rows."""
    from socialalign_lib.train.run_folder import SocialLLMError, run_name
    from socialalign_lib.train.socialllm import run_hash, train_socialllm

    from .sentiment import build_labeller

    plan = plan or CheckpointPlan()
    torch.set_num_threads(1)  # reproducible weights (and fastest for this model on shared cores)
    data = _course(plan)
    labeller = build_labeller("ngram", world=data.world)
    curves = []
    for seed in plan.seeds:
        for method, variant in plan.specs:
            name = _NAMES[method, variant]
            if only and name not in only:
                continue
            cfg = _config(plan, method, variant, seed)
            folder = paths.CHECKPOINTS_DIR / f"{plan.size}-seed{seed}" / run_name(cfg)
            train = data.split("train", variant)
            probe = _probe(plan, data, labeller, method, variant, seed, cfg)
            try:
                from socialalign_lib.train.run_folder import read_finished_state

                current = read_finished_state(folder).get("run_hash") == run_hash(cfg, train)
            except (SocialLLMError, FileNotFoundError, OSError):
                current = False
            if current and probe is None:
                print(f"{name} seed {seed}: current ({folder.name})")
                continue
            shutil.rmtree(folder, ignore_errors=True)
            t0 = time.perf_counter()
            train_socialllm(
                cfg,
                train,
                folder,
                progress=progress,
                callbacks=[probe] if probe else None,
                write_committed=True,
            )
            for extra in ("replies", "generations"):
                shutil.rmtree(folder / extra, ignore_errors=True)
            print(f"{name} seed {seed}: trained in {time.perf_counter() - t0:.0f} s → {folder}")
            if probe is not None:
                curves += [{"method": name, "seed": seed, **row} for row in probe.rows]
    out = pd.DataFrame(curves)
    if len(out):
        from socialalign_lib.data.write import write_text

        target = paths.FIGURES_DIR / CURVE_FILE
        if target.exists():  # keep the curves of runs not rebuilt now (``only``, other seeds)
            old = pd.read_csv(target)
            redone = set(zip(out["method"], out["seed"]))
            out = pd.concat([old[[(m, s) not in redone for m, s in zip(old["method"], old["seed"])]], out])
        out = out.sort_values(["method", "seed", "step"], kind="stable")
        paths.FIGURES_DIR.mkdir(parents=True, exist_ok=True)
        write_text(target, out.to_csv(index=False, float_format="%.6g"))
    return out


def verify(
    plan: CheckpointPlan | None = None, spec: tuple[str, str] = ("lora", "full"), seed: int = 0
) -> bool:
    """Retrain one committed run in a temporary folder, exactly as ``make checkpoints`` did (one thread, and the same
    learning-curve callback when the run records one), and compare the adapter's sha256 with the committed one."""
    import tempfile

    from socialalign_lib.train.run_folder import default_output_dir, read_finished_state
    from socialalign_lib.train.socialllm import train_socialllm

    from .sentiment import build_labeller

    plan = plan or CheckpointPlan()
    torch.set_num_threads(1)
    data = _course(plan)
    cfg = _config(plan, *spec, seed)
    committed = read_finished_state(default_output_dir(cfg, plan.size, seed))
    probe = _probe(plan, data, build_labeller("ngram", world=data.world), *spec, seed, cfg)
    with tempfile.TemporaryDirectory() as tmp:
        train_socialllm(
            cfg, data.split("train", spec[1]), Path(tmp) / "run", callbacks=[probe] if probe else None
        )
        fresh = read_finished_state(Path(tmp) / "run")
    a, b = fresh.get("adapter_sha256") or {}, committed.get("adapter_sha256") or {}
    differ = sorted(f for f in set(a) | set(b) if a.get(f) != b.get(f))
    print(
        f"{_NAMES[spec]} seed {seed}: adapter {'DIFFERS from' if differ else 'identical to'} the committed one"
        + (f" ({', '.join(differ)})" if differ else "")
    )
    return not differ


def mean_curve(curve: pd.DataFrame) -> pd.DataFrame:
    """The learning curve averaged over seeds: one row per (method, step), with ``n_seeds`` and, per measured
    column, ``<column>_min`` / ``<column>_max`` over the seeds."""
    values = [c for c in curve.columns if c not in ("method", "seed", "step")]
    g = curve.groupby(["method", "step"], sort=False)
    out = g[values].mean()
    for c in values:
        out[f"{c}_min"], out[f"{c}_max"] = g[c].min(), g[c].max()
    out["n_seeds"] = g["seed"].nunique()
    return out.reset_index()


def plot_learning_curve(curve: pd.DataFrame, majority: float | None = None):
    """Validation reply loss (left) and sentiment accuracy (right) against optimizer steps, one colour per method:
    the mean over seeds with the min–max band of the seeds; solid = validation (chooses the budget), dashed /
    dotted = the watched test splits; ``majority``: the always-majority accuracy drawn as a floor."""
    import matplotlib.pyplot as plt

    mean = mean_curve(curve)
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(10, 3.8))
    styles = {"val": "-", "test_user": "--", "test_topic": ":"}
    for k, (name, g) in enumerate(mean.groupby("method", sort=False)):
        color = f"C{k}"
        ax_l.plot(g["step"], g["val_loss"], marker="o", ms=3, color=color, label=name)
        ax_l.fill_between(g["step"], g["val_loss_min"], g["val_loss_max"], color=color, alpha=0.15, lw=0)
        for split, ls in styles.items():
            col = f"{split}_sent_acc"
            if col in g:
                ax_a.plot(g["step"], g[col], ls=ls, marker="o", ms=3, color=color, label=f"{name} · {split}")
                if split == "val":
                    ax_a.fill_between(
                        g["step"], g[f"{col}_min"], g[f"{col}_max"], color=color, alpha=0.15, lw=0
                    )
    if majority is not None:
        ax_a.axhline(majority, color="grey", ls="--", lw=1, label="majority class (val)")
    n = int(mean["n_seeds"].max())
    ax_l.set(
        xlabel="optimizer step (batch 8)",
        ylabel="validation loss (nats / reply token)",
        title=f"Reply loss on held-out replies (mean of {n} seeds, band: min–max)",
    )
    ax_a.set(
        xlabel="optimizer step (batch 8)",
        ylabel="sentiment accuracy",
        title="Sentiment of one sampled reply (val: chooses the budget)",
        ylim=(0, 1),
    )
    ax_l.legend(fontsize=8)
    ax_a.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train the course's committed adapters (data/checkpoints).")
    ap.add_argument(
        "--check", action="store_true", help="only list stale or missing committed runs (exit 1 if any)"
    )
    ap.add_argument(
        "--verify", action="store_true", help="retrain LoRA seed 0 and compare with the committed bytes"
    )
    ap.add_argument("--only", nargs="*", help=f"rebuild only these rows: {sorted(_NAMES.values())}")
    ap.add_argument("--seeds", type=int, nargs="*", default=list(CheckpointPlan.seeds))
    args = ap.parse_args(argv)
    unknown = sorted(set(args.only or ()) - set(_NAMES.values()))
    if unknown:
        ap.error(f"--only: unknown row(s) {unknown}; choose from {sorted(_NAMES.values())}")
    plan = CheckpointPlan(seeds=tuple(args.seeds))
    if args.check:
        problems = stale_checkpoints(plan)
        print("\n".join(problems) or "every committed checkpoint is current")
        return 1 if problems else 0
    if args.verify:
        return 0 if verify(plan) else 1
    build_checkpoints(plan, only=args.only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
