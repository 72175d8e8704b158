"""Crowd figures: per-topic stacked bars, per-topic divergence with CIs, predicted vs real share of a sentiment.

Why it exists: figures are library functions (tests call them, notebooks only save them), and these three read the
frames of :mod:`.distributions` and :mod:`.divergences` (``compare_crowds``, ``compare_to_truth``,
``real.compare_real_crowds``) directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from socialalign_lib.data.schema import SENTIMENTS

from ..plots import figure_text, label_colors
from .distributions import _need

if TYPE_CHECKING:
    from ..world import World

__all__ = [
    "plot_crowd_bars",
    "plot_share_scatter",
    "plot_topic_divergence",
    "split_comparison",
    "topic_names",
]


def _dist_rows(frame: pd.DataFrame, labels: Sequence[str], prefix: str = "") -> pd.DataFrame:
    cols = [f"{prefix}{lab}" for lab in labels]
    _need(frame, cols, "distribution frame")
    out = frame[cols].astype(float)
    out.columns = list(labels)
    return out


def topic_names(world: World | None, topics: Sequence[str], max_hashtag: int = 9) -> dict[str, str]:
    """Display names for topic ids in figures: ``"#hashtag# · category"`` (the hashtag cut to ``max_hashtag``
    characters) from the world, or the id itself for a topic the world does not know (or ``world`` None: real
    data). Why: a bare ``t00004`` says nothing to a reader of a figure."""
    known = {t.topic_id: t for t in world.topics} if world is not None else {}
    return {
        t: figure_text(f"#{known[t].hashtag[:max_hashtag]}# · {known[t].category}") if t in known else str(t)
        for t in topics
    }


def plot_crowd_bars(
    dists: Mapping[str, pd.DataFrame],
    labels: Sequence[str] = SENTIMENTS,
    title: str = "",
    topics: Sequence[str] | None = None,
    topic_names: Mapping[str, str] | None = None,
) -> plt.Figure:
    """Per-topic stacked bars, one bar per source side by side (e.g. ``{"real": …, "PAC-LoRA": …, "true": …}``).

    Each value is a distribution frame indexed by topic with one column per label (``crowd_distributions`` output,
    or ``compare_crowds(...)`` columns renamed — see :func:`split_comparison`). Topics are sorted by the first
    source's share of the first label, so a reader sees at a glance whether the prediction follows the real
    crowd from one-sided negative to one-sided positive. Hatching marks the non-first sources.

    ``topic_names`` maps a topic key to its display name (e.g. :func:`topic_names`: topic id →
    ``"#油价今晚上调# · 物价"``). A source with no
    crowd for a topic (no row, or a row of NaN) gets an empty grey outline marked "n/a", never a bar of zeros
    that reads as "nobody had an opinion".
    """
    names = list(dists)
    if not names:
        raise ValueError("plot_crowd_bars needs at least one distribution")
    first = _dist_rows(dists[names[0]], labels)
    keys = list(topics) if topics is not None else list(first.sort_values(labels[0], ascending=False).index)
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.34 * len(keys) * len(names) + 2), 4.2))
    colors = label_colors(list(labels))
    any_missing = False
    for j, name in enumerate(names):
        rows = _dist_rows(dists[name], labels).reindex(keys)
        absent = rows.isna().any(axis=1).to_numpy() | (rows.fillna(0.0).sum(axis=1) <= 0).to_numpy()
        data = rows.fillna(0.0).to_numpy()
        x = np.arange(len(keys)) - 0.4 + width * (j + 0.5)
        if absent.any():
            ax.bar(
                x[absent],
                np.ones(absent.sum()),
                width * 0.92,
                fill=False,
                edgecolor="0.6",
                linestyle=":",
                linewidth=0.8,
                label=None if any_missing else "no crowd (n/a)",
            )
            any_missing = True
            for xi in x[absent]:
                ax.text(xi, 0.5, "n/a", rotation=90, ha="center", va="center", fontsize=6, color="0.45")
        bottom = np.zeros(len(keys))
        for k, lab in enumerate(labels):
            ax.bar(
                x,
                data[:, k],
                width * 0.92,
                bottom=bottom,
                color=colors[k],
                edgecolor="white",
                linewidth=0.3,
                hatch=None if j == 0 else ("//", "..", "xx")[(j - 1) % 3],
                label=lab if j == 0 else None,
            )
            bottom += data[:, k]
    ax.set_xticks(np.arange(len(keys)))
    ax.set_xticklabels(
        [figure_text(topic_names.get(k, k) if topic_names else k) for k in keys], rotation=90, fontsize=8
    )
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of replies")
    ax.set_title(
        title
        or "Crowd sentiment per topic: "
        + " | ".join(
            f"{n}{'' if i == 0 else ' (' + ('//', '..', 'xx')[(i - 1) % 3] + ')'}"
            for i, n in enumerate(names)
        )
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    return fig


def split_comparison(
    comparison: pd.DataFrame, labels: Sequence[str] = SENTIMENTS, ref_prefix: str = "real_"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(reference, predicted)`` distribution frames from a ``compare_crowds`` / :func:`compare_to_truth`
    result (``ref_prefix`` ``"real_"`` or ``"true_"``), ready for :func:`plot_crowd_bars`."""
    return _dist_rows(comparison, labels, ref_prefix), _dist_rows(comparison, labels, "pred_")


def plot_topic_divergence(
    comparisons: Mapping[str, pd.DataFrame],
    metric: str = "js",
    title: str = "",
    topics: Sequence[str] | None = None,
    topic_names: Mapping[str, str] | None = None,
    xlabel: str = "topic",
    ylabel: str | None = None,
) -> plt.Figure:
    """Per-topic divergence with its bootstrap CI, one marker per method (dodged), from ``compare_crowds``
    results (or ``real.compare_real_crowds`` ones: day against day). Topics are ordered by the first
    method's value; ``topics`` fixes the order and may name topics a comparison lacks. Lower is better; the
    dashed line per method is its mean over the topics it has.

    ``topic_names`` maps a topic key to its display name (e.g. topic id → hashtag). A topic a comparison has no
    value for (no row, NaN, or a ``missing`` crowd) is drawn as a grey ``x`` on the axis, so a gap is visible
    instead of silently absent."""
    names = list(comparisons)
    if not names:
        raise ValueError("plot_topic_divergence needs at least one comparison")
    for n in names:
        _need(comparisons[n], [metric, f"{metric}_low", f"{metric}_high"], f"comparison {n!r}")
    if topics is not None:
        keys = list(topics)
    else:
        keys = list(comparisons[names[0]].sort_values(metric, na_position="last").index)
        keys += [k for n in names[1:] for k in comparisons[n].index if k not in set(keys)]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(keys) + 2.5), 3.6))
    marked = False
    cmap = plt.get_cmap("tab10")
    step = 0.7 / max(1, len(names))
    for j, n in enumerate(names):
        c = comparisons[n].reindex(keys)
        x = np.arange(len(keys)) - 0.35 + step * (j + 0.5)
        err = np.vstack([c[metric] - c[f"{metric}_low"], c[f"{metric}_high"] - c[metric]]).clip(0)
        ax.errorbar(x, c[metric], yerr=err, fmt="o", ms=3.5, lw=0.9, capsize=2, color=cmap(j % 10), label=n)
        ax.axhline(float(c[metric].mean()), color=cmap(j % 10), lw=0.8, ls="--", alpha=0.7)
        gone = c[metric].isna().to_numpy()
        if gone.any():
            ax.plot(
                x[gone],
                np.zeros(gone.sum()),
                "x",
                ms=5,
                color="0.5",
                clip_on=False,
                label=None if marked else "no crowd to compare",
            )
            marked = True
    ax.set_xticks(np.arange(len(keys)))
    ax.set_xticklabels(
        [figure_text(topic_names.get(k, k) if topic_names else k) for k in keys], rotation=90, fontsize=8
    )
    unit = {"js": "JS divergence (bits)", "kl": "KL(real ‖ pred) (bits)", "tv": "total variation"}.get(
        metric, metric
    )
    ax.set_ylabel(ylabel or unit)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(xlabel)
    ax.set_title(title or f"Per-topic {metric.upper()} to the real crowd (95% bootstrap CI; dashed: mean)")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def plot_share_scatter(
    comparisons: Mapping[str, pd.DataFrame],
    label: str = "negative",
    title: str = "",
    ref_prefix: str = "real_",
) -> plt.Figure:
    """Predicted vs real share of one sentiment per topic, one colour per method, with the diagonal (perfect)
    and each method's Pearson r in the legend. A cloud flatter than the diagonal means the method regresses to
    an average crowd and misses what makes a topic special."""
    names = list(comparisons)
    if not names:
        raise ValueError("plot_share_scatter needs at least one comparison")
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    cmap = plt.get_cmap("tab10")
    for j, n in enumerate(names):
        c = comparisons[n]
        _need(c, [f"{ref_prefix}{label}", f"pred_{label}"], f"comparison {n!r}")
        x, y = c[f"{ref_prefix}{label}"].to_numpy(float), c[f"pred_{label}"].to_numpy(float)
        r = np.corrcoef(x, y)[0, 1] if len(x) > 1 and x.std() > 0 and y.std() > 0 else float("nan")
        ax.scatter(x, y, s=18, alpha=0.8, color=cmap(j % 10), label=f"{n} (r={r:.2f})")
    ax.plot([0, 1], [0, 1], color="black", lw=0.8, ls=":")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"{ref_prefix.rstrip('_')} share of {label} replies")
    ax.set_ylabel(f"predicted share of {label} replies")
    ax.set_title(title or f"Share of {label} replies per topic")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig
