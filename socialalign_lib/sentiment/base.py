"""What every sentiment labeller shares: the protocol, text normalisation, and world helpers.

The macro-level comparison (real crowd vs generated crowd per topic) is only meaningful when real and
generated replies are labelled by *the same* function, so every backend implements one small protocol and
reads text through one normaliser.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from socialalign_lib.data.schema import SENTIMENTS
from socialalign_lib.data.text import strip_hashtags

if TYPE_CHECKING:
    from ..world import World

HELDOUT_SPLITS: tuple[str, ...] = ("test_user", "test_topic")
"""Held-out splits used to report a labeller's accuracy (``test_both`` is tiny in small worlds; add it when needed)."""

_SPACE = re.compile(r"\s+")


@runtime_checkable
class SentimentLabeller(Protocol):
    """Labels replies with one of ``labels`` (ordered negative → positive).

    Contract, for every backend: ``predict(texts)[i] == labels[argmax(predict_proba(texts)[i])]`` and every row of
    ``predict_proba`` sums to 1, so a crowd distribution can be built either from hard labels or from soft ones.
    """

    labels: tuple[str, ...]

    def predict(self, texts: Sequence[str]) -> list[str]: ...

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...


def normalise_text(text: str) -> str:
    """Drop ``#hashtag#`` spans (``clean.HASHTAG``, the library's one rule) and collapse whitespace.

    Why: a hashtag names the topic, not the writer's stance. Left in, a classifier learns "this topic's replies
    are mostly negative" from the train split and transfers that prior to held-out topics, and generated
    replies (which may or may not repeat the hashtag) would be labelled differently from real ones.
    """
    return _SPACE.sub(" ", strip_hashtags(text)).strip()


def check_labels(labels: Iterable[str]) -> tuple[str, ...]:
    """Validate a label set: at least two distinct names, kept in the caller's (negative → positive) order."""
    out = tuple(str(x) for x in labels)
    if len(out) < 2 or len(set(out)) != len(out):
        raise ValueError(f"labels must be at least two distinct names ordered negative→positive, got {out!r}")
    return out


def labels_from_proba(proba: np.ndarray, labels: Sequence[str]) -> list[str]:
    """Hard labels as the argmax of ``proba`` ``[n, n_labels]`` (ties go to the earlier label)."""
    return [labels[i] for i in np.asarray(proba).argmax(axis=1)] if len(proba) else []


def world_texts(world: World, splits: Sequence[str]) -> tuple[list[str], list[str]]:
    """Reply texts and gold labels of the world's responses in ``splits`` (world order, deterministic)."""
    unknown = set(splits) - {"train", "validation", "test_user", "test_topic", "test_both"}
    if unknown:
        raise ValueError(f"unknown split(s) {sorted(unknown)}")
    rows = [(r.post.text, r.sentiment) for r in world.responses if r.split in splits]
    return [t for t, _ in rows], [s for _, s in rows]


DEFAULT_LABELS: tuple[str, ...] = SENTIMENTS
