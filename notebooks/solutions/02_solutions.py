"""Solutions to the exercises of notebook 02 (building the dataset). Each function returns its answer."""

from __future__ import annotations

import numpy as np

from socialalign_lib.build.pipeline import course_data
from socialalign_lib.build.retrieval import RetrievalConfig, document_text, retrieve_many, tokenize
from socialalign_lib.world import generate_world


def ex1_bm25_vs_recent(size: str = "tiny", seed: int = 0, k: int = 5) -> dict[str, float]:
    """Exercise 1 (predict): retrieve each case's k history posts by BM25 and by recency
    (``RetrievalConfig(method="recent")``). How often are the two sets the same, and how many news words does a
    retrieved post share with the news on average? (BM25 shares more words by construction; the sets differ for
    most cases, because a history mixes news of many categories with daily life and junk.)"""
    world = generate_world(size=size, seed=seed)
    histories = {u.user_id: u.history for u in world.users}
    queries = [(c.user.user_id, c.topic.news) for c in world.cases()]
    out: dict[str, float] = {}
    picked = {}
    for method in ("bm25", "recent"):
        cfg = RetrievalConfig(k=k, method=method)
        picked[method] = retrieve_many(histories, queries, cfg)
        shared = [
            len(set(tokenize(news, cfg)) & set(tokenize(document_text(p, cfg), cfg)))
            for (_, news), posts in zip(queries, picked[method])
            for p, _score in posts
        ]
        out[f"{method}: news words shared per post"] = float(np.mean(shared))
    same = [
        {p.post_id for p, _ in a} == {p.post_id for p, _ in b}
        for a, b in zip(picked["bm25"], picked["recent"])
    ]
    out["share of cases with the same posts"] = float(np.mean(same))
    out["cases"] = len(queries)
    return out


def split_leaks(dataset) -> dict[str, int]:
    """Exercise 2 (implement): check the held-out splits of a SocialAlign ``DatasetDict`` against ``train``:
    test_user must hold only users never in train, test_topic only topics never in train, test_both neither.
    Returns the number of offending (split, kind) ids; all zero for a correct split."""
    train = dataset["train"]
    users, topics = set(train["user_id"]), set(train["topic_id"])
    rules = {"test_user": ("user_id",), "test_topic": ("topic_id",), "test_both": ("user_id", "topic_id")}
    leaks = {}
    for split, columns in rules.items():
        for column in columns:
            seen = users if column == "user_id" else topics
            leaks[f"{split}: {column} seen in train"] = len(set(dataset[split][column]) & seen)
    return leaks


def ex2_split_leaks(size: str = "tiny", seed: int = 0) -> dict[str, int]:
    """Exercise 2: :func:`split_leaks` on the course dataset."""
    return split_leaks(course_data(size=size, seed=seed).dataset)
