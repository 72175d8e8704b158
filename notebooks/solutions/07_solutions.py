"""Solutions to the exercises of notebook 07 (PopALM). No model training: like-order baselines and pair building
on the world's events, each in seconds."""

from __future__ import annotations

import numpy as np

from socialalign_lib.popalm import data, evaluate, reward
from socialalign_lib.sentiment import train_world_labeller
from socialalign_lib.world import generate_world


def _events(size: str, seed: int):
    world = generate_world(size=size, seed=seed)
    events = data.events_from_world(world)
    return world, [e for e in events if e.split == "train"], [e for e in events if e.split == "test"]


def my_pair_accuracy(scores, likes, min_margin: float = 0.0) -> float:
    """Exercise 1 (implement): pairwise like-order accuracy. Over every pair of replies to one post whose
    log(1 + likes) differ by more than ``min_margin``, the share where the more-liked reply has the higher score
    (a tie in score counts one half)."""
    hits, n = 0.0, 0
    for s, lk in zip(scores, likes):
        logl = np.log1p(np.asarray(lk, dtype=float))
        for i in range(len(s)):
            for j in range(len(s)):
                if logl[i] - logl[j] > min_margin:
                    n += 1
                    hits += 1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0
    return hits / n


def ex1_pair_accuracy(size: str = "tiny", seed: int = 0) -> dict[str, float]:
    """Exercise 1: your accuracy and the library's (``reward.event_pair_accuracy``) for the world's true like
    mean and for its text-visible part on the held-out events: they must be equal."""
    world, _, test = _events(size, seed)
    full, text = evaluate.world_like_scores(world, test)
    likes = [e.likes for e in test]
    return {
        "true mean, mine": my_pair_accuracy(full, likes),
        "true mean, library": reward.event_pair_accuracy(full, likes),
        "text part, mine": my_pair_accuracy(text, likes),
        "text part, library": reward.event_pair_accuracy(text, likes),
    }


def ex2_text_baselines(size: str = "tiny", seed: int = 0) -> dict[str, float]:
    """Exercise 2 (a baseline): no reward model, just a rule on the reply text. Held-out pairwise accuracy of
    (a) longer reply = more likes, (b) the world's text-visible like terms read off the text with a labeller
    (``evaluate.text_popularity``), against chance 0.5 and the text-visible ceiling. A trained reward model
    should at least beat the rules; if it does not, it has learned less than a heuristic."""
    world, _, test = _events(size, seed)
    likes = [e.likes for e in test]
    labeller = train_world_labeller(world)
    _, text = evaluate.world_like_scores(world, test)
    return {
        "chance": 0.5,
        "longer reply": reward.event_pair_accuracy(
            [np.array([len(r) for r in e.replies]) for e in test], likes
        ),
        "text rule (labeller)": reward.event_pair_accuracy(
            [evaluate.text_popularity(e.replies, labeller) for e in test], likes
        ),
        "text-visible ceiling (truth)": reward.event_pair_accuracy(text, likes),
    }


def ex3_min_margin(size: str = "tiny", seed: int = 0) -> dict[float, dict[str, float]]:
    """Exercise 3 (predict): raise the reward model's ``min_margin`` from 0 to 0.5 to 1.5. How many training pairs
    remain, and how often does the world's true like mean order them right? (Fewer pairs, ordered right more
    often: near-ties are mostly noise, which is why notebook 07 drops them — at the cost of data.)"""
    world, train, _ = _events(size, seed)
    full, _ = evaluate.world_like_scores(world, train)
    likes = [e.likes for e in train]
    return {
        m: {
            "pairs": len(data.build_pairs(train, min_margin=m)),
            "true-mean accuracy on them": reward.event_pair_accuracy(full, likes, min_margin=m),
        }
        for m in (0.0, 0.5, 1.5)
    }
