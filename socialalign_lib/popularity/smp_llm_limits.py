"""What stops the course model from reading popularity numbers: SFT learning curves under the levers that
should help (shorter prompts, more training users, integer answers, full fine-tuning), measured on held-out
users.

Why a separate, committed measurement: each curve is minutes of CPU, more than notebook 08's budget, and
the notebook's claim "the tiny model does not learn to read the history" needs evidence beyond one run. The
notebook's own SFT (LoRA on the paper's full prompt) is measured in the notebook; the curves here pull the levers
that should make reading easiest.
``python -m socialalign_lib.popularity.smp_llm_limits`` trains every :data:`CURVES` entry, evaluates the
3-shot test questions every ``every`` steps (greedy answers: MAE, Spearman SRC, how many distinct answers)
and writes ``figures/data/08_sft_learning_curves.csv`` with the hash of the configurations and the world's
data fingerprint, so a test can tell when the committed file no longer matches the code
(:func:`check_committed`).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import smp_llm as smp
from . import smp_llm_train as st

CURVES_FILE = Path(__file__).resolve().parents[2] / "figures" / "data" / "08_sft_learning_curves.csv"


@dataclass(frozen=True)
class CurveConfig:
    """One SFT learning curve. ``fields=()`` drops every post field (the prompt keeps only the history
    scores); ``extra_users`` adds that many new world users' train-form examples (``smp.extra_world_users``);
    ``decimals=0`` makes every answer one digit token; ``lora=False`` is full fine-tuning."""

    name: str
    fields: tuple[str, ...] = smp.SMPD_FIELDS
    include_uid: bool = True
    decimals: int = 1
    lora: bool = True
    learning_rate: float = 3e-3
    steps: int = 150
    batch_size: int = 16
    extra_users: int = 0
    every: int = 50


CURVES: tuple[CurveConfig, ...] = (
    CurveConfig(
        "full FT, scores-only prompt, +700 users",
        fields=(),
        include_uid=False,
        lora=False,
        extra_users=700,
        steps=120,
        every=40,
    ),
    CurveConfig(
        "same, integer answers (1 digit token)",
        fields=(),
        include_uid=False,
        lora=False,
        extra_users=700,
        steps=120,
        every=40,
        decimals=0,
    ),
)


def config_hash(curves: Sequence[CurveConfig] = CURVES) -> str:
    """Short hash of the curve configurations (any change invalidates the committed measurements)."""
    blob = json.dumps([dataclasses.asdict(c) for c in curves], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def data_fingerprint(world: Any) -> str:
    """Short hash of the world's SMPD-like posts (ids, dates, scores) the curves were measured on."""
    df = smp.posts_frame(world.smp_posts)[["uid", "pid", "postdate", "popularity"]]
    return hashlib.sha256(df.round(6).to_csv(index=False).encode()).hexdigest()[:12]


def measure_curve(base: Any, tok: Any, world: Any, c: CurveConfig, seed: int = 0) -> list[dict[str, Any]]:
    """Train one :class:`CurveConfig` and score the 3-shot test questions of the main users every
    ``c.every`` steps (the same users and split as notebook 08)."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    cold = smp.select_users(smp.posts_frame(world.smp_posts), smp.SampleConfig(seed=seed))
    main, _ = smp.split_users(cold, 0.5, seed=seed)
    pcfg = smp.PromptConfig(post_ids="index", fields=c.fields, include_uid=c.include_uid, decimals=c.decimals)
    train = smp.build_examples(main, (1, 2, 3), "train", pcfg)
    if c.extra_users:
        extra = smp.select_users(smp.posts_frame(smp.extra_world_users(world, c.extra_users)))
        train += smp.build_examples(extra, (1, 2, 3), "train", pcfg)
    test = smp.build_examples(main, (3,), "test", pcfg)
    y = np.array([e.target for e in test])
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()

    class Probe(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
            if state.global_step % c.every:
                return
            pred, _ = st.predict_scores(
                model, tok, test, st.GenerationSettings(batch_size=75, progress=False)
            )
            model.train()
            ok = ~np.isnan(pred)
            mae, src = smp.mae_src(y[ok], pred[ok])
            rows.append(
                {
                    "curve": c.name,
                    "step": state.global_step,
                    "examples_seen": state.global_step * c.batch_size,
                    "train_examples": len(train),
                    "MAE": mae,
                    "SRC": src,
                    "distinct_answers": int(len(np.unique(pred[ok]))),
                    "failed": float((~ok).mean()),
                    "seconds": time.perf_counter() - start,
                }
            )

    run = st.SFTRunConfig(
        lora=st.LoraSettings() if c.lora else None,
        learning_rate=c.learning_rate,
        max_steps=c.steps,
        batch_size=c.batch_size,
        seed=seed,
        logging_steps=c.every,
    )
    with tempfile.TemporaryDirectory() as tmp:
        args = SFTConfig(
            **st._trl_common(run, tmp), completion_only_loss=True, packing=False, dataset_num_proc=None
        )
        trainer = SFTTrainer(
            model=st.fresh_copy(base).train(),
            args=args,
            train_dataset=Dataset.from_list(st.answer_records(train, tok)),
            processing_class=tok,
            peft_config=run.lora.peft_config() if run.lora else None,
            callbacks=[Probe()],
        )
        trainer.train()
    return rows


def measure_all(size: str = "course", seed: int = 0, out: Path = CURVES_FILE) -> pd.DataFrame:
    """Every :data:`CURVES` entry on the embedded model; writes ``out`` (CSV, atomically) with the config
    hash and data fingerprint in every row."""
    from socialalign_lib.data.write import write_text
    from socialalign_lib.world import generate_world

    world = generate_world(size=size, seed=seed)
    base, tok, _ = st.resolve_base_model()
    rows = [r for c in CURVES for r in measure_curve(base, tok, world, c, seed)]
    df = pd.DataFrame(rows).assign(
        config_hash=config_hash(), data_fingerprint=data_fingerprint(world), size=size, seed=seed
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, df.to_csv(index=False))
    return df


def load_committed(path: Path = CURVES_FILE) -> pd.DataFrame:
    """The committed curves (see :func:`check_committed` for whether they are current)."""
    return pd.read_csv(path)


def plot_curves(curves: pd.DataFrame, per_user_mean: dict[str, float] | None = None) -> Any:
    """SRC, MAE and the number of distinct answers on the 3-shot test questions against the training examples
    seen, one line per curve; the per-user mean's SRC / MAE as dashed references. SRC is NaN (not drawn, marked
    "×" at 0) when every answer is the same number."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    for name, g in curves.groupby("curve", sort=False):
        x = g["examples_seen"].to_numpy()
        line = axes[0].plot(x, g["SRC"], marker="o", label=name)[0]
        nan = g["SRC"].isna().to_numpy()
        axes[0].scatter(x[nan], np.zeros(nan.sum()), marker="x", color=line.get_color())
        axes[1].plot(x, g["MAE"], marker="o", color=line.get_color())
        axes[2].plot(x, g["distinct_answers"], marker="o", color=line.get_color())
    if per_user_mean:
        axes[0].axhline(per_user_mean["SRC"], ls="--", color="grey", label="per-user mean")
        axes[1].axhline(per_user_mean["MAE"], ls="--", color="grey")
    axes[0].axhline(0.5, ls=":", color="black", lw=0.8, label="target SRC 0.5")
    axes[0].set(xlabel="training examples seen", ylabel="SRC (Spearman; × = constant answers)")
    axes[1].set(xlabel="training examples seen", ylabel="MAE (log-views)")
    axes[2].set(xlabel="training examples seen", ylabel="distinct answers (of 150)", yscale="log")
    axes[0].legend(fontsize=7)
    fig.suptitle("SFT learning curves on the 3-shot test users (committed measurement)", fontsize=10)
    fig.tight_layout()
    return fig


def summary_sentence(curves: pd.DataFrame) -> str:
    """One computed sentence: the best SRC any curve reached, and how many distinct answers they gave."""
    best = curves.loc[curves["SRC"].idxmax()] if curves["SRC"].notna().any() else None
    most = int(curves["distinct_answers"].max())
    seen = int(curves["examples_seen"].max())
    head = (
        f"Across {curves['curve'].nunique()} SFT configurations and up to {seen:,} training examples seen, "
        f"the model answered at most {most} distinct number(s) for the 150 test users; "
    )
    if best is None:
        return head + "SRC was NaN at every checkpoint (one answer for every user)."
    return head + (
        f"the best SRC was {best['SRC']:.2f} ({best['curve']}, {int(best['examples_seen']):,} "
        f"examples seen), against the target 0.5."
    )


def check_committed(world: Any, path: Path = CURVES_FILE) -> list[str]:
    """Problems that make the committed curves stale ([] = current): a config hash or data fingerprint that
    differs from the code's / the world's."""
    df = load_committed(path)
    problems = []
    if set(df["config_hash"]) != {config_hash()}:
        problems.append(
            f"{path}: config hash {sorted(set(df['config_hash']))} != {config_hash()} "
            "(rebuild: python -m socialalign_lib.popularity.smp_llm_limits)"
        )
    if set(df["data_fingerprint"]) != {data_fingerprint(world)}:
        problems.append(
            f"{path}: data fingerprint differs from the world's "
            "(rebuild: python -m socialalign_lib.popularity.smp_llm_limits)"
        )
    return problems


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="course")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=CURVES_FILE)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    st.set_threads(a.threads)
    print(measure_all(a.size, a.seed, a.out).to_string())


if __name__ == "__main__":
    main()
