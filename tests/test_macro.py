"""Crowd-level evaluation (socialalign_lib.macro) and the results table (socialalign_lib.results), on hand-built
frames whose numbers can be checked by hand."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from sklearn.metrics import f1_score

from socialalign_lib import macro, results
from socialalign_lib.crowd.distributions import crowd_distributions
from socialalign_lib.crowd.divergences import compare_crowds, js_divergence
from socialalign_lib.world import generate_world

LABELS = ("negative", "neutral", "positive")


class PrefixLabeller:
    """Labels a text by its first three letters: 'neg…' → negative, 'neu…' → neutral, else positive."""

    labels = LABELS

    def predict(self, texts):
        return [{"neg": "negative", "neu": "neutral"}.get(t[:3], "positive") for t in texts]


def replies_frame() -> pd.DataFrame:
    """Two topics of a test_topic split and one of test_user, one row per (user, topic) as generate_replies gives."""
    rows = [
        # topic, user, split, category, real reply, gold, generated
        ("t1", "u1", "test_topic", "food", "neg 太难吃", "negative", "neg 难吃"),
        ("t1", "u2", "test_topic", "food", "neg 贵", "negative", "pos 好吃"),
        ("t1", "u3", "test_topic", "food", "pos 好", "positive", "neg 不行"),
        ("t1", "u4", "test_topic", "food", "neu 路过", "neutral", "neg 差"),
        ("t2", "u1", "test_topic", "tech", "pos 点赞", "positive", "pos 赞"),
        ("t2", "u5", "test_topic", "tech", "pos 厉害", "positive", "pos 厉害了"),
        ("t3", "u6", "test_user", "food", "neu 看看", "neutral", "neu 看看吧"),
        ("t3", "u7", "test_user", "food", "neg 太贵", "negative", "neg 太贵了"),
    ]
    df = pd.DataFrame(
        rows, columns=["topic_id", "user_id", "split", "category", "reference", "sentiment", "generated"]
    )
    df["case_id"] = df["topic_id"] + "-" + df["user_id"]
    return df


@pytest.fixture
def labelled() -> pd.DataFrame:
    return macro.label_replies(replies_frame(), PrefixLabeller())


# ------------------------------------------------------------------------------------------- labelling, crowds
def test_label_replies_and_crowd_frames(labelled):
    assert labelled[macro.PRED_COL].tolist()[:4] == ["negative", "positive", "negative", "negative"]
    assert (
        labelled[macro.REAL_COL].tolist() == labelled["sentiment"].tolist()
    )  # prefixes agree with gold here
    real, pred = macro.crowd_frames(labelled[labelled.split == "test_topic"])
    d_real = crowd_distributions(real, labels=LABELS)
    d_pred = crowd_distributions(pred, labels=LABELS)
    assert d_real.loc["t1", list(LABELS)].tolist() == [0.5, 0.25, 0.25]
    assert d_pred.loc["t1", list(LABELS)].tolist() == [0.75, 0.0, 0.25]
    assert d_pred.loc["t2", list(LABELS)].tolist() == [0.0, 0.0, 1.0] and d_pred.loc["t2", "n"] == 2
    assert macro.crowd_counts(pred, LABELS).loc["t1"].tolist() == [3, 0, 1]


def test_crowd_frames_gold_uses_dataset_labels(labelled):
    changed = labelled.assign(real_sentiment="neutral")
    real, _ = macro.crowd_frames(changed, real="gold")
    assert real["sentiment"].tolist() == labelled["sentiment"].tolist()
    with pytest.raises(ValueError, match="labeller' or 'gold"):
        macro.crowd_frames(labelled, real="truth")


# ------------------------------------------------------------------------------------------- category prior
def test_category_prior_is_the_training_distribution_of_the_category():
    train = pd.DataFrame(
        {
            "category": ["food", "food", "food", "tech"],
            "sentiment": ["negative", "negative", "positive", "neutral"],
        }
    )
    test = pd.DataFrame(
        {"topic_id": ["t1", "t1", "t2", "t9"], "category": ["food", "food", "tech", "sports"]}
    )
    prior = macro.category_prior(train, test, per_reply=False)
    dist = crowd_distributions(prior, labels=LABELS)
    assert dist.loc["t1", list(LABELS)].tolist() == pytest.approx([2 / 3, 0, 1 / 3])
    assert dist.loc["t2", list(LABELS)].tolist() == [0.0, 1.0, 0.0]
    assert dist.loc["t9", list(LABELS)].tolist() == [0.5, 0.25, 0.25]  # unseen category: the global prior
    assert dist.loc["t1", "n"] == 3  # the prior carries its own sample size, so its noise is bootstrapped too


def test_category_prior_per_reply_draws_one_label_per_user_from_the_category():
    train = pd.DataFrame(
        {"category": ["food"] * 3 + ["tech"], "sentiment": ["negative", "negative", "positive", "neutral"]}
    )
    test = pd.DataFrame({"topic_id": ["t1"] * 3000 + ["t2"] * 5, "category": ["food"] * 3000 + ["tech"] * 5})
    prior = macro.category_prior(train, test, seed=1)
    assert prior["topic_id"].tolist() == test["topic_id"].tolist()  # the real crowd's size, user for user
    dist = crowd_distributions(prior, labels=LABELS)
    assert dist.loc["t1", list(LABELS)].tolist() == pytest.approx([2 / 3, 0, 1 / 3], abs=0.03)
    assert dist.loc["t2", list(LABELS)].tolist() == [0.0, 1.0, 0.0]
    assert prior.equals(macro.category_prior(train, test, seed=1))


def test_category_prior_refuses_a_topic_with_two_categories():
    train = pd.DataFrame({"category": ["a"], "sentiment": ["negative"]})
    with pytest.raises(ValueError, match="more than one category"):
        macro.category_prior(train, pd.DataFrame({"topic_id": ["t", "t"], "category": ["a", "b"]}))


# ------------------------------------------------------------------------------------------- divergences
def test_mean_divergences_point_is_the_mean_of_per_topic_divergences(labelled):
    real, pred = macro.crowd_frames(labelled[labelled.split == "test_topic"])
    out = macro.mean_divergences(real, pred, LABELS, n_boot=300, seed=1)
    js_t1 = jensenshannon([0.5, 0.25, 0.25], [0.75, 0.0, 0.25], base=2) ** 2
    assert out["js"] == pytest.approx((js_t1 + 0.0) / 2)  # t2 is predicted exactly
    per_topic = compare_crowds(real, pred, LABELS, n_boot=0)
    for m in ("js", "kl", "tv"):
        assert out[m] == pytest.approx(per_topic[m].mean())
        assert out[f"{m}_low"] <= out[f"{m}_high"]
        assert all(np.isfinite([out[m], out[f"{m}_low"], out[f"{m}_high"]]))
    assert out["n_topics"] == 2
    # deterministic for a seed
    assert macro.mean_divergences(real, pred, LABELS, n_boot=300, seed=1) == out
    # the default interval resamples topics: it lies between the smallest and largest per-topic value and holds
    # the point estimate
    for m in ("js", "kl", "tv"):
        assert (
            per_topic[m].min() - 1e-12
            <= out[f"{m}_low"]
            <= out[m]
            <= out[f"{m}_high"]
            <= per_topic[m].max() + 1e-12
        )
    # the basic interval is the user-resampling percentile interval reflected around the point (clipped at 0)
    pct = macro.mean_divergences(real, pred, LABELS, n_boot=300, seed=1, interval="percentile")
    basic = macro.mean_divergences(real, pred, LABELS, n_boot=300, seed=1, interval="basic")
    for m in ("js", "kl", "tv"):
        assert basic[m] == pct[m] == out[m]
        assert basic[f"{m}_low"] == pytest.approx(max(0.0, 2 * out[m] - pct[f"{m}_high"]))
        assert basic[f"{m}_high"] == pytest.approx(max(0.0, 2 * out[m] - pct[f"{m}_low"]))


def test_zero_probability_classes_stay_finite():
    """The model never says 'positive', the public often does: KL is smoothed, nothing is NaN or inf."""
    real = pd.DataFrame({"topic_id": ["t"] * 4, "sentiment": ["positive", "positive", "negative", "neutral"]})
    pred = pd.DataFrame({"topic_id": ["t"] * 3, "sentiment": ["negative"] * 3})
    out = macro.mean_divergences(real, pred, LABELS, n_boot=200)
    assert all(np.isfinite(v) for v in out.values())
    assert out["kl"] > 1.0 and 0 < out["js"] <= 1.0


def test_mean_divergences_against_fixed_truth():
    truth = pd.DataFrame(
        {"negative": [0.2, 0.6], "neutral": [0.3, 0.2], "positive": [0.5, 0.2]},
        index=pd.Index(["t1", "t2"], name="topic_id"),
    )
    pred = pd.DataFrame(
        {"topic_id": ["t1", "t1", "t2", "t2"], "sentiment": ["positive", "neutral", "negative", "negative"]}
    )
    out = macro.mean_divergences(None, pred, LABELS, truth=truth, n_boot=200)
    expected = (js_divergence([0.2, 0.3, 0.5], [0, 0.5, 0.5]) + js_divergence([0.6, 0.2, 0.2], [1, 0, 0])) / 2
    assert out["js"] == pytest.approx(expected)
    per_topic = macro.compare_to_truth(truth, pred, LABELS, n_boot=200)
    assert per_topic.loc["t2", "true_negative"] == 0.6 and per_topic.loc["t2", "pred_negative"] == 1.0
    assert per_topic["js"].mean() == pytest.approx(expected)
    with pytest.raises(ValueError, match="exactly one reference"):
        macro.mean_divergences(pred, pred, LABELS, truth=truth)


def test_js_difference_prefers_the_closer_crowd(labelled):
    real, pred = macro.crowd_frames(labelled[labelled.split == "test_topic"])
    out = macro.js_difference(real, real, pred, LABELS, n_boot=300)  # A = the real crowd itself
    assert out["diff"] < 0 and out["low"] <= out["diff"] <= out["high"]
    assert out["a_wins"] == 0.5  # t1: A wins; t2: a tie (both exact) is not a win


def test_mismatched_topics_raise(labelled):
    real, pred = macro.crowd_frames(labelled)
    with pytest.raises(ValueError, match="different topics"):
        macro.mean_divergences(real, pred[pred.topic_id != "t3"], LABELS)


# ------------------------------------------------------------------------------------------- world truth
@pytest.fixture(scope="module")
def world():
    return generate_world(size="tiny", seed=0)


def test_true_crowd_and_oracle_use_the_same_users(world):
    pairs = pd.DataFrame(
        [(r.topic_id, r.post.user_id) for r in world.responses if r.split == "test_topic"],
        columns=["topic_id", "user_id"],
    )
    truth = macro.true_crowd(world, pairs)
    tid = pairs["topic_id"].iloc[0]
    users = pairs.loc[pairs.topic_id == tid, "user_id"]
    expected = np.mean([world.response_probs[(tid, u)] for u in users], axis=0)
    assert truth.loc[tid, list(world.labels)].to_numpy() == pytest.approx(expected)
    assert truth.loc[tid, "n"] == len(users)
    oracle = macro.oracle_crowd(world, pairs, seed=3)
    assert len(oracle) == len(pairs) and set(oracle["sentiment"]) <= set(world.labels)
    assert oracle.equals(macro.oracle_crowd(world, pairs, seed=3))
    with pytest.raises(KeyError, match="no reply of user"):
        macro.true_crowd(world, pd.DataFrame({"topic_id": [tid], "user_id": ["nobody"]}))


# ------------------------------------------------------------------------------------------- micro metrics
def test_micro_metrics_hand_computed(labelled):
    sub = labelled[labelled.split == "test_topic"]
    histories = {u: ["今天吃了面", "好吃！"] for u in sub["user_id"]}
    rows = {r["metric"]: r for r in results.micro_metrics(sub, LABELS, histories, n_boot=200)}
    # gold: neg neg pos neu pos pos; predicted: neg pos neg neg pos pos → 3 of 6 right
    assert rows["sent_acc"]["value"] == pytest.approx(0.5)
    gold, pred = sub["sentiment"].tolist(), sub[macro.PRED_COL].tolist()
    assert rows["sent_f1"]["value"] == pytest.approx(
        f1_score(gold, pred, labels=list(LABELS), average="macro")
    )
    assert rows["sent_acc"]["low"] <= 0.5 <= rows["sent_acc"]["high"]
    assert np.isnan(rows["bleu"]["low"]) and 0 <= rows["bleu"]["value"] <= 1
    assert set(rows) == set(results.MICRO_METRICS)


def test_bootstrap_macro_f1_matches_sklearn_on_each_replicate():
    rng = np.random.default_rng(0)
    gold, pred = rng.integers(0, 3, 40), rng.integers(0, 3, 40)
    low, high = results._boot_macro_f1(gold, pred, 3, 50, 0.05, np.random.default_rng(7))
    idx = np.random.default_rng(7).integers(0, 40, size=(50, 40))
    ref = [f1_score(gold[i], pred[i], labels=[0, 1, 2], average="macro", zero_division=0) for i in idx]
    assert (low, high) == pytest.approx(tuple(np.quantile(ref, [0.025, 0.975])))


# ------------------------------------------------------------------------------------------- results table
def _long_results(labelled) -> pd.DataFrame:
    copying = macro.label_replies(labelled.assign(generated=labelled["reference"]), PrefixLabeller())
    parts = [
        results.evaluate_replies(m, frame, LABELS, seed=s, n_boot=100)
        for m, frame in (("PAC-LoRA", labelled), ("base (zero-shot)", copying))
        for s in (0, 1)
    ]
    train = pd.DataFrame(
        {"category": ["food", "food", "tech"], "sentiment": ["negative", "positive", "positive"]}
    )
    for split in results.SPLITS:
        sub = labelled[labelled.split == split]
        real, _ = macro.crowd_frames(sub)
        parts.append(
            results.evaluate_crowd(
                "category prior", real, macro.category_prior(train, sub), split, LABELS, n_boot=100
            )
        )
    return pd.concat(parts, ignore_index=True)


def test_results_table_shape_order_and_values(labelled, tmp_path):
    long = _long_results(labelled)
    wide = results.results_table(long)
    assert list(wide.index) == [
        "base (zero-shot)",
        "PAC-LoRA",
        "category prior",
    ]  # METHOD_ORDER, not input order
    n_metrics = (
        len(results.MICRO_METRICS) - 1 + 3
    )  # no histories → no persona; js, kl, tv (no world → no js_true)
    assert wide.shape == (3, 2 * n_metrics * 4 + 1)
    # "generated = reference" reproduces the real crowd: JS 0 on both splits, accuracy 1
    assert wide.loc["base (zero-shot)", ("test_topic", "js", "value")] == pytest.approx(0.0)
    assert wide.loc["base (zero-shot)", ("test_user", "sent_acc", "value")] == 1.0
    # value = mean over seeds; seed_sd from the two seeds; seeds listed
    sel = long[(long.method == "PAC-LoRA") & (long.split == "test_topic") & (long.metric == "js")]
    assert wide.loc["PAC-LoRA", ("test_topic", "js", "value")] == pytest.approx(sel["value"].mean())
    assert wide.loc["PAC-LoRA", ("test_topic", "js", "high")] == pytest.approx(sel["high"].mean())
    assert wide.loc["PAC-LoRA", ("", "", "seeds")] == "0,1"
    # the category prior has macro numbers and no micro ones
    assert np.isnan(wide.loc["category prior", ("test_user", "sent_acc", "value")])
    macro_cols = [c for c in wide.columns if c[1] in ("js", "kl", "tv") and c[2] != "seed_sd"]
    assert np.isfinite(wide[macro_cols].to_numpy(float)).all()

    fig = results.plot_metric_bars(wide, "js")
    assert len(fig.axes) == 2 and len(fig.axes[0].patches) == 3  # two splits, one bar per method

    csv, png = results.save_results(wide, "06_results", tmp_path)
    assert png.exists() and csv.name == "06_results.csv"
    back = pd.read_csv(csv, index_col=0)
    assert "test_topic/js" in back.columns and "test_topic/js_low" in back.columns and "seeds" in back.columns
    assert back.loc["PAC-LoRA", "test_topic/js"] == pytest.approx(sel["value"].mean(), rel=1e-5)


# ------------------------------------------------------------------------------------------- figures
def test_figures_draw_every_topic_and_method(labelled):
    sub = labelled[labelled.split == "test_topic"]
    real, pred = macro.crowd_frames(sub)
    cmp = compare_crowds(real, pred, LABELS, n_boot=100)
    ref, prd = macro.split_comparison(cmp, LABELS)
    fig = macro.plot_crowd_bars({"real": ref, "PAC-LoRA": prd}, LABELS)
    assert len(fig.axes[0].patches) == 2 * 2 * 3  # topics × sources × labels
    fig = macro.plot_topic_divergence({"PAC-LoRA": cmp, "copy": cmp})
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["t2", "t1"]  # sorted by JS
    fig = macro.plot_share_scatter({"PAC-LoRA": cmp})
    offsets = fig.axes[0].collections[0].get_offsets()
    assert sorted(map(tuple, np.asarray(offsets))) == [(0.0, 0.0), (0.5, 0.75)]


def test_describe_js_difference_only_claims_what_the_ci_supports():
    better = {"diff": -0.05, "low": -0.08, "high": -0.01, "a_wins": 0.75}
    unclear = {"diff": -0.05, "low": -0.09, "high": 0.02, "a_wins": 0.6}
    worse = {"diff": 0.04, "low": 0.01, "high": 0.07, "a_wins": 0.2}
    assert macro.describe_js_difference(better, "PAC-LoRA", "prior").startswith("PAC-LoRA is closer")
    assert "cannot be told apart" in macro.describe_js_difference(unclear, "PAC-LoRA", "prior")
    assert macro.describe_js_difference(worse, "PAC-LoRA", "prior", 12).startswith("PAC-LoRA is further")
    assert "[-0.080, -0.010]" in macro.describe_js_difference(better, "A", "B")


# ------------------------------------------------------------------------------------------- the protocol
@pytest.fixture(scope="module")
def tiny_data(tiny_course):
    return tiny_course


def test_evaluation_cases_caps_and_drops_small_crowds(tiny_data):
    from socialalign_lib.experiments import evaluation_cases

    cases = evaluation_cases(tiny_data.dataset, ("test_user", "test_topic"), max_per_topic=5, min_per_topic=3)
    world = tiny_data.world
    topic_of = {f"{r.topic_id}-{r.post.user_id}": r.topic_id for r in world.responses}
    for split, ids in cases.items():
        per_topic = pd.Series([topic_of[c] for c in ids]).value_counts()
        full = pd.Series([r.topic_id for r in world.responses if r.split == split]).value_counts()
        assert (per_topic <= 5).all() and set(per_topic.index) == set(full[full >= 3].index)
        assert (per_topic == full.loc[per_topic.index].clip(upper=5)).all()
    assert cases == evaluation_cases(tiny_data.dataset, ("test_user", "test_topic"), 5, 3)  # seeded


@pytest.mark.slow
def test_method_replies_answers_exactly_the_cases_and_resumes(tiny_data, tmp_path):
    import torch

    from socialalign_lib.experiments import MethodSpec, method_replies
    from socialalign_lib.generate.paths import replies_path
    from socialalign_lib.generate.sampling import GenerationConfig

    torch.set_num_threads(1)
    ids = {
        "test_topic": tiny_data.split("test_topic")["case_id"][:3],
        "test_user": tiny_data.split("test_user")["case_id"][:2],
    }
    spec = MethodSpec("base (zero-shot)", "base", variant="without_persona")
    gen = GenerationConfig(max_new_tokens=4, batch_size=8)
    _, replies = method_replies(
        spec, tiny_data.dataset, ids, data_name="tiny", gen=gen, run_dir=tmp_path, progress=False
    )
    assert replies["case_id"].tolist() == ids["test_topic"] + ids["test_user"]
    assert set(replies["variant"]) == {"without_persona"} and set(replies["method"]) == {"base (zero-shot)"}
    assert replies_path(tmp_path, "test_topic", "without_persona", 0).exists()
    _, again = method_replies(
        spec, tiny_data.dataset, ids, data_name="tiny", gen=gen, run_dir=tmp_path, progress=False
    )
    assert again["generated"].tolist() == replies["generated"].tolist()


def test_assign_splits_follows_the_world_rule(tiny_data):
    from socialalign_lib.experiments import assign_splits

    cases = [c for c in tiny_data.world.cases()]
    out = assign_splits(cases, seed=3)
    held_topics = {c.topic.topic_id for c in out if c.split in ("test_topic", "test_both")}
    held_users = {c.user.user_id for c in out if c.split in ("test_user", "test_both")}
    for c in out:
        t, u = c.topic.topic_id in held_topics, c.user.user_id in held_users
        assert c.split == (("test_both" if u else "test_topic") if t else ("test_user" if u else c.split))
        assert (t or u) or c.split in ("train", "validation")
    assert len(held_topics) == round(0.2 * len({c.topic.topic_id for c in cases}))
    assert [c.split for c in cases] == [c.split for c in tiny_data.world.cases()]  # input untouched


@pytest.mark.slow
def test_official_w_o_history_asks_the_full_model_without_the_history(tiny_data, tmp_path):
    """The official protocol's "w/o history" row: the model trained on full prompts, asked with the history cut out
    at inference (ours: a model trained on the without_history template)."""
    import torch

    from socialalign_lib.build.records.template import official_inference_ablation
    from socialalign_lib.experiments import OFFICIAL_TABLE_METHODS, TABLE_METHODS, method_replies
    from socialalign_lib.generate.decode import generate_replies
    from socialalign_lib.generate.paths import replies_path
    from socialalign_lib.generate.sampling import GenerationConfig

    torch.set_num_threads(1)
    official = {s.name: s for s in OFFICIAL_TABLE_METHODS}["PAC-LoRA w/o history"]
    ours = {s.name: s for s in TABLE_METHODS}["PAC-LoRA w/o history"]
    assert (official.variant, official.remove_at_inference) == (
        "full",
        "history",
    ) and ours.variant == "without_history"
    spec = replace(
        official, method="base"
    )  # the protocol, not the training, is under test: no adapter to train
    ids = {"test_topic": tiny_data.split("test_topic")["case_id"][:2]}
    gen = GenerationConfig.greedy(max_new_tokens=4, batch_size=8)
    run, replies = method_replies(
        spec, tiny_data.dataset, ids, data_name="tiny", gen=gen, run_dir=tmp_path, progress=False
    )
    assert set(replies["variant"]) == {"infer_without_history"}
    assert replies_path(tmp_path, "test_topic", "infer_without_history", 0).exists()
    full = tiny_data.split("test_topic").select(range(2)).to_list()
    asked = [official_inference_ablation(r, "history") for r in full]
    expected = generate_replies(run.model, run.tokenizer, asked, gen, progress=False)
    assert replies["generated"].tolist() == expected["generated"].tolist()


def test_old_crowd_paths_are_the_new_modules():
    """The flat modules are shims: ``crowds`` / ``baselines`` / ``comparisons`` are the crowd package's modules
    themselves, and ``macro`` / ``divergence`` hand out its objects, so no old path keeps a copy of its own."""
    from socialalign_lib import baselines, comparisons, crowds, divergence
    from socialalign_lib.crowd import baselines as new_baselines
    from socialalign_lib.crowd import comparisons as new_comparisons
    from socialalign_lib.crowd import distributions, divergences, plots, real

    assert crowds is real and baselines is new_baselines and comparisons is new_comparisons
    homes = {
        name: getattr(macro, name).__module__ for name in macro.__all__ if callable(getattr(macro, name))
    }
    assert set(homes.values()) <= {
        m.__name__ for m in (distributions, divergences, new_baselines, new_comparisons, plots)
    }, homes
    assert all(
        getattr(divergence, n) is getattr(divergences, n, getattr(distributions, n, None))
        for n in divergence.__all__
    )
