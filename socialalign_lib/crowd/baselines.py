"""Floors, priors, oracles and the truth: crowds and labels that no language model wrote.

:func:`category_prior` (a crowd drawn from the topic category's training replies), :func:`oracle_crowd` (drawn from
the world's true ``p(s|u,t)``: its divergence to the real crowd is sampling noise alone, the floor to read every other
number against) and :func:`true_crowd` (the world's true expected crowd over the same users, so a method can be
judged against what the public *would* say on average, not only against one noisy sample) are notebook 05's
references; :func:`baseline_predictions` gives the non-LLM rows of notebook 06's results table.

Every row of notebook 06's table answers "what sentiment will this user express about this news?". A language
model answers by writing a reply that a labeller reads back; the rows here answer directly with a label, so that the
table shows what the LLM rows must beat (floors, priors) and what the world allows (oracles). Each function takes
the evaluation frame (one row per evaluated ``(topic_id, user_id)``, the ``topic_id``, ``user_id``, ``category``
columns of a labelled-replies frame) and returns one label per row, in row order — the same one-draw-per-user
design as a generated crowd, so a crowd of predicted labels carries the same sampling noise as a crowd of replies
and JS compares like with like.

===============================  ====================================================================  ==========
row                              what it knows                                                          data
===============================  ====================================================================  ==========
``majority class``               the most frequent label in training (every row gets it): micro floor  any
``uniform``                      nothing: a label drawn uniformly                                       any
``category prior``               the topic's category (:func:`category_prior`)                          any
``news prior``                   the news text: a char n-gram classifier trained on (news, reply       any
                                 label) pairs of the training split — what reading the headline gives
``topic's training crowd``       the labels of the same topic's training replies (only for topics      any
                                 seen in training: the unseen-user split)
``persona-blind oracle``         the topic's true expected crowd over users drawn by interest alone     world
                                 (knows the news exactly, not who replies: ``world.headroom``)
``oracle (true p(s|u,t))``       each replier's true distribution (:func:`oracle_labels`)               world
``oracle argmax``                the argmax of each replier's true distribution: micro ceiling          world
===============================  ====================================================================  ==========
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .distributions import _need

if TYPE_CHECKING:
    from ..world import World

__all__ = [
    "BASELINE_ROWS",
    "REFERENCE_ROWS",
    "NewsPrior",
    "baseline_predictions",
    "category_prior",
    "majority_labels",
    "news_by_topic",
    "oracle_argmax_labels",
    "oracle_crowd",
    "oracle_labels",
    "persona_blind_labels",
    "topic_crowd_labels",
    "true_crowd",
    "uniform_labels",
]

BASELINE_ROWS: tuple[str, ...] = (
    "majority class",
    "uniform",
    "category prior",
    "news prior",
    "topic's training crowd",
    "persona-blind oracle",
    "oracle (true p(s|u,t))",
    "oracle argmax",
)
"""Table order of the non-LLM rows."""


REFERENCE_ROWS: tuple[str, ...] = ("persona-blind oracle", "oracle (true p(s|u,t))", "oracle argmax")
"""Rows that read the world's truth: references, never "best" (they are not methods)."""


def _draw(rng: np.random.Generator, probs: np.ndarray, labels: Sequence[str]) -> list[str]:
    """One label per row of ``probs [n, L]`` (inverse-CDF draws from one uniform each)."""
    cum = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    idx = (rng.random((len(probs), 1)) > cum).sum(axis=1).clip(max=len(labels) - 1)
    return [labels[i] for i in idx]


def majority_labels(train_labels: Sequence[str], n: int) -> list[str]:
    """The training split's most frequent label, ``n`` times (ties: the first in sorted order)."""
    counts = pd.Series(list(train_labels)).value_counts()
    if counts.empty:
        raise ValueError("majority_labels: no training labels")
    top = counts[counts == counts.max()].index
    return [sorted(top)[0]] * n


def uniform_labels(n: int, labels: Sequence[str], seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return _draw(rng, np.ones((n, len(labels))), list(labels))


class NewsPrior:
    """p(label | news text) from the training split: TF-IDF of character 1–3-grams, multinomial logistic
    regression on (news of the reply's topic, reply label) pairs. It reads the headline only — no user — so it is
    the "news-kind" floor a persona-free reader of the news reaches with the training data at hand.

    ``C`` is small because a training split holds few distinct news texts (one per topic): the classifier must
    pick up tone words shared across topics, not memorise a topic's wording."""

    def __init__(self, labels: Sequence[str], C: float = 0.5) -> None:
        self.labels = list(labels)
        self.C = C
        self._model = None

    def fit(self, news: Sequence[str], labels: Sequence[str]) -> NewsPrior:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        unknown = sorted(set(labels) - set(self.labels))
        if unknown:
            raise ValueError(f"NewsPrior.fit: labels {unknown} not in {self.labels}")
        self._model = make_pipeline(
            TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True),
            LogisticRegression(C=self.C, max_iter=2000),
        )
        self._model.fit(list(news), list(labels))
        return self

    def predict_proba(self, news: Sequence[str]) -> np.ndarray:
        """``[n, L]`` in ``self.labels`` order (a label absent from training gets probability 0)."""
        if self._model is None:
            raise RuntimeError("NewsPrior: call fit() first")
        p = self._model.predict_proba(list(news))
        out = np.zeros((len(p), len(self.labels)))
        for j, lab in enumerate(self._model.classes_):
            out[:, self.labels.index(lab)] = p[:, j]
        return out

    def sample(self, news: Sequence[str], seed: int = 0) -> list[str]:
        return _draw(np.random.default_rng(seed), self.predict_proba(news), self.labels)


def topic_crowd_labels(
    train: pd.DataFrame, test: pd.DataFrame, seed: int = 0, label_col: str = "sentiment"
) -> list[str | None]:
    """One label per test row drawn from the same topic's training replies; None where the topic had none
    (unseen topics): "people will react to this news the way others already did"."""
    by_topic = {t: g[label_col].to_numpy() for t, g in train.groupby("topic_id")}
    rng = np.random.default_rng(seed)
    return [str(rng.choice(by_topic[t])) if t in by_topic else None for t in test["topic_id"]]


def persona_blind_labels(world, test: pd.DataFrame, seed: int = 0) -> list[str]:
    """One label per row from the topic's true expected crowd over users drawn by category interest alone
    (``world.headroom``'s persona-blind predictor): exact knowledge of the news and of how everyone would react,
    none of who self-selects into the crowd."""
    from ..world.headroom import _Truth  # here: the world's truth is needed only by this row (world only)

    truth, labels = _Truth(world), list(world.labels)
    sizes = test.groupby("topic_id").size()
    crowd = {}
    for tid, n in sizes.items():
        probs, _, _, blind = truth.topic(world.latent_topics[tid], int(n))
        crowd[tid] = blind @ probs
    rng = np.random.default_rng(seed)
    return _draw(rng, np.array([crowd[t] for t in test["topic_id"]]), labels)


def _true_probs(world, test: pd.DataFrame) -> np.ndarray:
    rows = []
    for tid, uid in zip(test["topic_id"], test["user_id"]):
        p = world.response_probs.get((tid, uid))
        if p is None:
            raise KeyError(f"the world has no reply of user {uid!r} to topic {tid!r}")
        rows.append(np.asarray(p, dtype=float))
    return np.array(rows)


def oracle_labels(world, test: pd.DataFrame, seed: int = 0) -> list[str]:
    """One label per row drawn from the replier's true p(s|u,t): the noise floor of every crowd-level number.

    Same idea as :func:`oracle_crowd`, different draw code, deliberately not merged: this one draws all rows by
    inverse CDF (:func:`_draw`: one uniform per row, compared with the cumulative sum of the normalised
    probabilities), ``oracle_crowd`` calls ``Generator.choice`` per row (the same uniforms, compared with a
    cumulative sum divided by its last entry). The two CDFs can differ in the last bit (about 1 row in 10 on the
    course world), so a uniform within ~1e-16 of a boundary would get different labels; on the course world's
    1,803 replies × 5 seeds they agree label for label (``tests/test_baselines.py`` pins this on a tiny world). One
    calling the other could still change a committed number (notebook 06 reports this row, notebook 05 the oracle
    crowd), so both stay as they are.
    """
    return _draw(np.random.default_rng(seed), _true_probs(world, test), list(world.labels))


def oracle_argmax_labels(world, test: pd.DataFrame) -> list[str]:
    """The most likely label of each replier's true p(s|u,t): the ceiling of reply-level sentiment accuracy."""
    labels = list(world.labels)
    return [labels[i] for i in _true_probs(world, test).argmax(axis=1)]


def category_prior(
    train: pd.DataFrame,
    test: pd.DataFrame,
    per_reply: bool = True,
    seed: int = 0,
    topic_col: str = "topic_id",
    category_col: str = "category",
    label_col: str = "sentiment",
) -> pd.DataFrame:
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
        return pd.DataFrame(
            {
                "topic_id": test[topic_col].to_numpy(),
                "sentiment": drawn,
                "category": test[category_col].to_numpy(),
            }
        )
    parts = []
    for topic, (cat,) in cats.items():
        labels = by_cat.get(cat, everything)
        parts.append(pd.DataFrame({"topic_id": topic, "sentiment": labels, "category": cat}))
    return pd.concat(parts, ignore_index=True)


def oracle_crowd(world: World, pairs: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """One label per ``(topic_id, user_id)`` row of ``pairs``, drawn from the world's true ``p(s|u,t)``: a crowd
    from a model that knows the truth exactly. Its divergence to the real crowd is sampling noise alone, the
    floor under every other method's number (world only).

    Not merged with :func:`oracle_labels`, which draws the same labels with other code: see its docstring (the two
    agree except when a uniform falls within rounding of a CDF boundary, and the committed numbers of notebooks
    05 and 06 come from one each)."""
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
    out = pd.DataFrame(
        {tid: np.mean(ps, axis=0) for tid, ps in sorted(rows.items())}, index=list(world.labels)
    ).T
    out.index.name = "topic_id"
    out["n"] = [len(rows[t]) for t in out.index]
    return out


def news_by_topic(records: pd.DataFrame) -> dict[str, str]:
    """``topic_id → news text`` from records (``instruction`` and its ``news_span`` character offsets)."""
    out = {}
    for tid, instr, span in zip(records["topic_id"], records["instruction"], records["news_span"]):
        out.setdefault(tid, instr[int(span[0]) : int(span[1])])
    return out


def baseline_predictions(
    reference: pd.DataFrame,
    train: pd.DataFrame,
    train_labels: Sequence[str],
    news: dict[str, str],
    labels: Sequence[str],
    seed: int = 0,
    world=None,
) -> dict[str, list[str | None]]:
    """``{row: one label per row of reference}`` for every row of :data:`BASELINE_ROWS` that applies.

    ``reference``: the evaluation cases (``topic_id``, ``user_id``, ``category``); ``train``: the training
    records (``topic_id``, ``category``) with ``train_labels`` (the same labeller that labels the real crowd, so
    priors and real crowds speak the same language); ``news``: ``topic_id → news text`` for training and
    evaluated topics; ``world``: adds the oracle rows (embedded world only). ``seed`` seeds every draw."""
    labels = list(labels)
    train = train.assign(sentiment=list(train_labels))
    n = len(reference)
    out: dict[str, list[str | None]] = {
        "majority class": majority_labels(train["sentiment"], n),
        "uniform": uniform_labels(n, labels, seed),
        "category prior": category_prior(train, reference, seed=seed)["sentiment"].tolist(),
        "news prior": NewsPrior(labels)
        .fit([news[t] for t in train["topic_id"]], train["sentiment"])
        .sample([news[t] for t in reference["topic_id"]], seed),
        "topic's training crowd": topic_crowd_labels(train, reference, seed),
    }
    if world is not None:
        out["persona-blind oracle"] = persona_blind_labels(world, reference, seed)
        out["oracle (true p(s|u,t))"] = oracle_labels(world, reference, seed)
        out["oracle argmax"] = oracle_argmax_labels(world, reference)
    return out
