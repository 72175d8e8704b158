"""Floors, priors and oracles of the results table (baselines.py), evaluate_labels, and the paired comparisons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from socialalign_lib import baselines, comparisons, results
from socialalign_lib.crowd.distributions import PRED_COL, REAL_COL

LABELS = ["negative", "neutral", "positive"]


def test_news_prior_reads_the_tone_of_unseen_news():
    news = [
        f"{c}市{w}，市民{x}" for c in "甲乙丙丁戊己" for w, x in (("发生事故", "愤怒"), ("获得大奖", "点赞"))
    ]
    labels = ["negative" if "事故" in n else "positive" for n in news]
    prior = baselines.NewsPrior(LABELS).fit(news, labels)
    p = prior.predict_proba(["庚市发生事故，市民愤怒", "庚市获得大奖，市民点赞"])
    assert p.shape == (2, 3) and np.allclose(p.sum(axis=1), 1)
    assert p[:, 1].max() == 0  # never seen in training: probability 0
    assert p[0].argmax() == 0 and p[1].argmax() == 2


def test_majority_and_uniform():
    assert (
        baselines.majority_labels(["neutral", "positive", "positive", "neutral"], 3) == ["neutral"] * 3
    )  # tie: sorted
    draws = baselines.uniform_labels(3000, LABELS, seed=1)
    freq = pd.Series(draws).value_counts(normalize=True)
    assert set(freq.index) == set(LABELS) and (abs(freq - 1 / 3) < 0.04).all()


def test_topic_crowd_is_none_for_unseen_topics():
    train = pd.DataFrame({"topic_id": ["a", "a"], "sentiment": ["positive", "positive"]})
    test = pd.DataFrame({"topic_id": ["a", "b"]})
    assert baselines.topic_crowd_labels(train, test) == ["positive", None]


def test_world_rows(tiny_world):
    pairs = pd.DataFrame(
        [{"topic_id": r.topic_id, "user_id": r.post.user_id} for r in tiny_world.responses[:60]]
    )
    argmax = baselines.oracle_argmax_labels(tiny_world, pairs)
    labels = list(tiny_world.labels)
    for (t, u), lab in zip(zip(pairs.topic_id, pairs.user_id), argmax):
        assert labels[int(np.argmax(tiny_world.response_probs[t, u]))] == lab
    blind = baselines.persona_blind_labels(tiny_world, pairs, seed=0)
    assert len(blind) == len(pairs) and set(blind) <= set(labels)


def test_oracle_labels_and_oracle_crowd_draw_the_same_labels(tiny_world):
    """Two draw codes for one idea, kept apart on purpose (see ``baselines.oracle_labels``): both spend one uniform
    per row in row order, so they agree label for label; a change of either's draws breaks this."""
    from socialalign_lib.crowd.baselines import oracle_crowd

    pairs = pd.DataFrame([{"topic_id": r.topic_id, "user_id": r.post.user_id} for r in tiny_world.responses])
    for seed in range(3):
        assert oracle_crowd(tiny_world, pairs, seed)["sentiment"].tolist() == baselines.oracle_labels(
            tiny_world, pairs, seed
        )


def _frame(pred, gold, topics, split="test_topic"):
    n = len(pred)
    return pd.DataFrame(
        {
            "case_id": [f"c{i}" for i in range(n)],
            "topic_id": topics,
            "user_id": [f"u{i}" for i in range(n)],
            "split": split,
            "sentiment": gold,
            PRED_COL: pred,
            REAL_COL: gold,
        }
    )


def test_evaluate_labels_drops_missing_predictions():
    ref = _frame(["positive"] * 4, ["positive", "negative", "positive", "neutral"], ["a", "a", "b", "b"])
    long = results.evaluate_labels(
        "x", ref, ["positive", None, "positive", "positive"], LABELS, splits=["test_topic"], n_boot=50
    )
    acc = long.set_index("metric").loc["sent_acc"]
    assert acc["n"] == 3 and acc["value"] == pytest.approx(2 / 3)
    assert {"js", "kl", "tv", "sent_f1"} <= set(long.metric)


def test_paired_best_separates_only_real_differences():
    rng = np.random.default_rng(0)
    idx = [f"t{i}" for i in range(200)]
    base = pd.Series(rng.random(200), index=idx)
    clear = {"good": base - 0.1, "bad": base}
    res = comparisons.paired_best(clear, lower_is_better=True)
    assert res["best"] == "good" and res["separated"]
    noisy = {"a": base + rng.normal(0, 0.05, 200), "b": base + rng.normal(0, 0.05, 200)}
    assert not comparisons.paired_best(noisy, lower_is_better=True)["separated"]
    assert "cannot be told apart" in comparisons.describe_best(
        comparisons.paired_best(noisy, True), "js", "s"
    )


def test_best_marks_and_compare_on_frames():
    rng = np.random.default_rng(1)
    gold = list(rng.choice(LABELS, 300))
    topics = [f"t{i % 30}" for i in range(300)]
    right = _frame(gold, gold, topics)
    wrong = _frame(list(rng.choice(LABELS, 300)), gold, topics)
    frames = {("A", 0): right, ("A", 1): right, ("B", 0): wrong}
    marks, text = comparisons.best_marks(frames, ["test_topic"], ["A", "B"])
    assert marks["test_topic", "sent_acc"] == {"A"} and marks["test_topic", "js"] == {"A"}
    d = comparisons.compare(frames, "A", "B", "test_topic", "sent_acc")
    assert d["diff"] > 0.5 and "A is better than B" in comparisons.describe_difference(
        d, "A", "B", "sent_acc"
    )
    d = comparisons.compare(frames, "A", "B", "test_topic", "js")
    assert "A is better than B" in comparisons.describe_difference(d, "A", "B", "js")
