"""Paired comparisons of the results table's rows: which differences are real, and sentences printed from them.

A table row's CI says how stable its own number is; whether row A beats row B is a different question, answered on
the *same* units (the same replies for sentiment accuracy, the same topics for crowd JS) so that what both share —
a hard topic, an ambiguous reply — cancels. Everything here works on per-unit scores averaged over seeds
(:func:`unit_scores`), resampled by a paired bootstrap over units (:func:`paired_difference`).

* :func:`paired_best` — the table marks a column's best row only when it is separated from the runner-up.
* :func:`compare` / :func:`describe_difference` — one sentence per comparison for the notebooks' verdict cells:
  "A is better than B by x [CI]" only when the interval excludes 0, otherwise "cannot be told apart".
* :func:`js_difference` / :func:`describe_js_difference` — the same question for one seed's crowds, answered by
  resampling *users* (``divergences.multinomial_replicates``) instead of units: the real crowd once per replicate,
  both predictions independently, so the real sample's noise cancels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from socialalign_lib.data.schema import SENTIMENTS

from .distributions import PRED_COL, crowd_counts, crowd_frames
from .divergences import _counts_matrix, _reference, js_divergence, multinomial_replicates

__all__ = [
    "best_marks",
    "compare",
    "describe_best",
    "describe_difference",
    "describe_js_difference",
    "js_difference",
    "paired_best",
    "paired_difference",
    "seed_mean_scores",
    "unit_scores",
]

_LOWER = {"js": True, "sent_acc": False}


def unit_scores(
    labelled: pd.DataFrame,
    metric: str,
    labels: Sequence[str] = SENTIMENTS,
    real: str = "labeller",
    gold_col: str = "sentiment",
) -> pd.Series:
    """Per-unit scores of one labelled frame: ``sent_acc`` — 1/0 per reply (index ``case_id``, else
    ``topic_id|user_id``); ``js`` — JS(real crowd, predicted crowd) per topic (index ``topic_id``)."""
    if metric == "sent_acc":
        key = (
            labelled["case_id"] if "case_id" in labelled else labelled["topic_id"] + "|" + labelled["user_id"]
        )
        hit = (labelled[gold_col].astype(str) == labelled[PRED_COL].astype(str)).astype(float)
        return pd.Series(hit.to_numpy(), index=key.to_numpy())
    if metric == "js":
        real_df, pred_df = crowd_frames(labelled, real, gold_col=gold_col)
        r = crowd_counts(real_df, labels)
        p = crowd_counts(pred_df, labels).reindex(r.index).fillna(0)
        rv, pv = r.to_numpy(float), p.to_numpy(float)
        return pd.Series(
            js_divergence(rv / rv.sum(1, keepdims=True), pv / pv.sum(1, keepdims=True)), index=r.index
        )
    raise ValueError(f"unit_scores: metric must be 'sent_acc' or 'js', got {metric!r}")


def seed_mean_scores(
    frames: Mapping[tuple[str, int], pd.DataFrame],
    split: str,
    metric: str,
    labels: Sequence[str] = SENTIMENTS,
    real: str = "labeller",
    gold_col: str = "sentiment",
) -> dict[str, pd.Series]:
    """``{method: per-unit score averaged over its seeds}`` on ``split``, from ``{(method, seed): labelled}``."""
    out: dict[str, list[pd.Series]] = {}
    for (method, _seed), frame in frames.items():
        sub = frame[frame["split"] == split]
        if len(sub):
            out.setdefault(method, []).append(unit_scores(sub, metric, labels, real, gold_col))
    return {m: pd.concat(v, axis=1).mean(axis=1) for m, v in out.items()}


def paired_difference(
    a: pd.Series, b: pd.Series, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
) -> dict[str, float]:
    """Mean of a − b over their common units with a paired bootstrap interval: ``{diff, low, high, n_units}``."""
    common = a.index.intersection(b.index)
    d = (a.reindex(common) - b.reindex(common)).dropna().to_numpy()
    if len(d) == 0:
        return {"diff": np.nan, "low": np.nan, "high": np.nan, "n_units": 0}
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return {"diff": float(d.mean()), "low": float(low), "high": float(high), "n_units": len(d)}


def paired_best(
    scores: Mapping[str, pd.Series],
    lower_is_better: bool,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, object]:
    """The best method by mean over the units all methods share, and whether a paired bootstrap separates it from
    the runner-up (``separated``: the 1−alpha interval of best − runner-up excludes 0).

    Returns ``{best, runner_up, diff, low, high, separated, n_units}``."""
    names = [m for m, s in scores.items() if s.notna().any()]
    if len(names) < 2:
        return {
            "best": names[0] if names else None,
            "runner_up": None,
            "diff": np.nan,
            "low": np.nan,
            "high": np.nan,
            "separated": False,
            "n_units": 0,
        }
    common = sorted(set.intersection(*(set(scores[m].dropna().index) for m in names)))
    means = pd.Series({m: scores[m].reindex(common).mean() for m in names}).sort_values(
        ascending=lower_is_better
    )
    best, runner = means.index[0], means.index[1]
    diff = paired_difference(
        scores[best].reindex(common), scores[runner].reindex(common), n_boot, alpha, seed
    )
    separated = bool(diff["high"] < 0) if lower_is_better else bool(diff["low"] > 0)
    return {"best": best, "runner_up": runner, **diff, "separated": separated}


def describe_best(result: Mapping[str, object], metric: str, split: str) -> str:
    """One sentence from :func:`paired_best`."""
    if result["runner_up"] is None:
        return f"{split} · {metric}: only {result['best']} was scored."
    ci = f"{result['diff']:+.3f} [{result['low']:+.3f}, {result['high']:+.3f}] over {result['n_units']} units"
    if result["separated"]:
        return (
            f"{split} · {metric}: **{result['best']}** is best, separated from {result['runner_up']} ({ci})."
        )
    return f"{split} · {metric}: no single best — {result['best']} and {result['runner_up']} cannot be told apart ({ci})."  # noqa: E501


def best_marks(
    frames: Mapping[tuple[str, int], pd.DataFrame],
    splits: Sequence[str],
    competitors: Sequence[str],
    metrics: Sequence[str] = ("sent_acc", "js"),
    labels: Sequence[str] = SENTIMENTS,
    real: str = "labeller",
    gold_col: str = "sentiment",
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[dict[tuple[str, str], set[str]], list[str]]:
    """For ``results.plot_results_table(best=...)``: ``{(split, metric): {best}}`` where :func:`paired_best` over
    the ``competitors`` separates a best row (empty otherwise), and the sentences saying so."""
    marks, text = {}, []
    for split in splits:
        for metric in metrics:
            scores = seed_mean_scores(
                {k: v for k, v in frames.items() if k[0] in competitors},
                split,
                metric,
                labels,
                real,
                gold_col,
            )
            res = paired_best(scores, _LOWER[metric], n_boot=n_boot, seed=seed)
            marks[split, metric] = {res["best"]} if res["separated"] else set()
            text.append(describe_best(res, metric, split))
    return marks, text


def compare(
    frames: Mapping[tuple[str, int], pd.DataFrame],
    a: str,
    b: str,
    split: str,
    metric: str,
    labels: Sequence[str] = SENTIMENTS,
    real: str = "labeller",
    gold_col: str = "sentiment",
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Paired difference A − B of ``metric`` on ``split`` (per-unit scores averaged over each method's seeds)."""
    scores = seed_mean_scores(
        {k: v for k, v in frames.items() if k[0] in (a, b)}, split, metric, labels, real, gold_col
    )
    if a not in scores or b not in scores:
        raise KeyError(f"compare: no {split} replies for {a!r} or {b!r}")
    return paired_difference(scores[a], scores[b], n_boot=n_boot, seed=seed)


def describe_difference(diff: Mapping[str, float], a: str, b: str, metric: str) -> str:
    """ "A is better / worse than B" only when the paired interval excludes 0, else "cannot be told apart"."""
    lower = _LOWER.get(metric, False)
    ci = f"{metric} {diff['diff']:+.3f} [{diff['low']:+.3f}, {diff['high']:+.3f}], {diff['n_units']} units"
    better = diff["high"] < 0 if lower else diff["low"] > 0
    worse = diff["low"] > 0 if lower else diff["high"] < 0
    if better:
        return f"{a} is better than {b} ({ci})."
    if worse:
        return f"{a} is worse than {b} ({ci})."
    return f"{a} and {b} cannot be told apart ({ci})."


# ------------------------------------------------------------------ paired crowd divergence (bootstrapped crowds)
def js_difference(
    real_df: pd.DataFrame,
    pred_a: pd.DataFrame,
    pred_b: pd.DataFrame,
    labels: Sequence[str] = SENTIMENTS,
    n_boot: int = 1000,
    alpha: float = 0.05,
    base: float = 2.0,
    seed: int | None = 0,
) -> dict[str, float]:
    """Paired comparison of two methods on the same topics: mean over topics of JS(real, A) − JS(real, B), with
    a bootstrap CI in which each replicate resamples the real crowd *once* and both predictions independently
    (so the noise of the real sample, common to both methods, cancels). Negative = A is closer to the real crowd.

    Returns ``{diff, low, high, a_wins}``; ``a_wins`` is the share of topics where A's point JS is lower.
    """
    labels = list(labels)
    topics, ref, _ = _reference(real_df, None, pred_a, labels)
    a = _counts_matrix(pred_a, labels, topics, "pred_a")
    b = _counts_matrix(pred_b, labels, topics, "pred_b")
    rng = np.random.default_rng(seed)
    norm = lambda c: c / c.sum(axis=1, keepdims=True)  # noqa: E731
    js_a, js_b = js_divergence(norm(ref), norm(a), base), js_divergence(norm(ref), norm(b), base)
    boot_ref = multinomial_replicates(ref, n_boot, rng)
    diff = (
        js_divergence(boot_ref, multinomial_replicates(a, n_boot, rng), base)
        - js_divergence(boot_ref, multinomial_replicates(b, n_boot, rng), base)
    ).mean(axis=1)  # [B]
    low, high = np.quantile(diff, [alpha / 2, 1 - alpha / 2])
    return {
        "diff": float(np.mean(js_a - js_b)),
        "low": float(low),
        "high": float(high),
        "a_wins": float(np.mean(js_a < js_b)),
    }


def describe_js_difference(diff: Mapping[str, float], a: str, b: str, n_topics: int | None = None) -> str:
    """One honest sentence from a :func:`js_difference` result: A is closer to / further from the real crowd than
    B only when the whole CI of the paired difference is below / above 0; otherwise the two cannot be told apart
    on these topics. Numbers are rounded to 3 decimals."""
    ci = f"mean ΔJS {diff['diff']:+.3f}, 95% CI [{diff['low']:+.3f}, {diff['high']:+.3f}]"
    wins = f"; {a} is closer on {diff['a_wins']:.0%} of the {f'{n_topics} ' if n_topics else ''}topics"
    if diff["high"] < 0:
        verdict = f"{a} is closer to the real crowd than {b}"
    elif diff["low"] > 0:
        verdict = f"{a} is further from the real crowd than {b}"
    else:
        verdict = f"{a} and {b} cannot be told apart on these topics"
    return f"{verdict} ({ci}{wins})."
