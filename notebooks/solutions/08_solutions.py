"""Solutions to the exercises of notebook 08 (MultiSmpLLM / IDPOP). No LLM: baselines on the cold-start examples
and the IDPOP weights, each in seconds."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from socialalign_lib.popularity import idpop
from socialalign_lib.popularity import smp_baselines as baselines
from socialalign_lib.popularity import smp_llm as smp
from socialalign_lib.world import generate_world


@lru_cache(maxsize=4)
def _examples(size: str, seed: int):
    """Notebook 08's main users and their train- and test-form examples (1-3 shots)."""
    world = generate_world(size=size, seed=seed)
    cold = smp.select_users(
        smp.posts_frame(world.smp_posts), smp.SampleConfig(min_posts=5, keep_last=5, seed=seed)
    )
    main, _ = smp.split_users(cold, align_fraction=0.5, seed=seed)
    cfg = smp.PromptConfig(language="zh", post_ids="index")
    return (
        main,
        smp.build_examples(main, (1, 2, 3), "train", cfg),
        smp.build_examples(main, (1, 2, 3), "test", cfg),
    )


def ex1_baselines(size: str = "tiny", seed: int = 0) -> dict[str, dict[int, float]]:
    """Exercise 1 (a baseline): MAE per k-shot on the test questions of (a) the training answers' global mean,
    (b) the user's last history score, (c) the user's mean history score (the notebook's "per-user mean"). Which
    wins, and what does it say about this world? (At course size the per-user mean wins and improves with every
    shot — the user's audience dominates popularity — so an LLM that does not read the history scores cannot be
    competitive. The global mean and the last score do not depend on k: every k asks about the same post n, and
    its last history post is n−1 whatever k. At tiny size, 20 users, the global mean can still win.)"""
    _, train_ex, test_ex = _examples(size, seed)
    global_mean = float(np.mean([e.target for e in train_ex]))
    predictions = {
        "global mean": np.full(len(test_ex), global_mean),
        "last history score": np.array([e.history_scores[-1] for e in test_ex]),
        "per-user mean": baselines.user_mean_predictions(test_ex),
    }
    target = np.array([e.target for e in test_ex])
    shots = np.array([e.shots for e in test_ex])
    return {
        name: {k: float(np.abs(pred - target)[shots == k].mean()) for k in (1, 2, 3)}
        for name, pred in predictions.items()
    }


def my_mu(
    chosen_err, rejected_err, alpha: float = 1.0, lam: float = 0.5, delta: float = 0.1, mu_max: float = 5.0
) -> np.ndarray:
    """Exercise 2 (implement): IDPOP's per-pair weight from the two answers' absolute errors M (eq. 13-14):
    W = 10 exp(-alpha M / (M_max - M_min)) with the range over all answers of the set, mu = lam / (W_c - W_r + delta),
    clamped to [0, mu_max]."""
    c, r = np.asarray(chosen_err, dtype=float), np.asarray(rejected_err, dtype=float)
    span = max(c.max(), r.max()) - min(c.min(), r.min())
    w_c, w_r = 10 * np.exp(-alpha * c / span), 10 * np.exp(-alpha * r / span)
    return np.clip(lam / (w_c - w_r + delta), 0.0, mu_max)


def ex2_mu(size: str = "tiny", seed: int = 0) -> dict[str, object]:
    """Exercise 2: :func:`my_mu` against the library (``idpop.weight_scores`` + ``idpop.pair_mu``) on random pairs,
    and mu for a near-tie vs a clear pair. (A near-tie gets the largest mu: there DPO most easily lowers both
    answers' probabilities, the chosen one included.)"""
    rng = np.random.default_rng(seed)
    chosen = rng.uniform(0, 2, 200)
    rejected = chosen + rng.uniform(0.01, 3, 200)
    errors = np.concatenate([chosen, rejected])
    lo, hi = float(errors.min()), float(errors.max())
    lib = idpop.pair_mu(idpop.weight_scores(chosen, 1.0, lo, hi), idpop.weight_scores(rejected, 1.0, lo, hi))
    mine = my_mu(chosen, rejected)
    near, clear = my_mu([1.0, 1.0, 0.0], [1.05, 3.0, 3.0])[:2]
    return {
        "max |mine - library|": float(np.abs(mine - lib).max()),
        "mu near-tie (1.0 vs 1.05)": float(near),
        "mu clear pair (1.0 vs 3.0)": float(clear),
    }
