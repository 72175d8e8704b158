"""Crowd label distributions: who said what, per topic, as frames the rest of ``crowd`` reads.

Why it exists: every crowd-level number starts from the same step — label real and generated replies with the
**same** labeller (:func:`label_replies`; its mistakes then hit both crowds alike instead of being counted as model
error), turn them into *crowd* frames (one row per reply: ``topic_id``, ``sentiment``; :func:`crowd_frames`) and
count them per topic (:func:`crowd_counts`, :func:`crowd_distributions`: a topic × label frame).

Frames: a *replies* frame is what ``socialllm.generate_replies`` returns (``case_id, topic_id, user_id, category,
split, variant, reference, sentiment, generated, …``); a *crowd* frame has one row per reply with ``topic_id`` and
``sentiment``; a *distribution* frame has one row per topic and one probability column per label.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from socialalign_lib.data.schema import SENTIMENTS

if TYPE_CHECKING:
    from ..sentiment import SentimentLabeller

__all__ = [
    "PRED_COL",
    "REAL_COL",
    "crowd_counts",
    "crowd_distributions",
    "crowd_frames",
    "distribution",
    "label_replies",
]

PRED_COL = "pred_sentiment"
"""Column :func:`label_replies` writes: the labeller's label of the *generated* reply."""
REAL_COL = "real_sentiment"
"""Column :func:`label_replies` writes: the labeller's label of the *real* reply (``reference``)."""

RealLabels = Literal["labeller", "gold"]


def _need(df: pd.DataFrame, cols: Sequence[str], name: str) -> None:
    """Raise naming the frame and its columns when ``df`` lacks any of ``cols``."""
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{name} has no column(s) {missing}; columns are {list(df.columns)}")


def distribution(labels: Iterable[str], label_set: Sequence[str] = SENTIMENTS) -> np.ndarray:
    """Share of each label of ``label_set`` among ``labels``, as ``[len(label_set)]`` summing to 1.

    A label outside ``label_set`` raises (it would otherwise vanish and inflate the others); no labels raises too,
    as an empty crowd has no distribution.
    """
    labels = list(labels)
    index = {lab: i for i, lab in enumerate(label_set)}
    unknown = sorted({str(lab) for lab in labels if lab not in index})
    if unknown:
        raise ValueError(f"labels {unknown} are not in the label set {tuple(label_set)}")
    if not labels:
        raise ValueError("no labels: an empty crowd has no distribution")
    counts = np.bincount([index[lab] for lab in labels], minlength=len(label_set)).astype(float)
    return counts / counts.sum()


def _check_frame(df: pd.DataFrame, topic_col: str, label_col: str, labels: Sequence[str], name: str) -> None:
    missing = [c for c in (topic_col, label_col) if c not in df.columns]
    if missing:
        raise ValueError(f"{name} has no column(s) {missing}; columns are {list(df.columns)}")
    unknown = sorted(set(df[label_col].dropna().astype(str)) - set(labels))
    if unknown or df[label_col].isna().any():
        bad = unknown + (["<missing>"] if df[label_col].isna().any() else [])
        raise ValueError(f"{name}[{label_col!r}] has labels {bad} outside the label set {tuple(labels)}")


def _crowd_counts(
    df: pd.DataFrame, topic_col: str, label_col: str, labels: Sequence[str], name: str = "df"
) -> pd.DataFrame:
    """Counts ``[topics, labels]`` (topics sorted, every label a column even when never seen)."""
    _check_frame(df, topic_col, label_col, labels, name)
    counts = pd.crosstab(df[topic_col], df[label_col].astype(str))
    counts = counts.reindex(columns=list(labels), fill_value=0).sort_index()
    counts.columns.name = None
    return counts


def crowd_distributions(
    df: pd.DataFrame,
    topic_col: str = "topic_id",
    label_col: str = "sentiment",
    labels: Sequence[str] = SENTIMENTS,
) -> pd.DataFrame:
    """Per-topic sentiment distribution of a crowd: one row per topic (sorted), one column per label (in
    ``labels`` order, probabilities summing to 1) and ``n`` (the number of replies).

    ``df`` has one row per reply (real or generated) with its topic and label. Labels outside ``labels`` raise.
    """
    counts = _crowd_counts(df, topic_col, label_col, labels)
    n = counts.sum(axis=1)
    out = counts.div(n, axis=0).astype(float)
    out["n"] = n.astype(int)
    return out


def label_replies(
    replies: pd.DataFrame,
    labeller: SentimentLabeller,
    text_col: str = "generated",
    reference_col: str = "reference",
    no_words: Literal["exclude", "prior"] = "exclude",
) -> pd.DataFrame:
    """A copy of ``replies`` with :data:`PRED_COL` (label of ``text_col``) and :data:`REAL_COL` (label of
    ``reference_col``), both from ``labeller``.

    A real reply with no words (empty, hashtags only: ``clean.has_words``) has no opinion to compare with, and
    a labeller would hand it its prior; with ``no_words="exclude"`` (default) such rows are left out of the
    result, their number in ``attrs["no_words"]`` and a warning. A *generated* reply with no words keeps its
    row and gets the labeller's answer for it: a model that writes nothing is charged for it, not excused.
    ``no_words="prior"`` keeps and labels every row."""
    _need(replies, [text_col, reference_col], "replies")
    from ..sentiment import label_texts  # here: the sentiment package loads sklearn, needed only to label

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

        warnings.warn(
            f"label_replies: {out.attrs['no_words']} of {len(keep)} real replies have no words "
            "(empty or hashtags only) and are left out (no_words='prior' keeps them)",
            stacklevel=2,
        )
    return out


def crowd_frames(
    labelled: pd.DataFrame,
    real: RealLabels = "labeller",
    topic_col: str = "topic_id",
    gold_col: str = "sentiment",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(real_df, pred_df)``: one row per reply, columns ``topic_id`` and ``sentiment``, ready for
    ``divergences.compare_crowds``. ``real="labeller"`` (default) takes the real crowd's labels from the labeller
    (same function on both sides); ``"gold"`` takes the dataset's own labels (the world's truth, or a human
    annotation), which charges the labeller's errors to the model."""
    if real not in ("labeller", "gold"):
        raise ValueError(f"real must be 'labeller' or 'gold', got {real!r}")
    real_col = REAL_COL if real == "labeller" else gold_col
    _need(labelled, [topic_col, PRED_COL, real_col], "labelled replies (see label_replies)")
    real_df = pd.DataFrame(
        {"topic_id": labelled[topic_col].to_numpy(), "sentiment": labelled[real_col].to_numpy()}
    )
    pred_df = pd.DataFrame(
        {"topic_id": labelled[topic_col].to_numpy(), "sentiment": labelled[PRED_COL].to_numpy()}
    )
    return real_df, pred_df


def crowd_counts(
    crowd: pd.DataFrame,
    labels: Sequence[str] = SENTIMENTS,
    topic_col: str = "topic_id",
    label_col: str = "sentiment",
) -> pd.DataFrame:
    """Counts ``[topics, labels]`` of a crowd frame (topics sorted; a label never seen is a column of zeros)."""
    return _crowd_counts(crowd, topic_col, label_col, list(labels), "crowd")
