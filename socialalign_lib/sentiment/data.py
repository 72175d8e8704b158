"""Labelled real data for a labeller: ``text,label`` files, label mapping, an honest split, leakage checks, and
labelling that leaves out posts with no words.

Why this module: public Weibo sentiment / emotion sets are full of repeated texts (reposts, bots, copy-paste
campaigns). A row-level random split then puts the same text on both sides, and the test score measures
memory: on one such set a naive row split read 0.88 accuracy where a split of *distinct* texts read 0.69.
So the split here de-duplicates first (by the text the labeller actually reads, :func:`text_key`), and
``evaluate_labeller`` warns when a labeller is scored on texts it was trained on.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from socialalign_lib.data.errors import DataFormatError, PathLike
from socialalign_lib.data.text import has_words

from .base import normalise_text

if TYPE_CHECKING:
    import pandas as pd

    from .base import SentimentLabeller

__all__ = [
    "EMOTIONS_TO_POLARITY",
    "LeakageWarning",
    "dedup_split",
    "label_texts",
    "load_labelled_csv",
    "map_labels",
    "shared_texts",
    "text_key",
    "text_keys",
    "warn_duplicates",
    "warn_if_shared",
]

EMOTIONS_TO_POLARITY: dict[str, str] = {
    # NLPCC 2013/14 Weibo emotions (English names) and SMP2020-EWECT's
    "like": "positive",
    "happiness": "positive",
    "happy": "positive",
    "joy": "positive",
    "disgust": "negative",
    "anger": "negative",
    "angry": "negative",
    "sadness": "negative",
    "sad": "negative",
    "fear": "negative",
    "surprise": "neutral",
    "none": "neutral",
    "neutral": "neutral",
    # the same in Chinese, and the seven DUTIR categories 好 乐 哀 怒 惧 恶 惊
    "喜欢": "positive",
    "高兴": "positive",
    "快乐": "positive",
    "厌恶": "negative",
    "愤怒": "negative",
    "悲伤": "negative",
    "恐惧": "negative",
    "惊讶": "neutral",
    "无": "neutral",
    "中性": "neutral",
    "好": "positive",
    "乐": "positive",
    "哀": "negative",
    "怒": "negative",
    "惧": "negative",
    "恶": "negative",
    "惊": "neutral",
}
"""Emotion names → negative / neutral / positive. A choice, stated: *surprise* (惊) carries no polarity of its
own and maps to neutral; pass your own mapping where your data says otherwise."""


LEAK_WARN_SHARE = 0.02
"""Warn when more than this share of an evaluation set was seen in training (short replies such as "[赞]" recur
legitimately; a few such repeats are not a leak)."""


class LeakageWarning(UserWarning):
    """A labeller is evaluated on texts it was trained on (the score then measures memory)."""


def text_key(text: str) -> str:
    """What makes two texts "the same" for a labeller: hashtags dropped, whitespace collapsed, case folded
    (``normalise_text``), so ``"#话题# 好!"`` and ``"好!"`` are one text."""
    return normalise_text(text or "").casefold()


def text_keys(texts: Iterable[str]) -> frozenset[str]:
    """Short digests of :func:`text_key` (16 hex digits each): what a labeller remembers of its training texts
    (and saves), enough to detect overlap without keeping the texts."""
    return frozenset(hashlib.blake2b(text_key(t).encode("utf-8"), digest_size=8).hexdigest() for t in texts)


def shared_texts(train: Iterable[str], test: Sequence[str]) -> int:
    """How many of ``test`` also occur (as :func:`text_key`) in ``train``."""
    seen = {text_key(t) for t in train}
    return sum(text_key(t) in seen for t in test)


def warn_if_shared(train_keys: frozenset[str] | None, texts: Sequence[str], where: str) -> int:
    """Warn (:class:`LeakageWarning`) when more than :data:`LEAK_WARN_SHARE` of ``texts`` were among a labeller's
    training texts; the count either way."""
    if not train_keys or not texts:
        return 0
    n = sum(
        k in train_keys
        for k in (hashlib.blake2b(text_key(t).encode("utf-8"), digest_size=8).hexdigest() for t in texts)
    )
    if n > LEAK_WARN_SHARE * len(texts):
        warnings.warn(
            f"{where}: {n} of {len(texts)} texts ({n / len(texts):.0%}) were also in the labeller's "
            "training texts, so the score measures memory as much as labelling; split distinct texts "
            "(sentiment.dedup_split)",
            LeakageWarning,
            stacklevel=3,
        )
    return n


def warn_duplicates(texts: Sequence[str], labels: Sequence[str], where: str) -> int:
    """Warn when more than :data:`LEAK_WARN_SHARE` of the distinct texts of one training set carry different
    labels (a duplicated, relabelled dataset); the count of such texts either way."""
    seen: dict[str, set[str]] = {}
    for t, lab in zip(texts, labels, strict=True):
        seen.setdefault(text_key(t), set()).add(lab)
    n = sum(len(v) > 1 for v in seen.values())
    if n > LEAK_WARN_SHARE * len(seen):
        warnings.warn(
            f"{where}: {n} texts occur with different labels ({len(texts)} rows, {len(seen)} distinct "
            "texts); a repeated, relabelled text usually means a duplicated dataset "
            "(sentiment.dedup_split merges them)",
            LeakageWarning,
            stacklevel=3,
        )
    return n


def map_labels(labels: Iterable[str], mapping: Mapping[str, str], *, where: str = "labels") -> list[str]:
    """``labels`` through ``mapping`` (e.g. :data:`EMOTIONS_TO_POLARITY`; keys compared stripped and
    case-folded); a label with no entry raises, naming it — a silently dropped class would shift every crowd."""
    table = {str(k).strip().casefold(): v for k, v in mapping.items()}
    out, unknown = [], Counter()
    for lab in labels:
        key = str(lab).strip().casefold()
        if key in table:
            out.append(table[key])
        else:
            unknown[str(lab)] += 1
    if unknown:
        raise ValueError(
            f"{where}: no mapping for {dict(unknown.most_common(5))}; known: {sorted(table)[:12]} …"
        )
    return out


def load_labelled_csv(
    path: PathLike,
    *,
    text_col: str = "text",
    label_col: str = "label",
    encoding: str = "auto",
    label_map: Mapping[str, str] | None = None,
    torn_tail: str = "error",
) -> pd.DataFrame:
    """A labelled ``text,label`` CSV (any further columns ignored) → a frame ``text, label, line`` (``line``:
    the file line, for tracing a row back), plus ``original_label`` when ``label_map`` maps the labels.

    The file is read like the post loaders read theirs (strict encoding, ``"auto"`` = UTF-8 else GB18030; a cut
    last row raises). An empty label, or one ``label_map`` does not know, raises naming file, line and field.
    """
    import pandas as pd

    from socialalign_lib.data.loaders.weibo import _need
    from socialalign_lib.data.read import iter_csv_rows as _csv_rows

    table = None if label_map is None else {str(k).strip().casefold(): v for k, v in label_map.items()}
    rows = []
    for line, row in _csv_rows(path, encoding, torn_tail):
        text, label = _need(row, [text_col], path, line), _need(row, [label_col], path, line).strip()
        if not label:
            raise DataFormatError("empty label", file=path, line=line, field=label_col)
        mapped = label
        if table is not None:
            if label.casefold() not in table:
                raise DataFormatError(
                    f"label {label!r} has no entry in label_map", file=path, line=line, field=label_col
                )
            mapped = table[label.casefold()]
        rows.append(
            {"text": text, "label": mapped, "line": line, **({"original_label": label} if table else {})}
        )
    if not rows:
        raise DataFormatError("no labelled rows", file=path, line=2)
    return pd.DataFrame(rows)


def dedup_split(
    frame: pd.DataFrame,
    test_size: float = 0.2,
    seed: int = 0,
    *,
    text_col: str = "text",
    label_col: str = "label",
    conflicts: Literal["majority", "drop"] = "majority",
    stratify: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, test)`` over *distinct* texts: rows are grouped by :func:`text_key` first, each group becomes
    one row (its first text) and the groups are split, so no text is on both sides.

    A group whose rows disagree on the label takes the most frequent one (``conflicts="majority"``, ties to
    the label seen first) or is left out (``"drop"``). ``stratify`` keeps the label shares alike in both parts.
    Both frames carry ``n_copies`` (rows merged into each) and ``attrs["dedup"]`` says how many rows, distinct
    texts and conflicting groups there were.
    """
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    keys = frame[text_col].fillna("").astype(str).map(text_key)
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    keep, labels, copies, n_conflicts = [], [], [], 0
    for idx in groups.values():
        counts = Counter(frame[label_col].iloc[idx])
        if len(counts) > 1:
            n_conflicts += 1
            if conflicts == "drop":
                continue
        keep.append(idx[0])
        labels.append(counts.most_common(1)[0][0])
        copies.append(len(idx))
    distinct = frame.iloc[keep].copy()
    distinct[label_col] = labels
    distinct["n_copies"] = copies
    label_counts = Counter(labels)
    strat = labels if stratify and min(label_counts.values()) >= 2 else None
    train, test = train_test_split(distinct, test_size=test_size, random_state=seed, stratify=strat)
    info = {"rows": len(frame), "distinct": len(groups), "conflicting": n_conflicts, "kept": len(distinct)}
    for part in (train, test):
        part.attrs["dedup"] = info
    return train.reset_index(drop=True), test.reset_index(drop=True)


def label_texts(
    labeller: SentimentLabeller, texts: Sequence[str], no_words: Literal["exclude", "prior"] = "exclude"
) -> list[str | None]:
    """Labels of ``texts``, with ``None`` for a text that has no words (empty, hashtags only, replacement marks
    only: ``clean.has_words``) when ``no_words="exclude"`` (default). A labeller must answer *something* for
    every text, and for an empty one that is its prior — the majority training label — which is nobody's
    opinion; counting it would tilt a crowd towards that label. ``"prior"`` labels every text."""
    if no_words not in ("exclude", "prior"):
        raise ValueError(f"no_words must be 'exclude' or 'prior', got {no_words!r}")
    texts = ["" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t) for t in texts]
    if no_words == "prior":
        return list(labeller.predict(texts))
    idx = [i for i, t in enumerate(texts) if has_words(t)]
    out: list[str | None] = [None] * len(texts)
    for i, lab in zip(idx, labeller.predict([texts[i] for i in idx]) if idx else [], strict=True):
        out[i] = lab
    return out
