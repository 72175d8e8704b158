"""The exercise solutions (notebooks/solutions/NN_solutions.py) run at the tiny size and give right answers.

Each check is a property a wrong solution fails: a re-implementation must equal the library's function, a
"predict" answer must point the way the exercise says, a new prior must be a distribution that beats uniform."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest


def solutions(notebook: str):
    return importlib.import_module(f"notebooks.solutions.{notebook}_solutions")


def test_00_selection_weights_and_true_crowd():
    s = solutions("00")
    sel = s.ex1_selection()
    on, off = sel["selection on (λ=2)"], sel["selection off (λ=0)"]
    assert on["fan or critic share"] > off["fan or critic share"]
    w = s.ex2_reply_weight()
    assert w["pairs"] > 0 and w["max relative difference"] < 1e-12
    noise = s.ex3_sampling_noise()
    assert noise["max |mine - world.true_crowd()|"] < 1e-6  # the world rounds its crowds to 6 decimals
    assert (
        0 < noise["mean JS observed vs true, large crowds"] < noise["mean JS observed vs true, small crowds"]
    )


def test_01_crawl_predictions_and_count_parser():
    s = solutions("01")
    from socialalign_lib.collect.parse import parse_count

    by_rate = s.ex1_fault_rate()
    requests = [by_rate[r]["requests"] for r in (0.0, 0.3, 0.6)]
    assert requests == sorted(requests) and requests[0] < requests[-1]
    assert by_rate[0.0]["retries"] == 0 and all(v["units left undone"] == 0 for v in by_rate.values())
    assert (
        len({(v["topics"], v["posts"], v["users"]) for v in by_rate.values()}) == 1
    )  # same records every time
    no_retry = s.ex2_no_retries()
    assert no_retry["units left undone"] > 0 and no_retry["posts"] < by_rate[0.0]["posts"]
    cases = ["551894", "1.2万", "4.0824万", "100万+", "3亿", "1,234", "赞", "", None, 17, " 2.5万 "]
    assert [s.my_parse_count(c) for c in cases] == [parse_count(c) for c in cases]
    assert s.ex3_parse_count()["4.0824万"] == 40824


def test_02_retrieval_and_split_leaks(tiny_course):
    s = solutions("02")
    r = s.ex1_bm25_vs_recent()
    assert r["bm25: news words shared per post"] > r["recent: news words shared per post"]
    assert 0 <= r["share of cases with the same posts"] < 0.5
    from datasets import concatenate_datasets

    dataset = tiny_course.dataset
    assert set(s.split_leaks(dataset).values()) == {0}
    leaky = dict(dataset)
    leaky["test_user"] = concatenate_datasets([dataset["test_user"], dataset["train"].select(range(3))])
    assert s.split_leaks(leaky)["test_user: user_id seen in train"] > 0


def test_03_parameter_formula_gate_entropy_token_gates():
    s = solutions("03")
    counts = s.ex1_parameter_count()
    for name, c in counts.items():
        assert c["predicted"] == c["counted"], name
    assert counts["PAC-LoRA n=3"]["counted"] > counts["PAC-LoRA n=1"]["counted"] > counts["LoRA"]["counted"]
    e = s.ex2_gate_entropy(n_records=8)
    assert abs(e["gate_a entropy (uniform)"] - math.log2(3)) < 1e-5
    for side in ("gate_a", "gate_b"):
        assert 0 <= e[f"{side} entropy (learned)"] <= math.log2(3) + 1e-9
    assert s.gate_entropy(np.array([[1.0, 0.0, 0.0]]))[0] == pytest.approx(0.0, abs=1e-9)
    t = s.ex3_token_vs_mean_gate()
    assert (
        t["token gate rows sum to 1 (max error)"] < 1e-5
        and t["max |mean of token gates - gate of mean|"] > 1e-3
    )


def test_04_batch_independence_and_distinct_n():
    s = solutions("04")
    from socialalign_lib.metrics import distinct_n

    assert s.ex1_batch_size(n=4)["identical replies"] is True
    d = s.ex2_distinct(n=4)
    for name, row in d.items():
        for k in (1, 2):
            assert row[f"distinct-{k} (mine)"] == row[f"distinct-{k} (library)"], name
    assert d["sampled"]["distinct-2 (mine)"] > d["greedy"]["distinct-2 (mine)"]
    texts = ["今天 天气好", "好好好", "", "a"]
    assert s.my_distinct_n(texts, 2) == distinct_n(texts, 2) and s.my_distinct_n([""], 3) == 0.0


def test_05_priors_and_crowd_size():
    s = solutions("05")
    r = s.ex1_prior_per_reply(draws=10)
    assert r["distribution, mean JS"] < r["per reply (drawn), mean JS"]
    k = s.ex2_keyword_prior()
    assert k["keyword prior, mean JS to truth"] < k["uniform, mean JS to truth"]
    world, train, test = s._frames("tiny", 0)
    prior = s.keyword_prior(world, train, sorted(set(test.topic_id)))
    assert np.allclose(prior.sum(axis=1), 1.0) and (prior.to_numpy() > 0).all()
    c = s.ex3_crowd_size(draws=10)
    assert c["oracle mean JS, at most 4 users"] > c["oracle mean JS, all repliers"]


def test_06_new_rows():
    s = solutions("06")
    long = s.ex1_history_row(n_boot=50)
    assert set(long.method) == {"user history", "category prior", "oracle"}
    assert set(long.split) == {"test_user", "test_topic"} and long.value.notna().all()
    # the row's defining property: a user's label is one of their own history labels
    from socialalign_lib.sentiment import train_world_labeller

    world, train, test = s._cases("tiny", 0)
    labeller = train_world_labeller(world)
    crowd = s.history_prior(world, test, labeller, train)
    assert len(crowd) == len(test) and (crowd.user_id.to_numpy() == test.user_id.to_numpy()).all()
    for uid, label in zip(crowd.user_id[:10], crowd.sentiment[:10]):
        texts = [p.text for p in world.user(uid).history if p.text.strip()]
        assert label in set(labeller.predict(texts))
    m = s.ex2_majority_row()
    for row in m.values():
        assert row["accuracy"] == pytest.approx(row["share of the majority label"])
        assert row["macro-F1"] < row["accuracy"]


def test_07_pair_accuracy_and_baselines():
    s = solutions("07")
    a = s.ex1_pair_accuracy()
    assert a["true mean, mine"] == pytest.approx(a["true mean, library"], abs=1e-12)
    assert a["text part, mine"] == pytest.approx(a["text part, library"], abs=1e-12)
    assert s.my_pair_accuracy([np.array([1.0, 1.0])], [[5, 0]]) == 0.5  # a tie counts one half
    b = s.ex2_text_baselines()
    assert 0 <= b["longer reply"] <= 1 and b["text rule (labeller)"] > b["chance"]
    m = s.ex3_min_margin()
    assert m[0.0]["pairs"] > m[0.5]["pairs"] > m[1.5]["pairs"]
    assert m[1.5]["true-mean accuracy on them"] > m[0.0]["true-mean accuracy on them"]


def test_08_baselines_and_mu():
    s = solutions("08")
    b = s.ex1_baselines()
    for name in (
        "global mean",
        "last history score",
    ):  # every k asks about the same post, after the same post
        assert len({round(v, 9) for v in b[name].values()}) == 1, name
    assert b["per-user mean"][3] < b["per-user mean"][1]
    mu = s.ex2_mu()
    assert mu["max |mine - library|"] < 1e-12
    assert mu["mu near-tie (1.0 vs 1.05)"] > mu["mu clear pair (1.0 vs 3.0)"] > 0


def test_09_ablation_row_and_permutation():
    s = solutions("09")
    p = s.ex2_permutation()
    assert (
        p["w/o demographics: MSE rise, demographics shuffled"] == 0.0
    )  # the ablation really removes the input
    assert math.isfinite(p["full: MSE rise, demographics shuffled"])
    table = s.ex1_new_ablation()
    assert list(table.index) == [
        "NARRATOR (full)",
        "w/o image",
        "w/o demographics",
        "w/o image and demographics",
    ]
    assert table.loc["NARRATOR (full)", "Δmse vs full"] == 0 and table["test_mse"].gt(0).all()


def test_10_duplicates_and_js():
    s = solutions("10")
    d = s.ex1_duplicates()
    assert d["crowd rows with duplicates"] - d["crowd rows without"] == d["copies dropped"] > 0
    assert d["labelled rows with duplicates"] > d["labelled rows without"]
    j = s.ex2_js()
    assert j["pairs compared"] > 0 and j["max |mine - library|"] < 1e-12
    from socialalign_lib.crowd.divergences import js_divergence

    assert s.my_js([3, 0, 1], [0, 2, 2]) == pytest.approx(
        float(js_divergence([3, 0, 1], [0, 2, 2])), abs=1e-12
    )
