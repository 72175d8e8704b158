"""Crowd-level (macro) evaluation: does the crowd a model generates for a topic *feel* like the real one?

The recipe (docs/methods.md#crowd-level-evaluation; the official code publishes none, so these are our choices):

1. :func:`label_replies` — label every generated reply *and* every real reply with the **same** sentiment
   labeller. A labeller's mistakes then hit both crowds alike, instead of being counted as model error.
2. :func:`crowd_frames` — one row per reply, ``(topic_id, sentiment)``, for the real and the generated crowd;
   ``divergence.compare_crowds`` turns them into per-topic distributions, KL(real ‖ pred) (smoothed, ``eps``),
   JS (base 2) and TV with percentile bootstrap CIs that resample each topic's users.
3. :func:`mean_divergences` — the one number per method for the results table: the *mean over topics* of each
   divergence, with a bootstrap CI that resamples users inside every topic (the same multinomial bootstrap as
   ``compare_crowds``). :func:`js_difference` — the paired version for "is A better than B?".
4. Baselines that need no language model: :func:`category_prior` (each replying user gets a label drawn from the
   training replies of the topic's category: "people answer food news like they answered food news before") and,
   on the embedded world,
   :func:`oracle_crowd` (labels drawn from the true ``p(s|u,t)`` of the same users: the best any model can do,
   whose JS to the real crowd is pure sampling noise — the floor to read every other number against).
5. :func:`true_crowd` / :func:`compare_to_truth` — the world's true expected crowd over the same users, so a
   method can be judged against what the public *would* say on average, not only against one noisy sample.

Figures (library functions, the notebooks only save them): :func:`plot_crowd_bars` (per-topic stacked bars,
real vs predicted), :func:`plot_topic_divergence` (per-topic JS with CIs, one marker per method),
:func:`plot_share_scatter` (predicted vs real share of one sentiment, e.g. negative).

Frames: a *replies* frame is what ``socialllm.generate_replies`` returns (``case_id, topic_id, user_id, category,
split, variant, reference, sentiment, generated, …``); a *crowd* frame has one row per reply with ``topic_id`` and
``sentiment``; a *distribution* frame has one row per topic and one probability column per label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .divergence import _crowd_counts, divergences, js_divergence, multinomial_replicates
from .plots import figure_text, label_colors
from .schema import SENTIMENTS

if TYPE_CHECKING:
    from .sentiment import SentimentLabeller
    from .world import World

__all__ = [
    "DIVERGENCES",
    "PRED_COL",
    "REAL_COL",
    "category_prior",
    "compare_to_truth",
    "crowd_counts",
    "crowd_frames",
    "describe_js_difference",
    "js_difference",
    "label_replies",
    "mean_divergences",
    "oracle_crowd",
    "plot_crowd_bars",
    "plot_share_scatter",
    "plot_topic_divergence",
    "split_comparison",
    "topic_names",
    "true_crowd",
]

DIVERGENCES: tuple[str, ...] = ("js", "kl", "tv")
PRED_COL = "pred_sentiment"
"""Column :func:`label_replies` writes: the labeller's label of the *generated* reply."""
REAL_COL = "real_sentiment"
"""Column :func:`label_replies` writes: the labeller's label of the *real* reply (``reference``)."""

RealLabels = Literal["labeller", "gold"]


# --------------------------------------------------------------------------------------------- labelling
def _need(df: pd.DataFrame, cols: Sequence[str], name: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{name} has no column(s) {missing}; columns are {list(df.columns)}")


def label_replies(replies: pd.DataFrame, labeller: SentimentLabeller, text_col: str = "generated",
                  reference_col: str = "reference",
                  no_words: Literal["exclude", "prior"] = "exclude") -> pd.DataFrame:
    """A copy of ``replies`` with :data:`PRED_COL` (label of ``text_col``) and :data:`REAL_COL` (label of
    ``reference_col``), both from ``labeller``.

    A real reply with no words (empty, hashtags only: ``clean.has_words``) has no opinion to compare with, and
    a labeller would hand it its prior; with ``no_words="exclude"`` (default) such rows are left out of the
    result, their number in ``attrs["no_words"]`` and a warning. A *generated* reply with no words keeps its
    row and gets the labeller's answer for it: a model that writes nothing is charged for it, not excused.
    ``no_words="prior"`` keeps and labels every row."""
    _need(replies, [text_col, reference_col], "replies")
    from .sentiment import label_texts

    out = replies.copy()
    real = label_texts(labeller, out[reference_col].fillna("").astype(str).tolist(), no_words)
    keep = np.array([lab is not None for lab in real], dtype=bool)
    out[REAL_COL] = real
    out = out[keep].copy()
    out[PRED_COL] = labeller.predict(out[text_col].fillna("").astype(str).tolist())
    out = out[[c for c in out.columns if c != REAL_COL] + [REAL_COL]]  # PRED_COL, then REAL_COL, as always
    out.attrs["no_words"] = int((~keep).sum())
    if out.attrs["no_words"]:
        import warnings

        warnings.warn(f"label_replies: {out.attrs['no_words']} of {len(keep)} real replies have no words "
                      "(empty or hashtags only) and are left out (no_words='prior' keeps them)", stacklevel=2)
    return out


def crowd_frames(labelled: pd.DataFrame, real: RealLabels = "labeller", topic_col: str = "topic_id",
                 gold_col: str = "sentiment") -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(real_df, pred_df)``: one row per reply, columns ``topic_id`` and ``sentiment``, ready for
    ``divergence.compare_crowds``. ``real="labeller"`` (default) takes the real crowd's labels from the labeller
    (same function on both sides); ``"gold"`` takes the dataset's own labels (the world's truth, or a human
    annotation), which charges the labeller's errors to the model."""
    if real not in ("labeller", "gold"):
        raise ValueError(f"real must be 'labeller' or 'gold', got {real!r}")
    real_col = REAL_COL if real == "labeller" else gold_col
    _need(labelled, [topic_col, PRED_COL, real_col], "labelled replies (see label_replies)")
    real_df = pd.DataFrame({"topic_id": labelled[topic_col].to_numpy(), "sentiment": labelled[real_col].to_numpy()})
    pred_df = pd.DataFrame({"topic_id": labelled[topic_col].to_numpy(), "sentiment": labelled[PRED_COL].to_numpy()})
    return real_df, pred_df


def crowd_counts(crowd: pd.DataFrame, labels: Sequence[str] = SENTIMENTS, topic_col: str = "topic_id",
                 label_col: str = "sentiment") -> pd.DataFrame:
    """Counts ``[topics, labels]`` of a crowd frame (topics sorted; a label never seen is a column of zeros)."""
    return _crowd_counts(crowd, topic_col, label_col, list(labels), "crowd")


# --------------------------------------------------------------------------------------------- baselines
def category_prior(train: pd.DataFrame, test: pd.DataFrame, per_reply: bool = True, seed: int = 0,
                   topic_col: str = "topic_id", category_col: str = "category",
                   label_col: str = "sentiment") -> pd.DataFrame:
    """The non-LLM crowd baseline, as a crowd frame: each test topic is predicted by the training replies of its
    category ("people answer food news the way they answered food news before").

    * ``per_reply=True`` (default, the fair comparison with a generated crowd): one label per row of ``test`` (one
      per replying user), drawn (seeded) from the category's training distribution. A generated crowd has one
      sampled reply per user, so its plug-in JS carries that sampling noise; a baseline that handed in the exact
      distribution would win by not having to sample, not by knowing more. The oracle is built the same way.
    * ``per_reply=False``: every training reply of the category, relabelled with the test topic's id — the
      distribution itself (then ``compare_crowds`` bootstraps only the prior's estimation noise).

    A category with no training reply falls back to all training replies (the global prior). ``train`` needs
    ``category`` and ``label_col``; ``test`` needs ``topic_col`` and ``category`` (one category per topic).
    """
    _need(train, [category_col, label_col], "train")
    _need(test, [topic_col, category_col], "test")
    cats = test.groupby(topic_col)[category_col].agg(lambda s: sorted(set(s)))
    multi = cats[cats.map(len) > 1]
    if len(multi):
        raise ValueError(f"test topics with more than one category: {dict(multi.head(3))}")
    by_cat = {c: g[label_col].to_numpy() for c, g in train.groupby(category_col)}
    everything = train[label_col].to_numpy()
    if len(everything) == 0:
        raise ValueError("category_prior: no training replies")
    if per_reply:
        rng = np.random.default_rng(seed)
        drawn = [rng.choice(by_cat.get(cat, everything)) for cat in test[category_col]]
        return pd.DataFrame({"topic_id": test[topic_col].to_numpy(), "sentiment": drawn,
                             "category": test[category_col].to_numpy()})
    parts = []
    for topic, (cat,) in cats.items():
        labels = by_cat.get(cat, everything)
        parts.append(pd.DataFrame({"topic_id": topic, "sentiment": labels, "category": cat}))
    return pd.concat(parts, ignore_index=True)


def oracle_crowd(world: World, pairs: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """One label per ``(topic_id, user_id)`` row of ``pairs``, drawn from the world's true ``p(s|u,t)``: a crowd
    from a model that knows the truth exactly. Its divergence to the real crowd is sampling noise alone, the
    floor under every other method's number (world only)."""
    _need(pairs, ["topic_id", "user_id"], "pairs")
    rng = np.random.default_rng(seed)
    labels = list(world.labels)
    out = []
    for tid, uid in zip(pairs["topic_id"], pairs["user_id"]):
        p = world.response_probs.get((tid, uid))
        if p is None:
            raise KeyError(f"the world has no reply of user {uid!r} to topic {tid!r}")
        p = np.asarray(p, dtype=float)
        out.append(labels[int(rng.choice(len(labels), p=p / p.sum()))])
    return pd.DataFrame({"topic_id": pairs["topic_id"].to_numpy(), "sentiment": out})


def true_crowd(world: World, pairs: pd.DataFrame) -> pd.DataFrame:
    """The true expected crowd per topic over the users in ``pairs`` (``topic_id, user_id``): the mean of
    ``p(s|u,t)`` over them, as a distribution frame ``[topics, labels]`` plus ``n``. Restricting to the same users
    as the generated crowd matters: a topic's test-split repliers are not all its repliers."""
    _need(pairs, ["topic_id", "user_id"], "pairs")
    rows: dict[str, list[np.ndarray]] = {}
    for tid, uid in zip(pairs["topic_id"], pairs["user_id"]):
        p = world.response_probs.get((tid, uid))
        if p is None:
            raise KeyError(f"the world has no reply of user {uid!r} to topic {tid!r}")
        rows.setdefault(tid, []).append(np.asarray(p, dtype=float))
    out = pd.DataFrame({tid: np.mean(ps, axis=0) for tid, ps in sorted(rows.items())}, index=list(world.labels)).T
    out.index.name = "topic_id"
    out["n"] = [len(rows[t]) for t in out.index]
    return out


# --------------------------------------------------------------------------------------------- divergences
def _counts_matrix(crowd: pd.DataFrame, labels: Sequence[str], topics: pd.Index, name: str) -> np.ndarray:
    counts = crowd_counts(crowd, labels)
    missing = topics.difference(counts.index)
    if len(missing):
        raise ValueError(f"{name} has no reply for topic(s) {list(missing[:5])}")
    return counts.loc[topics].to_numpy(dtype=float)  # [T, K]


_replicates = multinomial_replicates  # the earlier private name: one crowd bootstrap, defined in divergence
_all_divergences = divergences


def _reference(real_df: pd.DataFrame | None, truth: pd.DataFrame | None, pred_df: pd.DataFrame,
               labels: Sequence[str]) -> tuple[pd.Index, np.ndarray, bool]:
    """Topics, the reference matrix ``[T, K]`` (counts, or probabilities when it is the fixed truth) and whether it
    is resampled."""
    if (real_df is None) == (truth is None):
        raise ValueError("give exactly one reference: real_df (replies, resampled) or truth (fixed distributions)")
    pred_topics = pd.Index(sorted(set(pred_df["topic_id"])))
    if truth is not None:
        topics = pred_topics
        missing = topics.difference(truth.index)
        if len(missing):
            raise ValueError(f"truth has no row for topic(s) {list(missing[:5])}")
        return topics, truth.loc[topics, list(labels)].to_numpy(dtype=float), False
    topics = pd.Index(sorted(set(real_df["topic_id"])))
    if not topics.equals(pred_topics):
        raise ValueError(f"real and predicted crowds cover different topics: only real "
                         f"{list(topics.difference(pred_topics)[:5])}, only predicted "
                         f"{list(pred_topics.difference(topics)[:5])}")
    return topics, _counts_matrix(real_df, labels, topics, "real_df"), True


def _boot_per_topic(real_df: pd.DataFrame | None, pred_df: pd.DataFrame, truth: pd.DataFrame | None,
                    labels: Sequence[str], n_boot: int, eps: float, base: float, rng: np.random.Generator):
    """Topics, reference and predicted distributions ``[T, K]``, point divergences ``{name: [T]}`` and bootstrap
    replicates ``{name: [n_boot, T]}``."""
    topics, ref, resample_ref = _reference(real_df, truth, pred_df, labels)
    pred = _counts_matrix(pred_df, labels, topics, "pred_df")
    p_ref, p_pred = ref / ref.sum(axis=1, keepdims=True), pred / pred.sum(axis=1, keepdims=True)
    point = divergences(p_ref, p_pred, eps, base)  # each [T]
    boot_ref = multinomial_replicates(ref, n_boot, rng) if resample_ref else np.broadcast_to(p_ref, (n_boot, *p_ref.shape))
    boot = divergences(boot_ref, multinomial_replicates(pred, n_boot, rng), eps, base)  # each [B, T]
    return topics, p_ref, p_pred, point, boot


def compare_to_truth(truth: pd.DataFrame, pred_df: pd.DataFrame, labels: Sequence[str] = SENTIMENTS,
                     n_boot: int = 1000, alpha: float = 0.05, eps: float = 1e-6, base: float = 2.0,
                     seed: int | None = 0) -> pd.DataFrame:
    """Per topic: the true expected crowd (:func:`true_crowd`) against a generated crowd, in the columns of
    ``compare_crowds`` (``true_<label>``, ``pred_<label>``, ``js`` / ``kl`` / ``tv`` with ``_low`` / ``_high``).
    The truth is a fixed distribution, so only the generated replies are resampled."""
    labels = list(labels)
    topics, p_ref, p_pred, point, boot = _boot_per_topic(None, pred_df, truth, labels, n_boot, eps, base,
                                                         np.random.default_rng(seed))
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


def mean_divergences(real_df: pd.DataFrame | None, pred_df: pd.DataFrame, labels: Sequence[str] = SENTIMENTS,
                     truth: pd.DataFrame | None = None, n_boot: int = 1000, alpha: float = 0.05,
                     eps: float = 1e-6, base: float = 2.0, seed: int | None = 0,
                     interval: Literal["topics", "percentile", "basic"] = "topics") -> dict[str, float]:
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
    ``"percentile"`` (as ``divergence.compare_crowds`` reports per topic) is
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
    topic_draws = rng.integers(0, len(topics), size=(n_boot, len(topics)))  # [B, T] indices of resampled topics
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


def js_difference(real_df: pd.DataFrame, pred_a: pd.DataFrame, pred_b: pd.DataFrame,
                  labels: Sequence[str] = SENTIMENTS, n_boot: int = 1000, alpha: float = 0.05,
                  base: float = 2.0, seed: int | None = 0) -> dict[str, float]:
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
    diff = (js_divergence(boot_ref, multinomial_replicates(a, n_boot, rng), base)
            - js_divergence(boot_ref, multinomial_replicates(b, n_boot, rng), base)).mean(axis=1)  # [B]
    low, high = np.quantile(diff, [alpha / 2, 1 - alpha / 2])
    return {"diff": float(np.mean(js_a - js_b)), "low": float(low), "high": float(high),
            "a_wins": float(np.mean(js_a < js_b))}


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


# --------------------------------------------------------------------------------------------- figures
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
    return {t: figure_text(f"#{known[t].hashtag[:max_hashtag]}# · {known[t].category}") if t in known else str(t)
            for t in topics}


def plot_crowd_bars(dists: Mapping[str, pd.DataFrame], labels: Sequence[str] = SENTIMENTS, title: str = "",
                    topics: Sequence[str] | None = None, topic_names: Mapping[str, str] | None = None) -> plt.Figure:
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
            ax.bar(x[absent], np.ones(absent.sum()), width * 0.92, fill=False, edgecolor="0.6", linestyle=":",
                   linewidth=0.8, label=None if any_missing else "no crowd (n/a)")
            any_missing = True
            for xi in x[absent]:
                ax.text(xi, 0.5, "n/a", rotation=90, ha="center", va="center", fontsize=6, color="0.45")
        bottom = np.zeros(len(keys))
        for k, lab in enumerate(labels):
            ax.bar(x, data[:, k], width * 0.92, bottom=bottom, color=colors[k], edgecolor="white", linewidth=0.3,
                   hatch=None if j == 0 else ("//", "..", "xx")[(j - 1) % 3],
                   label=lab if j == 0 else None)
            bottom += data[:, k]
    ax.set_xticks(np.arange(len(keys)))
    ax.set_xticklabels([figure_text(topic_names.get(k, k) if topic_names else k) for k in keys], rotation=90, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of replies")
    ax.set_title(title or "Crowd sentiment per topic: " + " | ".join(
        f"{n}{'' if i == 0 else ' (' + ('//', '..', 'xx')[(i - 1) % 3] + ')'}" for i, n in enumerate(names)))
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    return fig


def split_comparison(comparison: pd.DataFrame, labels: Sequence[str] = SENTIMENTS,
                     ref_prefix: str = "real_") -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(reference, predicted)`` distribution frames from a ``compare_crowds`` / :func:`compare_to_truth`
    result (``ref_prefix`` ``"real_"`` or ``"true_"``), ready for :func:`plot_crowd_bars`."""
    return _dist_rows(comparison, labels, ref_prefix), _dist_rows(comparison, labels, "pred_")


def plot_topic_divergence(comparisons: Mapping[str, pd.DataFrame], metric: str = "js", title: str = "",
                          topics: Sequence[str] | None = None, topic_names: Mapping[str, str] | None = None,
                          xlabel: str = "topic", ylabel: str | None = None) -> plt.Figure:
    """Per-topic divergence with its bootstrap CI, one marker per method (dodged), from ``compare_crowds``
    results (or ``crowds.compare_real_crowds`` ones: day against day). Topics are ordered by the first
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
            ax.plot(x[gone], np.zeros(gone.sum()), "x", ms=5, color="0.5", clip_on=False,
                    label=None if marked else "no crowd to compare")
            marked = True
    ax.set_xticks(np.arange(len(keys)))
    ax.set_xticklabels([figure_text(topic_names.get(k, k) if topic_names else k) for k in keys], rotation=90, fontsize=8)
    unit = {"js": "JS divergence (bits)", "kl": "KL(real ‖ pred) (bits)", "tv": "total variation"}.get(metric, metric)
    ax.set_ylabel(ylabel or unit)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(xlabel)
    ax.set_title(title or f"Per-topic {metric.upper()} to the real crowd (95% bootstrap CI; dashed: mean)")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def plot_share_scatter(comparisons: Mapping[str, pd.DataFrame], label: str = "negative", title: str = "",
                       ref_prefix: str = "real_") -> plt.Figure:
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
