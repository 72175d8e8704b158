"""What can be learned here: the headroom of the embedded world at the crowd and the reply level, from its truth.

Before comparing trained models, the course asks what the world *allows*: how close to a topic's real crowd can a
predictor get that knows only the category, only the news, the news and the population but not who replies, or the
repliers themselves? The answers bound every row of the results table (notebook 06) from below and above.

Crowd-level predictors of a topic's sentiment distribution, from least to most informed (``PREDICTORS``):

* ``uniform``           1/L for every label;
* ``category prior``    the expected crowd of a topic of this category (estimated on fresh topics of the world's
                        generator, never on the evaluated ones);
* ``news prior``        the same for the category *and* the kind of news (good / bad / mixed): what reading the
                        headline's tone gives;
* ``persona-blind``     the topic's expected sentiment over users drawn by category interest alone: knows the news
                        exactly and how everyone would react, but not who self-selects into the crowd - the best a
                        model without personas can aim at;
* ``topic oracle``      the topic's expected crowd *with* self-selection (at infinite crowd size this is the crowd);
* ``repliers' oracle``  the mean p(s|u,t) over the users who actually replied.

At a finite crowd size n the real crowd is an empirical distribution of n sampled replies, so every predictor also
pays sampling noise; the repliers' oracle's JS is that noise floor. With ``crowd_selection=0`` the persona-blind
and the topic oracle coincide: persona cannot matter at the crowd level at infinite size, by construction.

Reply-level (micro) predictors: the majority class, the topic's most likely label (persona-blind) and the argmax
of the true p(s|u,t) (oracle); their expected accuracy over each topic's repliers is computed exactly.

:func:`power` simulates the course's design (test topics, crowd sizes, sampling seeds) with perfect models of both
kinds and returns the probability that a one-sided paired t-test over topics finds the persona-blind model's
JS larger than the persona-aware one's at level ``alpha``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from socialalign_lib.crowd.divergences import js_divergence

from .generate import World
from .latent import CATEGORY_KEYS, LatentTopic, reply_weight, sample_topic, sentiment_probs

PREDICTORS: tuple[str, ...] = (
    "uniform",
    "category prior",
    "news prior",
    "persona-blind",
    "topic oracle",
    "repliers' oracle",
)
_PRIOR_STREAM = 9_417  # rng stream of the fresh topics behind the priors (apart from the world's own)


@dataclass
class HeadroomConfig:
    """``crowd_size`` None: each topic's own number of replies in the world. ``n_sim`` simulated crowds per topic
    at that size. ``prior_topics`` fresh topics per category behind the category / news priors."""

    crowd_size: int | None = None
    n_sim: int = 200
    prior_topics: int = 40
    seed: int = 0


def inclusion_probabilities(weights: np.ndarray, n: int) -> np.ndarray:
    """P(user in a crowd of ``n`` drawn without replacement, one by one, with probabilities ∝ ``weights``).

    Such a draw saturates: a user who carries most of the weight is in the crowd with probability ~1, not in
    proportion to the weight. Rosén's approximation of successive sampling, π_u = 1 - exp(-λ w_u) with λ chosen so
    that Σ π_u = n, is accurate to ~1e-2 here (checked against simulation in tests/test_headroom.py)."""
    w = np.asarray(weights, dtype=float)
    n = min(n, int((w > 0).sum()))
    if n <= 0:
        return np.zeros_like(w)
    lo, hi = 0.0, 1.0
    while (1 - np.exp(-hi * w)).sum() < n and hi < 1e12:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if (1 - np.exp(-mid * w)).sum() < n else (lo, mid)
    return 1 - np.exp(-hi * w)


class _Truth:
    """p(s|u,t) of every user and how likely each is to be among a topic's n repliers, with and without
    self-selection. A topic's expected crowd is the inclusion-weighted mean of p(s|u,t)."""

    def __init__(self, world: World):
        self.world = world
        self.users = list(world.latent_users.values())
        self.selection = world.config.crowd_selection

    def topic(self, lt: LatentTopic, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(p(s|u,t) [U, L], draw probabilities with selection, then the normalised inclusion probabilities
        with selection and by interest only)."""
        probs = np.array([sentiment_probs(u, lt, self.world.labels) for u in self.users])
        selected = np.array([reply_weight(u, lt, self.selection) for u in self.users])
        blind = np.array([reply_weight(u, lt, 0.0) for u in self.users])
        inc_sel, inc_blind = inclusion_probabilities(selected, n), inclusion_probabilities(blind, n)
        return probs, selected / selected.sum(), inc_sel / inc_sel.sum(), inc_blind / inc_blind.sum()


def _priors(truth: _Truth, n_per_category: int, n: int, seed: int) -> tuple[dict, dict]:
    """Expected crowds of fresh topics, averaged per category and per (category, kind)."""
    by_cat: dict[str, list[np.ndarray]] = {c: [] for c in CATEGORY_KEYS}
    by_kind: dict[tuple[str, str], list[np.ndarray]] = {}
    i = 0
    while min(len(v) for v in by_cat.values()) < n_per_category and i < 100 * n_per_category * len(
        CATEGORY_KEYS
    ):
        lt = sample_topic(np.random.default_rng([seed, _PRIOR_STREAM, i]), i, prefix="p")
        i += 1
        if len(by_cat[lt.category]) >= n_per_category:
            continue
        probs, _, included, _ = truth.topic(lt, n)
        crowd = included @ probs
        by_cat[lt.category].append(crowd)
        by_kind.setdefault((lt.category, lt.kind), []).append(crowd)
    cat = {c: np.mean(v, axis=0) for c, v in by_cat.items()}
    kind = {k: np.mean(v, axis=0) for k, v in by_kind.items()}
    return cat, kind


def _topics(world: World, topic_ids: Sequence[str] | None) -> list[LatentTopic]:
    ids = sorted(world.latent_topics) if topic_ids is None else list(topic_ids)
    return [world.latent_topics[t] for t in ids]


def _crowd_sizes(world: World) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for r in world.responses:
        sizes[r.topic_id] = sizes.get(r.topic_id, 0) + 1
    return sizes


def headroom(
    world: World, topic_ids: Sequence[str] | None = None, cfg: HeadroomConfig | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(crowd table, micro table) for ``topic_ids`` (default: all topics of the world).

    Crowd table: one row per predictor of :data:`PREDICTORS`, columns ``JS (infinite crowd)`` (mean over topics
    of JS(predictor, the topic's expected crowd)) and ``JS (n replies)`` (mean over topics and simulated crowds of
    JS(predictor, empirical crowd of n sampled replies)), with ``n`` in ``crowd size``. Micro table: expected
    accuracy of the majority class, the persona-blind topic argmax and the oracle argmax over the repliers.
    """
    cfg = cfg or HeadroomConfig()
    truth = _Truth(world)
    sizes = _crowd_sizes(world)
    typical = cfg.crowd_size or int(round(np.mean(list(sizes.values()))))
    cat_prior, kind_prior = _priors(truth, cfg.prior_topics, typical, cfg.seed)
    rng = np.random.default_rng([cfg.seed, 1])
    labels = world.labels
    n_labels = len(labels)
    inf: dict[str, list[float]] = {p: [] for p in PREDICTORS}
    fin: dict[str, list[float]] = {p: [] for p in PREDICTORS}
    micro_hits: dict[str, list[float]] = {
        "majority class": [],
        "persona-blind (topic argmax)": [],
        "oracle (argmax p(s|u,t))": [],
    }
    topics = _topics(world, topic_ids)
    expected = {}
    for lt in topics:
        expected[lt.topic_id] = truth.topic(lt, cfg.crowd_size or sizes.get(lt.topic_id, typical))
    global_crowd = np.mean([inc @ p for p, _, inc, _ in expected.values()], axis=0)
    majority = int(np.argmax(global_crowd))
    for lt in topics:
        probs, selected, included, blind = expected[lt.topic_id]
        crowd = included @ probs
        fixed = {
            "uniform": np.full(n_labels, 1.0 / n_labels),
            "category prior": cat_prior[lt.category],
            "news prior": kind_prior.get((lt.category, lt.kind), cat_prior[lt.category]),
            "persona-blind": blind @ probs,
            "topic oracle": crowd,
        }
        for name, pred in fixed.items():
            inf[name].append(float(js_divergence(crowd, pred)))
        inf["repliers' oracle"].append(0.0)  # at infinite size the repliers' mean is the expected crowd
        n = cfg.crowd_size or sizes.get(lt.topic_id, 0)
        n = min(n, len(truth.users))
        if n > 0:
            for _ in range(cfg.n_sim):
                who = rng.choice(len(truth.users), size=n, replace=False, p=selected)
                cum = probs[who].cumsum(axis=1)
                drawn = (rng.random((n, 1)) > cum).sum(axis=1).clip(max=n_labels - 1)
                emp = np.bincount(drawn, minlength=n_labels) / n
                for name, pred in fixed.items():
                    fin[name].append(float(js_divergence(emp, pred)))
                fin["repliers' oracle"].append(float(js_divergence(emp, probs[who].mean(axis=0))))
        micro_hits["majority class"].append(float(included @ probs[:, majority]))
        micro_hits["persona-blind (topic argmax)"].append(float(included @ probs[:, int(np.argmax(crowd))]))
        micro_hits["oracle (argmax p(s|u,t))"].append(float(included @ probs.max(axis=1)))
    size_note = cfg.crowd_size or "each topic's own"
    crowd_table = pd.DataFrame(
        {
            "JS (infinite crowd)": {p: float(np.mean(v)) for p, v in inf.items()},
            "JS (n replies)": {p: float(np.mean(v)) if v else np.nan for p, v in fin.items()},
        }
    )
    crowd_table.index.name = "predictor"
    crowd_table.attrs["crowd size"] = size_note
    micro = pd.Series(
        {k: float(np.mean(v)) for k, v in micro_hits.items()}, name="expected accuracy"
    ).to_frame()
    micro.index.name = "predictor"
    return crowd_table, micro


def persona_share(crowd_table: pd.DataFrame, column: str = "JS (infinite crowd)") -> float:
    """How much JS knowing who replies removes: JS(persona-blind) - JS(topic oracle) (0 when selection is off
    at infinite crowd size)."""
    return float(crowd_table.loc["persona-blind", column] - crowd_table.loc["topic oracle", column])


def power(
    world: World,
    topic_ids: Sequence[str],
    seeds: int = 3,
    crowd_size: int | None = None,
    alpha: float = 0.05,
    n_experiments: int = 300,
    seed: int = 0,
) -> float:
    """P(detect persona-blind worse than persona-aware) for the course's design, with perfect models.

    Each simulated experiment draws, for each topic, a real crowd (repliers by self-selection, then their
    sentiments), a persona-aware model's crowd (``seeds`` samples from each replier's true p(s|u,t)) and a
    persona-blind model's crowd (``seeds × n`` samples from the persona-blind topic crowd), computes the per-topic
    JS difference (blind - aware) and tests its mean > 0 with a one-sided paired t-test over topics. Returns the
    share of experiments with p < ``alpha``.
    """
    truth = _Truth(world)
    sizes = _crowd_sizes(world)
    rng = np.random.default_rng([seed, 2])
    topics = _topics(world, topic_ids)
    cached = [truth.topic(lt, crowd_size or sizes.get(lt.topic_id, 0)) for lt in topics]
    n_labels = len(world.labels)

    def sample(p_rows: np.ndarray) -> np.ndarray:
        cum = p_rows.cumsum(axis=1)
        drawn = (rng.random((len(p_rows), 1)) > cum).sum(axis=1).clip(max=n_labels - 1)
        return np.bincount(drawn, minlength=n_labels) / len(p_rows)

    hits = 0
    for _ in range(n_experiments):
        diffs = []
        for lt, (probs, selected, _, blind) in zip(topics, cached):
            n = min(crowd_size or sizes.get(lt.topic_id, 0), len(truth.users))
            if n < 2:
                continue
            who = rng.choice(len(truth.users), size=n, replace=False, p=selected)
            real = sample(probs[who])
            aware = sample(np.repeat(probs[who], seeds, axis=0))
            blind_crowd = blind @ probs
            blind_pred = sample(np.tile(blind_crowd, (n * seeds, 1)))
            diffs.append(float(js_divergence(real, blind_pred) - js_divergence(real, aware)))
        if len(diffs) >= 2 and np.std(diffs) > 0:
            p = stats.ttest_1samp(diffs, 0.0, alternative="greater").pvalue
            hits += bool(p < alpha)
    return hits / n_experiments
