"""Macro-level divergences (socialalign_lib.divergence): against scipy, edge cases, bootstrap behaviour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

from socialalign_lib.crowd.distributions import crowd_distributions, distribution
from socialalign_lib.crowd.divergences import (
    OVERALL,
    bootstrap_ci,
    compare_crowds,
    divergences,
    js_divergence,
    kl_divergence,
    multinomial_replicates,
    total_variation,
)

LABELS = ("negative", "neutral", "positive")


@st.composite
def distribution_pairs(draw, positive_q: bool = False):
    k = draw(st.integers(2, 6))
    weights = st.floats(0.0, 1.0, allow_nan=False, allow_subnormal=False)
    p = np.array(draw(st.lists(weights, min_size=k, max_size=k)))
    q_weights = st.floats(1e-3, 1.0) if positive_q else weights
    q = np.array(draw(st.lists(q_weights, min_size=k, max_size=k)))
    p[draw(st.integers(0, k - 1))] += 0.1  # some mass somewhere
    q[draw(st.integers(0, k - 1))] += 0.1
    return p, q


# ----------------------------------------------------------------------------------------- against scipy
@settings(max_examples=150, deadline=None)
@given(distribution_pairs())
def test_js_matches_scipy(pair):
    p, q = pair
    js = js_divergence(p, q)
    expected = jensenshannon(p, q, base=2) ** 2  # scipy normalises p and q too
    assert 0.0 <= js <= 1.0
    assert js == pytest.approx(np.nan_to_num(expected), abs=1e-9)
    assert js == pytest.approx(js_divergence(q, p), abs=1e-12)  # symmetric


@settings(max_examples=150, deadline=None)
@given(distribution_pairs(positive_q=True))
def test_kl_matches_scipy(pair):
    p, q = pair
    assert kl_divergence(p, q, eps=0.0) == pytest.approx(entropy(p, q, base=2), rel=1e-9, abs=1e-12)
    assert kl_divergence(p, q, eps=0.0, base=np.e) == pytest.approx(entropy(p, q), rel=1e-9, abs=1e-12)
    # smoothing = normalise, add eps to both, renormalise
    eps = 1e-3
    ps, qs = p / p.sum() + eps, q / q.sum() + eps
    assert kl_divergence(p, q, eps=eps) == pytest.approx(entropy(ps, qs, base=2), rel=1e-9, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(distribution_pairs())
def test_tv_and_batch_shapes(pair):
    p, q = pair
    assert total_variation(p, q) == pytest.approx(0.5 * np.abs(p / p.sum() - q / q.sum()).sum())
    batch_p, batch_q = np.stack([p, q, p]), np.stack([q, p, p])
    for fn in (kl_divergence, js_divergence, total_variation):
        out = fn(batch_p, batch_q)
        assert out.shape == (3,)
        assert out[0] == pytest.approx(fn(p, q)) and out[2] == pytest.approx(0.0, abs=1e-12)


# ----------------------------------------------------------------------------------------- edge cases
def test_identical_distributions_give_zero():
    for p in ([0.2, 0.3, 0.5], [0.0, 1.0, 0.0], [3, 0, 1]):
        assert kl_divergence(p, p) == pytest.approx(0.0, abs=1e-12)
        assert js_divergence(p, p) == pytest.approx(0.0, abs=1e-12)
        assert total_variation(p, p) == 0.0
    assert kl_divergence([2, 2], [0.5, 0.5]) == pytest.approx(0.0, abs=1e-12)  # counts are normalised


def test_zero_classes_are_finite_and_js_is_at_most_one():
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.0, 0.0, 1.0])  # disjoint supports
    assert js_divergence(p, q) == pytest.approx(1.0)
    assert total_variation(p, q) == pytest.approx(1.0)
    kl = kl_divergence(p, q)
    assert np.isfinite(kl) and kl > 10  # ≈ log2(1/eps) bits, not inf
    assert kl_divergence(p, q, eps=0.0) == np.inf  # raw KL, stated
    assert kl_divergence([0.0, 1.0], [0.5, 0.5], eps=0.0) == pytest.approx(1.0)  # 0·log 0 = 0


def test_invalid_inputs_raise():
    with pytest.raises(ValueError, match="zero total"):
        js_divergence([0, 0, 0], [1, 0, 0])
    with pytest.raises(ValueError, match="non-negative"):
        kl_divergence([-0.1, 1.1], [0.5, 0.5])
    with pytest.raises(ValueError, match="classes"):
        total_variation([0.5, 0.5], [0.2, 0.3, 0.5])


def test_distribution_counts_to_probabilities():
    out = distribution(["negative", "negative", "positive", "negative"], LABELS)
    np.testing.assert_allclose(out, [0.75, 0.0, 0.25])
    with pytest.raises(ValueError, match="angry"):
        distribution(["angry"], LABELS)
    with pytest.raises(ValueError, match="empty crowd"):
        distribution([], LABELS)


def test_crowd_distributions():
    df = pd.DataFrame(
        {
            "topic_id": ["t2", "t1", "t1", "t2", "t2"],
            "sentiment": ["positive", "negative", "negative", "neutral", "positive"],
        }
    )
    out = crowd_distributions(df, "topic_id", "sentiment", LABELS)
    assert list(out.index) == ["t1", "t2"] and list(out.columns) == [*LABELS, "n"]
    np.testing.assert_allclose(out.loc["t1", list(LABELS)], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(out.loc["t2", list(LABELS)], [0.0, 1 / 3, 2 / 3])
    assert out["n"].tolist() == [2, 3]
    with pytest.raises(ValueError, match="outside the label set"):
        crowd_distributions(df.assign(sentiment="angry"))


# ----------------------------------------------------------------------------------------- bootstrap
def _labels(rng: np.random.Generator, n: int, p: list[float]) -> np.ndarray:
    return rng.choice(np.array(LABELS), size=n, p=p)


def _js_of_labels(real: np.ndarray, pred: np.ndarray) -> float:
    return js_divergence(distribution(real, LABELS), distribution(pred, LABELS))


def test_bootstrap_ci_contains_point_shrinks_and_is_deterministic():
    rng = np.random.default_rng(0)
    small = (_labels(rng, 60, [0.6, 0.3, 0.1]), _labels(rng, 60, [0.2, 0.3, 0.5]))
    large = (_labels(rng, 2000, [0.6, 0.3, 0.1]), _labels(rng, 2000, [0.2, 0.3, 0.5]))
    lo_s, hi_s = bootstrap_ci(_js_of_labels, *small, n_boot=300, seed=1)
    lo_l, hi_l = bootstrap_ci(_js_of_labels, *large, n_boot=300, seed=1)
    assert lo_s <= _js_of_labels(*small) <= hi_s
    assert lo_l <= _js_of_labels(*large) <= hi_l
    assert hi_l - lo_l < 0.5 * (hi_s - lo_s)  # width ∝ 1/√n: 2000 vs 60 replies
    assert bootstrap_ci(_js_of_labels, *small, n_boot=300, seed=1) == (lo_s, hi_s)
    assert bootstrap_ci(_js_of_labels, *small, n_boot=300, seed=2) != (lo_s, hi_s)


def test_bootstrap_ci_vectorized_equals_loop():
    x = np.arange(50.0)
    loop = bootstrap_ci(np.mean, x, n_boot=200, seed=3)
    vec = bootstrap_ci(lambda a: a.mean(axis=1), x, n_boot=200, seed=3, vectorized=True)
    assert loop == pytest.approx(vec)
    assert loop[0] < x.mean() < loop[1]
    with pytest.raises(ValueError, match="shape"):
        bootstrap_ci(lambda a: a.mean(), x, n_boot=10, vectorized=True)


# ----------------------------------------------------------------------------------------- compare_crowds
def _crowds(seed: int = 0, n: int = 400) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    real = pd.DataFrame(
        {"topic_id": rng.choice(["a", "b"], n), "sentiment": _labels(rng, n, [0.6, 0.3, 0.1])}
    )
    pred = pd.DataFrame(
        {"topic_id": rng.choice(["a", "b"], n), "sentiment": _labels(rng, n, [0.2, 0.8, 0.0])}
    )
    return real, pred


def test_compare_crowds_point_estimates_and_cis():
    real, pred = _crowds()
    out = compare_crowds(real, pred, LABELS, n_boot=400, seed=0)
    assert list(out.index) == ["a", "b"]
    for topic in out.index:
        p = distribution(real.loc[real.topic_id == topic, "sentiment"], LABELS)
        q = distribution(pred.loc[pred.topic_id == topic, "sentiment"], LABELS)
        row = out.loc[topic]
        np.testing.assert_allclose(row[[f"real_{lab}" for lab in LABELS]].to_numpy(float), p)
        np.testing.assert_allclose(row[[f"pred_{lab}" for lab in LABELS]].to_numpy(float), q)
        for name, fn in (("kl", kl_divergence), ("js", js_divergence), ("tv", total_variation)):
            assert row[name] == pytest.approx(fn(p, q))
            assert row[f"{name}_low"] <= row[name] <= row[f"{name}_high"]
    assert out["pred_positive"].eq(0).all()  # a class the model never predicts …
    assert np.isfinite(out.to_numpy(float)).all()  # … gives no NaN or inf anywhere


def test_compare_crowds_deterministic_and_agrees_with_row_resampling():
    real, pred = _crowds()
    a = compare_crowds(real, pred, n_boot=500, seed=7)
    pd.testing.assert_frame_equal(a, compare_crowds(real, pred, n_boot=500, seed=7))
    assert not a["js_low"].equals(compare_crowds(real, pred, n_boot=500, seed=8)["js_low"])
    # the multinomial shortcut and resampling rows estimate the same interval
    r = real.loc[real.topic_id == "a", "sentiment"].to_numpy()
    p = pred.loc[pred.topic_id == "a", "sentiment"].to_numpy()
    lo, hi = bootstrap_ci(_js_of_labels, r, p, n_boot=500, seed=7)
    assert a.loc["a", "js_low"] == pytest.approx(lo, abs=0.03)
    assert a.loc["a", "js_high"] == pytest.approx(hi, abs=0.03)


def test_multinomial_replicates_have_the_bootstrap_mean_and_variance():
    counts = np.array([[30.0, 10.0, 0.0], [1.0, 1.0, 2.0]])  # [T, K], a class never seen stays never drawn
    boot = multinomial_replicates(counts, 20000, np.random.default_rng(0))
    assert boot.shape == (20000, 2, 3)
    np.testing.assert_allclose(boot.sum(axis=-1), 1.0)
    p, n = counts / counts.sum(1, keepdims=True), counts.sum(1, keepdims=True)
    np.testing.assert_allclose(boot.mean(axis=0), p, atol=0.01)
    np.testing.assert_allclose(boot.var(axis=0), p * (1 - p) / n, rtol=0.05, atol=1e-12)  # resampling n rows
    with pytest.raises(ValueError, match="at least one reply"):
        multinomial_replicates(np.array([[0.0, 0.0]]), 5, np.random.default_rng(0))


def test_one_crowd_bootstrap_behind_compare_crowds_and_macro():
    """compare_crowds (per topic) and macro.mean_divergences (mean over topics) draw the same replicates from
    the same seed: one bootstrap, so their numbers agree exactly."""
    from socialalign_lib.crowd.divergences import mean_divergences

    real, pred = _crowds()
    counts = lambda df: (  # noqa: E731
        pd.crosstab(df.topic_id, df.sentiment).reindex(columns=LABELS, fill_value=0).to_numpy(float)
    )  # noqa: E731
    rng = np.random.default_rng(11)
    boot = divergences(
        multinomial_replicates(counts(real), 300, rng), multinomial_replicates(counts(pred), 300, rng)
    )
    per_topic = compare_crowds(real, pred, n_boot=300, seed=11)
    for name in ("kl", "js", "tv"):
        low, high = np.quantile(boot[name], [0.025, 0.975], axis=0)
        np.testing.assert_array_equal(per_topic[f"{name}_low"].to_numpy(), low)
        np.testing.assert_array_equal(per_topic[f"{name}_high"].to_numpy(), high)
    mean = mean_divergences(real, pred, LABELS, n_boot=300, seed=11, interval="percentile")
    for name in ("kl", "js", "tv"):
        low, high = np.quantile(boot[name].mean(axis=1), [0.025, 0.975])
        assert (mean[f"{name}_low"], mean[f"{name}_high"]) == (low, high)


def test_compare_crowds_ci_shrinks_with_more_replies():
    small = compare_crowds(*_crowds(n=80), n_boot=300, seed=0)
    large = compare_crowds(*_crowds(n=4000), n_boot=300, seed=0)
    width = lambda df: (df["js_high"] - df["js_low"]).to_numpy()  # noqa: E731
    assert np.all(width(large) < 0.5 * width(small))


def test_compare_crowds_topics_overall_and_no_bootstrap():
    real, pred = _crowds()
    extra = pd.concat([pred, pd.DataFrame({"topic_id": ["c"], "sentiment": ["neutral"]})])
    with pytest.raises(ValueError, match=r"only in pred_df: \['c'\]"):
        compare_crowds(real, extra, n_boot=10)
    out = compare_crowds(real, extra, n_boot=0, missing="drop", overall=True)
    assert list(out.index) == ["a", "b", OVERALL]
    assert "js_low" not in out.columns
    assert out.loc[OVERALL, "n_real"] == len(real) and out.loc[OVERALL, "n_pred"] == len(pred)
    pooled = js_divergence(distribution(real.sentiment, LABELS), distribution(pred.sentiment, LABELS))
    assert out.loc[OVERALL, "js"] == pytest.approx(pooled)
