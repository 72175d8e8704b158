"""Solutions to the exercises of notebook 06 (results and ablations): two new non-LLM rows of the table, in the
same long format as the notebook's rows (``results.evaluate_crowd``), so they drop into ``results.results_table``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from socialalign_lib import macro, results
from socialalign_lib.build.pipeline import course_data
from socialalign_lib.experiments import evaluation_cases
from socialalign_lib.sentiment import train_world_labeller

SPLITS = ("test_user", "test_topic")


def _cases(size: str, seed: int, max_per_topic: int = 8) -> tuple[object, pd.DataFrame, pd.DataFrame]:
    """The world, the training replies and the evaluation cases of notebook 06 (gold labels as the real crowd)."""
    data = course_data(size=size, seed=seed)
    ids = evaluation_cases(data.dataset, SPLITS, max_per_topic=max_per_topic, seed=seed)
    cols = ["case_id", "topic_id", "user_id", "category", "sentiment", "split"]
    test = pd.concat([data.split(s).to_pandas()[cols] for s in SPLITS])
    test = test[test.case_id.isin({i for v in ids.values() for i in v})].reset_index(drop=True)
    return data.world, data.split("train").to_pandas()[cols], test


def history_prior(world, test: pd.DataFrame, labeller, train: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Exercise 1 (implement): a "user's history" row. Label each test user's own history posts with the
    labeller; draw the user's label from those labels (the user's usual mood, whatever the news); a user whose
    history has no post with words falls back to the category prior. One label per (topic, user), like a
    generated crowd. Returns a crowd frame (topic_id, user_id, sentiment)."""
    rng = np.random.default_rng(seed)
    by_user = {u.user_id: [p.text for p in u.history if p.text.strip()] for u in world.users}
    needed = sorted(set(test.user_id))
    texts = [t for uid in needed for t in by_user[uid]]
    predicted = iter(labeller.predict(texts)) if texts else iter(())
    labels_of = {uid: [next(predicted) for _ in by_user[uid]] for uid in needed}
    fallback = macro.category_prior(train, test, per_reply=True, seed=seed)["sentiment"].to_numpy()
    drawn = [
        rng.choice(labels_of[uid]) if labels_of[uid] else fallback[i] for i, uid in enumerate(test.user_id)
    ]
    return pd.DataFrame(
        {"topic_id": test.topic_id.to_numpy(), "user_id": test.user_id.to_numpy(), "sentiment": drawn}
    )


def ex1_history_row(size: str = "tiny", seed: int = 0, n_boot: int = 200) -> pd.DataFrame:
    """Exercise 1: the history row beside the category prior and the oracle, per split (JS to the real crowd and
    to the truth, with CIs). Where does it land? (It knows the user but not the news: typically between the
    category prior and the oracle on test_topic, where users are familiar; read the CIs before ranking.)"""
    world, train, test = _cases(size, seed)
    labels = list(world.labels)
    labeller = train_world_labeller(world)
    rows = {
        "user history": history_prior(world, test, labeller, train, seed),
        "category prior": macro.category_prior(train, test, seed=seed),
        "oracle": macro.oracle_crowd(world, test, seed=seed),
    }
    parts = []
    for split in SPLITS:
        mask = (test.split == split).to_numpy()
        real = test.loc[mask, ["topic_id", "sentiment"]]
        truth = macro.true_crowd(world, test[mask])
        for name, crowd in rows.items():
            pred = crowd.loc[mask, ["topic_id", "sentiment"]]
            parts.append(
                results.evaluate_crowd(name, real, pred, split, labels, truth=truth, seed=seed, n_boot=n_boot)
            )
    return pd.concat(parts, ignore_index=True)


def ex2_majority_row(size: str = "tiny", seed: int = 0) -> dict[str, dict[str, float]]:
    """Exercise 2 (predict, then implement): the micro floor — always answer the training set's most common label.
    What sentiment accuracy and macro-F1 does it reach per split? (Accuracy = that label's share in the split;
    macro-F1 is low, because two of three classes get F1 0: any model's sentiment accuracy must be read against
    this row.)"""
    from socialalign_lib.metrics import accuracy, macro_f1

    world, train, test = _cases(size, seed)
    labels = list(world.labels)
    majority = train.sentiment.value_counts().idxmax()
    out = {}
    for split in SPLITS:
        gold = test.loc[test.split == split, "sentiment"].tolist()
        out[split] = {
            "majority label": majority,
            "accuracy": accuracy(gold, [majority] * len(gold), labels),
            "macro-F1": macro_f1(gold, [majority] * len(gold), labels),
            "share of the majority label": gold.count(majority) / len(gold),
        }
    return out
