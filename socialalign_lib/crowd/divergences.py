"""Divergences between crowds and the library's one crowd bootstrap (:func:`multinomial_replicates`).

The official SocialAlign code publishes no macro-level evaluation (docs/methods.md#divergences), so these are our
definitions:

* :func:`kl_divergence` KL(real ‖ predicted), *real first*: the expected extra bits to encode the real crowd's
  labels with the model's distribution. It blows up when the model gives ~0 to a sentiment the public
  expresses — the failure we care about most — so it is smoothed (``eps``) to stay finite.
* :func:`js_divergence` Jensen–Shannon, symmetric, base 2, in [0, 1], no smoothing needed: the headline number.
* :func:`total_variation` ½ Σ |p − q|: the share of the crowd that would have to change sentiment; easiest to
  read aloud ("the model misplaces 12 % of the public").
* Per topic with CIs: :func:`compare_crowds` (real vs generated replies) and :func:`compare_to_truth` (the world's
  true expected crowd vs generated replies); one number per method: :func:`mean_divergences`. All resample with
  :func:`multinomial_replicates`, because a topic with 30 replies has a noisy distribution and a gap of 0.05 in JS
  may be chance. :func:`bootstrap_ci` is the generic row-resampling bootstrap for any statistic.

All divergence functions take distributions on the last axis, ``[..., K]`` (counts are fine: they are
normalised first), and return a float for one pair or an array ``[...]`` for a batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from scipy.special import rel_entr

from socialalign_lib.data.schema import SENTIMENTS

from .distributions import _crowd_counts, crowd_counts

__all__ = [
    "DIVERGENCES",
    "OVERALL",
    "bootstrap_ci",
    "compare_crowds",
    "compare_to_truth",
    "divergences",
    "js_divergence",
    "kl_divergence",
    "mean_divergences",
    "multinomial_replicates",
    "total_variation",
]

OVERALL = "(all)"
"""Row label of the pooled "all topics" row in :func:`compare_crowds` (``overall=True``)."""

DIVERGENCES: tuple[str, ...] = ("js", "kl", "tv")
"""The three divergences, in the column order of :func:`compare_to_truth` and the keys of :func:`mean_divergences`."""
_DIVERGENCES = ("kl", "js", "tv")
"""The same three in :func:`compare_crowds`' column order (kept as it was: the notebooks show these frames)."""


def _normalise(p: np.ndarray | Sequence[float], name: str) -> np.ndarray:
    """``p / p.sum(-1)`` after checking ``p`` is finite, non-negative and has mass on every row."""
    arr = np.asarray(p, dtype=float)
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise ValueError(f"{name} must have at least one class on its last axis, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be finite and non-negative, got {arr}")
    total = arr.sum(axis=-1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError(
            f"{name} has a row with zero total mass; a distribution needs at least one observation"
        )
    return arr / total


def _pair(p: np.ndarray | Sequence[float], q: np.ndarray | Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    pn, qn = _normalise(p, "p"), _normalise(q, "q")
    if pn.shape[-1] != qn.shape[-1]:
        raise ValueError(f"p has {pn.shape[-1]} classes but q has {qn.shape[-1]}")
    return pn, qn


def _out(x: np.ndarray) -> float | np.ndarray:
    return float(x) if np.ndim(x) == 0 else x


def kl_divergence(
    p: np.ndarray | Sequence[float], q: np.ndarray | Sequence[float], eps: float = 1e-6, base: float = 2.0
) -> float | np.ndarray:
    """KL(p ‖ q) = Σ_k p_k log(p_k / q_k) / log(base), with p = the **real** crowd and q = the **predicted** one.

    Smoothing, stated exactly: p and q are normalised to sum 1, then ``eps`` is added to every class of *both*
    and each is renormalised: p'_k = (p_k + eps) / (1 + K·eps). So a class the model never predicts costs about
    p_k·log(p_k/eps) instead of infinity, and identical inputs still give exactly 0. ``eps=0`` gives the raw KL
    (``inf`` when q_k = 0 < p_k). Terms with p'_k = 0 are 0 (0·log 0 = 0).
    """
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    pn, qn = _pair(p, q)
    pn = _normalise(pn + eps, "p")
    qn = _normalise(qn + eps, "q")
    return _out(rel_entr(pn, qn).sum(axis=-1) / np.log(base))


def js_divergence(
    p: np.ndarray | Sequence[float], q: np.ndarray | Sequence[float], base: float = 2.0
) -> float | np.ndarray:
    """Jensen–Shannon divergence ½ KL(p ‖ m) + ½ KL(q ‖ m), m = (p + q) / 2, in units of log(base).

    Symmetric, always finite (m_k ≥ p_k / 2, so no smoothing is needed), and in [0, 1] for base 2, which makes it
    comparable across topics and label sets. Equals ``scipy.spatial.distance.jensenshannon(p, q, base)**2``
    (scipy returns the distance, the square root). Rounding residue is clipped to [0, log_base 2].
    """
    pn, qn = _pair(p, q)
    m = 0.5 * (pn + qn)
    js = 0.5 * (rel_entr(pn, m).sum(axis=-1) + rel_entr(qn, m).sum(axis=-1)) / np.log(base)
    return _out(np.clip(js, 0.0, np.log(2.0) / np.log(base)))


def total_variation(p: np.ndarray | Sequence[float], q: np.ndarray | Sequence[float]) -> float | np.ndarray:
    """Total variation distance ½ Σ_k |p_k − q_k| in [0, 1]: the largest difference in probability the two crowds
    give to any set of sentiments, i.e. the share of replies that would have to change label."""
    pn, qn = _pair(p, q)
    return _out(0.5 * np.abs(pn - qn).sum(axis=-1))


def bootstrap_ci(
    fn: Callable[..., float | np.ndarray],
    *samples: np.ndarray | Sequence,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int | np.random.Generator | None = 0,
    vectorized: bool = False,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval ``(low, high)`` of ``fn(*samples)`` at level 1 − ``alpha``.

    Each sample (e.g. a topic's real labels and its generated labels) is resampled *independently*, with
    replacement, to its own size, ``n_boot`` times; the interval is the ``alpha/2`` and ``1 − alpha/2`` quantiles
    of ``fn`` over the replicates. With ``vectorized=True``, ``fn`` receives all replicates at once, each sample as
    ``[n_boot, n_i]``, and must return ``[n_boot]`` (one call instead of ``n_boot``).

    Caveat, worth knowing for divergences: plug-in divergences are biased upwards (two finite samples of the
    same crowd differ), and the bootstrap adds that bias again, so for nearly identical crowds the percentile
    interval can sit entirely above the point estimate. Read the CI as "how stable is this number", and compare
    models on the same topics.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    arrays = [np.asarray(s) for s in samples]
    if not arrays or any(len(a) == 0 for a in arrays):
        raise ValueError("bootstrap_ci needs at least one sample, each non-empty")
    rng = np.random.default_rng(seed)
    resampled = [a[rng.integers(0, len(a), size=(n_boot, len(a)))] for a in arrays]
    if vectorized:
        stats = np.asarray(fn(*resampled), dtype=float)
        if stats.shape != (n_boot,):
            raise ValueError(f"a vectorized fn must return shape ({n_boot},), got {stats.shape}")
    else:
        stats = np.array([fn(*(r[b] for r in resampled)) for b in range(n_boot)], dtype=float)
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def multinomial_replicates(counts: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap replicates ``[n_boot, T, K]`` of the per-topic distributions of label ``counts [T, K]``.

    The library's one crowd bootstrap (:func:`compare_crowds`, :func:`compare_to_truth`, :func:`mean_divergences`
    and ``comparisons.js_difference``): resampling a topic's n replies with replacement and counting labels *is* one
    Multinomial(n, p̂) draw, so the counts are drawn directly — every topic and replicate in one vectorised call,
    O(K) instead of O(n) per replicate, the same distribution as resampling rows (:func:`bootstrap_ci`).
    Every row of ``counts`` needs at least one reply."""
    counts = np.asarray(counts, dtype=float)
    n = counts.sum(axis=1)
    if np.any(n <= 0):
        raise ValueError("multinomial_replicates: every topic needs at least one reply")
    return rng.multinomial(n.astype(np.int64), counts / n[:, None], size=(n_boot, len(counts))) / n[:, None]


def divergences(p: np.ndarray, q: np.ndarray, eps: float = 1e-6, base: float = 2.0) -> dict[str, np.ndarray]:
    """``{"kl", "js", "tv"}`` of ``p`` against ``q`` (any batch shape ``[..., K]``): the three numbers every
    comparison table here reports."""
    return {
        "kl": np.asarray(kl_divergence(p, q, eps, base)),
        "js": np.asarray(js_divergence(p, q, base)),
        "tv": np.asarray(total_variation(p, q)),
    }


def compare_crowds(
    real_df: pd.DataFrame,
    pred_df: pd.DataFrame,
    labels: Sequence[str] = SENTIMENTS,
    n_boot: int = 1000,
    seed: int | None = 0,
    topic_col: str = "topic_id",
    label_col: str = "sentiment",
    alpha: float = 0.05,
    eps: float = 1e-6,
    base: float = 2.0,
    overall: bool = False,
    missing: Literal["raise", "drop"] = "raise",
) -> pd.DataFrame:
    """Real vs generated crowd, per topic: one row per topic (sorted) with

    ``n_real``, ``n_pred``; ``real_<label>`` and ``pred_<label>`` (the two distributions); ``kl`` (KL(real ‖ pred),
    smoothed with ``eps``), ``js``, ``tv``; and, when ``n_boot > 0``, ``<div>_low`` / ``<div>_high``: the
    percentile bootstrap CI at level 1 − ``alpha``.

    Bootstrap: :func:`multinomial_replicates` of the real replies, then of the generated ones, independently
    (each topic's replies resampled with replacement, drawn as multinomial counts). Deterministic for a given
    ``seed``.

    ``overall=True`` adds a row :data:`OVERALL` pooling every reply (a crowd-weighted view). Topics present in
    only one frame raise (``missing="raise"``) or are left out (``missing="drop"``). Classes with zero
    probability never produce NaN or inf (KL is smoothed; JS and TV are finite by construction).
    """
    if missing not in ("raise", "drop"):
        raise ValueError(f"missing must be 'raise' or 'drop', got {missing!r}")
    labels = list(labels)
    real = _crowd_counts(real_df, topic_col, label_col, labels, "real_df")
    pred = _crowd_counts(pred_df, topic_col, label_col, labels, "pred_df")
    only_real, only_pred = real.index.difference(pred.index), pred.index.difference(real.index)
    if missing == "raise" and (len(only_real) or len(only_pred)):
        raise ValueError(
            f"topics only in real_df: {list(only_real[:5])}{' …' if len(only_real) > 5 else ''}; "
            f"only in pred_df: {list(only_pred[:5])}{' …' if len(only_pred) > 5 else ''} "
            f"(pass missing='drop' to compare the shared topics)"
        )
    topics = real.index.intersection(pred.index).sort_values()
    if len(topics) == 0:
        raise ValueError("real_df and pred_df share no topic")
    real, pred = real.loc[topics], pred.loc[topics]
    if overall:
        real.loc[OVERALL] = real.sum(axis=0)
        pred.loc[OVERALL] = pred.sum(axis=0)
    rc, pc = real.to_numpy(dtype=float), pred.to_numpy(dtype=float)  # [T, K]
    n_real, n_pred = rc.sum(axis=1), pc.sum(axis=1)
    p_real, p_pred = rc / n_real[:, None], pc / n_pred[:, None]

    out = pd.DataFrame(index=real.index.rename(topic_col))
    out["n_real"], out["n_pred"] = n_real.astype(int), n_pred.astype(int)
    for k, lab in enumerate(labels):
        out[f"real_{lab}"] = p_real[:, k]
    for k, lab in enumerate(labels):
        out[f"pred_{lab}"] = p_pred[:, k]
    point = divergences(p_real, p_pred, eps, base)
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        boot_real = multinomial_replicates(rc, n_boot, rng)  # [B, T, K]
        boot_pred = multinomial_replicates(pc, n_boot, rng)
        boot = divergences(boot_real, boot_pred, eps, base)  # each [B, T]
    for name in _DIVERGENCES:
        out[name] = point[name]
        if n_boot > 0:
            low, high = np.quantile(boot[name], [alpha / 2, 1 - alpha / 2], axis=0)
            out[f"{name}_low"], out[f"{name}_high"] = low, high
    return out


# ------------------------------------------------------------------ against a fixed truth, and per method
def _counts_matrix(crowd: pd.DataFrame, labels: Sequence[str], topics: pd.Index, name: str) -> np.ndarray:
    """Label counts ``[T, K]`` of ``crowd`` for exactly ``topics`` (in that order); a missing topic raises."""
    counts = crowd_counts(crowd, labels)
    missing = topics.difference(counts.index)
    if len(missing):
        raise ValueError(f"{name} has no reply for topic(s) {list(missing[:5])}")
    return counts.loc[topics].to_numpy(dtype=float)  # [T, K]


def _reference(
    real_df: pd.DataFrame | None, truth: pd.DataFrame | None, pred_df: pd.DataFrame, labels: Sequence[str]
) -> tuple[pd.Index, np.ndarray, bool]:
    """Topics, the reference matrix ``[T, K]`` (counts, or probabilities when it is the fixed truth) and whether it
    is resampled."""
    if (real_df is None) == (truth is None):
        raise ValueError(
            "give exactly one reference: real_df (replies, resampled) or truth (fixed distributions)"
        )
    pred_topics = pd.Index(sorted(set(pred_df["topic_id"])))
    if truth is not None:
        topics = pred_topics
        missing = topics.difference(truth.index)
        if len(missing):
            raise ValueError(f"truth has no row for topic(s) {list(missing[:5])}")
        return topics, truth.loc[topics, list(labels)].to_numpy(dtype=float), False
    topics = pd.Index(sorted(set(real_df["topic_id"])))
    if not topics.equals(pred_topics):
        raise ValueError(
            f"real and predicted crowds cover different topics: only real "
            f"{list(topics.difference(pred_topics)[:5])}, only predicted "
            f"{list(pred_topics.difference(topics)[:5])}"
        )
    return topics, _counts_matrix(real_df, labels, topics, "real_df"), True


def _boot_per_topic(
    real_df: pd.DataFrame | None,
    pred_df: pd.DataFrame,
    truth: pd.DataFrame | None,
    labels: Sequence[str],
    n_boot: int,
    eps: float,
    base: float,
    rng: np.random.Generator,
):
    """Topics, reference and predicted distributions ``[T, K]``, point divergences ``{name: [T]}`` and bootstrap
    replicates ``{name: [n_boot, T]}``."""
    topics, ref, resample_ref = _reference(real_df, truth, pred_df, labels)
    pred = _counts_matrix(pred_df, labels, topics, "pred_df")
    p_ref, p_pred = ref / ref.sum(axis=1, keepdims=True), pred / pred.sum(axis=1, keepdims=True)
    point = divergences(p_ref, p_pred, eps, base)  # each [T]
    boot_ref = (
        multinomial_replicates(ref, n_boot, rng)
        if resample_ref
        else np.broadcast_to(p_ref, (n_boot, *p_ref.shape))
    )
    boot = divergences(boot_ref, multinomial_replicates(pred, n_boot, rng), eps, base)  # each [B, T]
    return topics, p_ref, p_pred, point, boot


def compare_to_truth(
    truth: pd.DataFrame,
    pred_df: pd.DataFrame,
    labels: Sequence[str] = SENTIMENTS,
    n_boot: int = 1000,
    alpha: float = 0.05,
    eps: float = 1e-6,
    base: float = 2.0,
    seed: int | None = 0,
) -> pd.DataFrame:
    """Per topic: the true expected crowd (:func:`true_crowd`) against a generated crowd, in the columns of
    ``compare_crowds`` (``true_<label>``, ``pred_<label>``, ``js`` / ``kl`` / ``tv`` with ``_low`` / ``_high``).
    The truth is a fixed distribution, so only the generated replies are resampled."""
    labels = list(labels)
    topics, p_ref, p_pred, point, boot = _boot_per_topic(
        None, pred_df, truth, labels, n_boot, eps, base, np.random.default_rng(seed)
    )
    out = pd.DataFrame(index=topics.rename("topic_id"))
    out["n_pred"] = crowd_counts(pred_df, labels).loc[topics].sum(axis=1).to_numpy()
    for k, lab in enumerate(labels):
        out[f"true_{lab}"] = p_ref[:, k]
    for k, lab in enumerate(labels):
        out[f"pred_{lab}"] = p_pred[:, k]
    for name in DIVERGENCES:
        out[name] = point[name]
        out[f"{name}_low"], out[f"{name}_high"] = np.quantile(boot[name], [alpha / 2, 1 - alpha / 2], axis=0)
    return out


def mean_divergences(
    real_df: pd.DataFrame | None,
    pred_df: pd.DataFrame,
    labels: Sequence[str] = SENTIMENTS,
    truth: pd.DataFrame | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    eps: float = 1e-6,
    base: float = 2.0,
    seed: int | None = 0,
    interval: Literal["topics", "percentile", "basic"] = "topics",
) -> dict[str, float]:
    """Mean over topics of JS, KL(real ‖ pred) and TV, each with a bootstrap CI.

    Returns ``{js, js_low, js_high, kl, …, tv_high, n_topics}``. The reference is the real crowd ``real_df``
    (resampled, like the prediction: each topic's users are drawn with replacement, independently per topic and
    per crowd) or, instead, the fixed ``truth`` distribution frame. Every topic weighs the same, whatever its
    number of replies: the question is "how well does the model do on a *topic*". The CI says how stable the
    number is under resampling users; it does not cover a different choice of topics.

    Intervals: ``"topics"`` (default) resamples the *topics* (their per-topic divergences fixed): the percentile
    interval of the mean over another draw of topics. It answers the question a results table asks — would the
    ranking hold on other news events? — and, the mean being linear in the topics, it is centred on the point
    estimate. The two user-resampling intervals below answer "how stable is this number under other users".
    ``"percentile"`` (as :func:`compare_crowds` reports per topic) is
    ``[q(α/2), q(1−α/2)]`` of the replicates. Caveat: a plug-in divergence between two small samples is biased
    *upwards* (two samples of the same crowd differ), and resampling adds that bias a second time, so with crowds
    of a few users the percentile interval can lie entirely above the point estimate — read it as "how stable",
    compare methods with :func:`js_difference`, and read levels against the oracle. ``"basic"`` is
    ``[2θ̂ − q(1−α/2), 2θ̂ − q(α/2)]`` (clipped at 0): an interval for the bias-corrected divergence, i.e. for
    the divergence between the two *populations*, which can lie below the plug-in point for the same reason.
    """
    if interval not in ("topics", "basic", "percentile"):
        raise ValueError(f"interval must be 'topics', 'basic' or 'percentile', got {interval!r}")
    labels = list(labels)
    rng = np.random.default_rng(seed)
    topics, _, _, point, boot = _boot_per_topic(real_df, pred_df, truth, labels, n_boot, eps, base, rng)
    topic_draws = rng.integers(
        0, len(topics), size=(n_boot, len(topics))
    )  # [B, T] indices of resampled topics
    out: dict[str, float] = {}
    for name in DIVERGENCES:
        value = float(point[name].mean())
        means = point[name][topic_draws].mean(axis=1) if interval == "topics" else boot[name].mean(axis=1)
        q_low, q_high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
        if interval == "basic":
            q_low, q_high = max(0.0, 2 * value - q_high), max(0.0, 2 * value - q_low)
        out[name], out[f"{name}_low"], out[f"{name}_high"] = value, float(q_low), float(q_high)
    out["n_topics"] = len(topics)
    return out
