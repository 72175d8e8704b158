"""Solutions to the exercises of notebook 00 (the tour). Each function returns its answer; cheap at size "tiny"."""

from __future__ import annotations

import math

import numpy as np

from socialalign_lib.crowd.divergences import js_divergence
from socialalign_lib.world import generate_world
from socialalign_lib.world.latent import SELECTION_TERMS, opinion, reply_weight


def ex1_selection(size: str = "tiny", seed: int = 0) -> dict[str, dict[str, float]]:
    """Exercise 1 (predict): with ``crowd_selection`` 0 instead of 2, are fans and critics of the entity in the news a
    smaller or larger share of the repliers, and are crowds more or less one-sided?

    Returns, per setting: the share of replies written by a fan or critic of the topic's entity, and the mean
    |P(positive) − P(negative)| of the true crowds (how one-sided they are)."""
    out = {}
    for name, selection in (("selection on (λ=2)", 2.0), ("selection off (λ=0)", 0.0)):
        world = generate_world(size=size, seed=seed, crowd_selection=selection)
        entity = {tid: lt.entity for tid, lt in world.latent_topics.items()}
        partisan = [
            world.latent_users[r.post.user_id].entity_affinity.get(entity[r.topic_id], 0.0) != 0
            for r in world.responses
        ]
        crowd = np.array(list(world.true_crowd().values()))
        out[name] = {
            "fan or critic share": float(np.mean(partisan)),
            "one-sidedness |pos - neg|": float(np.mean(np.abs(crowd[:, -1] - crowd[:, 0]))),
        }
    return out


def my_reply_weight(user, topic, selection: float, floor: float = 0.03) -> float:
    """Exercise 2 (implement): w(u,t) of the notebook's formula, from the latent user and topic."""
    fan_term, local_term, opinion_term = SELECTION_TERMS  # 2, 1, 0.8
    score = (
        fan_term * abs(user.entity_affinity.get(topic.entity, 0.0))
        + local_term * (user.location == topic.city)
        + opinion_term * abs(opinion(user, topic))
    )
    return (user.interests.get(topic.category, 0.0) + floor) * math.exp(selection * score)


def ex2_reply_weight(size: str = "tiny", seed: int = 0) -> dict[str, float]:
    """Exercise 2: the largest relative difference between :func:`my_reply_weight` and the world's own
    ``latent.reply_weight`` over every (user, topic) pair, and how many pairs were compared."""
    world = generate_world(size=size, seed=seed)
    lam = world.config.crowd_selection
    worst, n = 0.0, 0
    for lt in world.latent_topics.values():
        for lu in world.latent_users.values():
            ours, theirs = my_reply_weight(lu, lt, lam), reply_weight(lu, lt, lam)
            worst = max(worst, abs(ours - theirs) / theirs)
            n += 1
    return {"max relative difference": worst, "pairs": n}


def ex3_sampling_noise(size: str = "tiny", seed: int = 0) -> dict[str, float]:
    """Exercise 3 (implement): recompute each topic's true crowd as the mean of p(s|u,t) over its repliers, then
    compare it with the crowd actually observed (the replies' labels). Returns the largest difference to
    ``world.true_crowd()`` and the mean JS (bits) between observed and true crowds for small and large crowds
    (split at the median crowd size): sampling noise alone, larger for smaller crowds."""
    world = generate_world(size=size, seed=seed)
    labels = list(world.labels)
    probs: dict[str, list] = {}
    observed: dict[str, list] = {}
    for r in world.responses:
        probs.setdefault(r.topic_id, []).append(world.response_probs[(r.topic_id, r.post.user_id)])
        observed.setdefault(r.topic_id, []).append(labels.index(r.sentiment))
    mine = {t: np.mean(p, axis=0) for t, p in probs.items()}
    theirs = world.true_crowd()
    diff = max(float(np.abs(mine[t] - np.asarray(theirs[t])).max()) for t in theirs)
    sizes = {t: len(v) for t, v in observed.items()}
    js = {
        t: float(js_divergence(np.bincount(v, minlength=len(labels)) / len(v), mine[t]))
        for t, v in observed.items()
    }
    median = float(np.median(list(sizes.values())))
    small = [js[t] for t in js if sizes[t] <= median]
    large = [js[t] for t in js if sizes[t] > median]
    return {
        "max |mine - world.true_crowd()|": diff,
        "median crowd size": median,
        "mean JS observed vs true, small crowds": float(np.mean(small)),
        "mean JS observed vs true, large crowds": float(np.mean(large)) if large else float("nan"),
    }
