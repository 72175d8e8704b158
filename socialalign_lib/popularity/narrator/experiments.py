"""NARRATOR's ablation study: per-seed splits, the variants (hashtag guidance, image, demographics, sentiment
switched off), a least-squares context baseline, and ``mean ± CI`` summaries with paired differences."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import stats

from .model import Batch, NarratorConfig, NarratorModel
from .train import TrainConfig, predict, regression_metrics, subset, train_narrator


def split_indices(n: int, seed: int, fractions: tuple[float, float] = (0.7, 0.15)) -> tuple[np.ndarray, ...]:
    """Random train / validation / test row indices (a new split per seed, so the CI covers split noise too)."""
    idx = np.random.default_rng([seed, 9]).permutation(n)
    a, b = int(fractions[0] * n), int((fractions[0] + fractions[1]) * n)
    return idx[:a], idx[a:b], idx[b:]


VARIANTS: dict[str, dict] = {
    "NARRATOR (full)": {},
    "w/o hashtag guidance (self-attention)": {"guidance": "self"},
    "w/o hashtag guidance (mean pooling)": {"guidance": "mean"},
    "w/o image": {"use_image": False},
    "w/o demographics": {"use_demographics": False},
    "w/o sentiment": {"use_sentiment": False},
}


def context_baseline(
    train: Batch, test: Batch, demographics: bool = False, sentiment: bool = False
) -> np.ndarray:
    """Least-squares on the context features (user prior, month, hashtag count), optionally + demographics and
    sentiment: what a model gets without reading any text, image or hashtag *content*."""

    def design(b: Batch) -> np.ndarray:
        cols = [b["context"].numpy()]
        if demographics:
            cols.append(b["demo"].numpy())
        if sentiment:
            cols.append(b["sent"].numpy())
        return np.hstack([np.ones((len(b["y"]), 1)), *cols])

    coef, *_ = np.linalg.lstsq(design(train), train["y"].numpy(), rcond=None)
    return design(test) @ coef


def run_ablations(
    base: NarratorConfig,
    data: Batch,
    seeds: Sequence[int],
    variants: Mapping[str, dict] | None = None,
    tcfg: TrainConfig | None = None,
    baseline: bool = True,
    models: dict[tuple[str, int], NarratorModel] | None = None,
) -> pd.DataFrame:
    """Train every variant on every seed's split; one row per (variant, seed) with held-out metrics and time.

    Variants are overrides of ``base`` (see :data:`VARIANTS`); the split, initialisation and batch order depend
    only on the seed, so variants are compared on identical data. Choose settings on validation (``val_*``),
    report ``test_*``. ``baseline`` adds the least-squares context baseline; pass a dict as ``models`` to keep
    the trained models, keyed by ``(variant, seed)``.
    """
    variants = VARIANTS if variants is None else variants
    tcfg = tcfg or TrainConfig()
    rows = []
    for seed in seeds:
        tr, va, te = (subset(data, i) for i in split_indices(len(data["y"]), seed))
        if baseline:
            base_pred = context_baseline(tr, te, demographics=True, sentiment=True)
            rows.append(
                {
                    "variant": "linear: context + demographics + sentiment",
                    "seed": seed,
                    "epochs": 0,
                    "seconds": 0.0,
                    **{f"test_{k}": v for k, v in regression_metrics(base_pred, te["y"].numpy()).items()},
                }
            )
        for name, over in variants.items():
            t = time.perf_counter()
            model, hist = train_narrator(replace(base, **over), tr, va, replace(tcfg, seed=seed))
            if models is not None:
                models[(name, seed)] = model
            val_m = regression_metrics(predict(model, va), va["y"].numpy())
            test_m = regression_metrics(predict(model, te), te["y"].numpy())
            rows.append(
                {
                    "variant": name,
                    "seed": seed,
                    "epochs": len(hist),
                    "seconds": time.perf_counter() - t,
                    **{f"val_{k}": v for k, v in val_m.items()},
                    **{f"test_{k}": v for k, v in test_m.items()},
                }
            )
    return pd.DataFrame(rows)


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of a Student-t confidence interval (0 for a single value)."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()) if len(v) else float("nan"), 0.0
    return float(v.mean()), float(
        stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    )


def summarise(
    results: pd.DataFrame,
    metrics: Sequence[str] = ("test_mse", "test_mae", "test_src"),
    reference: str = "NARRATOR (full)",
) -> pd.DataFrame:
    """``mean ± CI`` per variant over seeds, plus the paired difference in test MSE to ``reference`` (positive:
    the variant is worse), which has a much tighter CI than the raw MSEs because the seeds share splits."""
    out = []
    ref = results[results.variant == reference].set_index("seed")
    for name, g in results.groupby("variant", sort=False):
        row = {"variant": name, "seeds": len(g)}
        for m in metrics:
            mu, ci = mean_ci(g[m])
            row[m.replace("test_", "")] = f"{mu:.3f} ± {ci:.3f}"
        if len(ref) and name != reference:
            diff = g.set_index("seed")["test_mse"] - ref["test_mse"]
            mu, ci = mean_ci(diff.dropna())
            row["Δmse vs full"] = f"{mu:+.3f} ± {ci:.3f}"
        else:
            row["Δmse vs full"] = ""
        if "seconds" in g:
            row["train s"] = round(float(g["seconds"].mean()), 1)
        out.append(row)
    return pd.DataFrame(out).set_index("variant")
