"""MultiSmpLLM data side: sampling, the 1/2/3-shot prompt builder (train vs test form), parsing with failure
accounting, metrics, and the two baselines."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socialalign_lib.popularity.smp_baselines import BoostingBaseline, user_mean_predictions
from socialalign_lib.popularity.smp_llm import (
    INSTRUCTION,
    TPIC_FIELDS,
    PromptConfig,
    SampleConfig,
    SmpDataError,
    bootstrap_ci,
    build_examples,
    format_score,
    parse_score,
    parse_scores,
    posts_frame,
    score_predictions,
    select_users,
    split_users,
    tpic_variant,
)


def _user_posts(uid: str, n: int, base: float, start: int = 1_700_000_000) -> list[dict]:
    cats = ["动物", "美食", "旅行"]
    return [
        {
            "uid": uid,
            "pid": f"{uid[:3]}{j:02d}",
            "title": f"标题{j}",
            "category": cats[j % 3],
            "subcategory": "宠物",
            "concept": "猫",
            "tags": ["猫", "宠物", "可爱", "日常", "周末", "多余"],
            "image_caption": "一只猫",
            "postdate": start + 86400 * j,
            "popularity": base + 0.1 * j,
            "user_avgview": base,
        }
        for j in range(n)
    ]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    posts = _user_posts("u1@N01", 7, 5.0) + _user_posts("u2@N02", 5, 8.0) + _user_posts("u3@N03", 4, 3.0)
    rng = np.random.default_rng(0)
    return posts_frame([posts[i] for i in rng.permutation(len(posts))])  # order must not matter


def test_select_users_keeps_latest_five_of_users_with_enough_posts(frame):
    sel = select_users(frame, SampleConfig(min_posts=5, keep_last=5))
    assert sorted(sel["uid"].unique()) == ["u1@N01", "u2@N02"]  # u3 has 4 posts
    u1 = sel[sel["uid"] == "u1@N01"]
    assert len(u1) == 5 and u1["pid"].tolist() == [
        f"u1@{j:02d}" for j in range(2, 7)
    ]  # the latest five, in order
    assert select_users(frame, SampleConfig(n_users=1, seed=3))["uid"].nunique() == 1
    with pytest.raises(SmpDataError):
        select_users(frame, SampleConfig(min_posts=50, keep_last=5))


def test_split_users_is_disjoint():
    posts = [p for i in range(10) for p in _user_posts(f"u{i:02d}@N", 5, 5.0)]
    main, align = split_users(select_users(posts_frame(posts)), align_fraction=0.5, seed=1)
    assert set(main["uid"]).isdisjoint(align["uid"]) and main["uid"].nunique() == align["uid"].nunique() == 5


@pytest.mark.parametrize("question", ["penultimate", "next"])
def test_prompt_builder_shapes_train_vs_test(frame, question):
    sel = select_users(frame)
    cfg = PromptConfig(question=question)
    train = build_examples(sel, (1, 2, 3), "train", cfg)
    test = build_examples(sel, (1, 2, 3), "test", cfg)
    assert len(train) == len(test) == 2 * 3  # users × shots
    for tr, te in zip(train, test):
        rows = sel[sel["uid"] == tr.uid]
        idx = rows.index.tolist()  # time order
        k = tr.shots
        assert tr.history_index == idx[:k] and len(tr.history_scores) == k
        q_train = idx[-2] if question == "penultimate" else idx[k]
        assert tr.question_index == q_train  # train: question = post n-1 (or k+1), answer its score
        assert te.history_index == idx[:k] + [q_train]  # test: that post joins the history ...
        assert te.question_index == idx[-1]  # ... and the question is the latest post
        assert tr.target == pytest.approx(sel.loc[q_train, "popularity"])
        assert te.answer == format_score(sel.loc[idx[-1], "popularity"])
        # the prompt shows every history score and never the answer's post score
        for i in te.history_index:
            assert f"的流行度得分是{format_score(sel.loc[i, 'popularity'])}。" in te.prompt
        assert te.prompt.count("的流行度得分是") == k + 1
        assert te.prompt.endswith("请给出这条新帖子的流行度得分。")
        assert te.messages()[0]["content"].startswith(INSTRUCTION["zh"])


def test_too_few_posts_for_the_shot_count_is_an_error(frame):
    sel = select_users(frame)
    with pytest.raises(SmpDataError, match="4-shot"):
        build_examples(sel, (4,), "train")


def test_prompt_layouts_ids_and_language(frame):
    sel = select_users(frame)
    grouped = build_examples(sel, (2,), "train", PromptConfig())[0].prompt
    inter = build_examples(sel, (2,), "train", PromptConfig(layout="interleaved"))[0].prompt
    # grouped: both posts' information, then both scores (Table 8); interleaved: post, score, post, score
    assert grouped.index("的流行度得分是") > grouped.rindex("。帖子中的照片显示")
    assert inter.index("的流行度得分是") < inter.rindex("。帖子中的照片显示")
    idx = build_examples(sel, (2,), "train", PromptConfig(post_ids="index", include_uid=False))[0].prompt
    assert "帖子1的流行度得分是" in idx and "目标新帖子，" in idx and "u1@N01" not in idx
    assert "标签是猫、宠物、可爱、日常、周末。" in grouped and "多余" not in grouped  # max_tags=5
    en = build_examples(sel, (1,), "test", PromptConfig(language="en"))[0]
    assert en.messages()[0]["content"].startswith(
        "Input a user's historical posts on social media along with the popularity of these posts, "
        "and provide the popularity score for this new post based on this information. Output a number."
    )
    assert "The target user ID is u1@N01." in en.prompt and en.prompt.endswith(
        "Provide the popularity score for this new post."
    )


def test_tpic_variant_renders_other_fields(frame):
    sel = select_users(frame)
    tv = tpic_variant(sel)
    ex = build_examples(tv, (1,), "test", PromptConfig(fields=TPIC_FIELDS))[0]
    assert "标题长度是3" in ex.prompt and "标签数量是6" in ex.prompt and "发布日期是" in ex.prompt
    assert "类别" not in ex.prompt and "概念" not in ex.prompt
    # a loader-style TPIC frame (no title, tags or caption columns at all) works too
    bare = sel[["uid", "pid", "postdate", "popularity"]].assign(titlelen=12.0, tagcount=3.0)
    ex = build_examples(posts_frame(bare), (1,), "test", PromptConfig(fields=TPIC_FIELDS))[0]
    assert "标题长度是12，标签数量是3" in ex.prompt and "照片" not in ex.prompt


def test_posts_frame_requires_labels_and_ids():
    with pytest.raises(SmpDataError, match="popularity"):
        posts_frame(pd.DataFrame({"uid": ["a"], "pid": ["1"], "postdate": [1]}))


@pytest.mark.parametrize(
    "text,value",
    [
        ("7.5", 7.5),
        (" 7.5\n", 7.5),
        ("7.5分", 7.5),
        ("得分：7.5", 7.5),
        ("７．５", 7.5),
        ("-1.2", -1.2),
        ("8", 8.0),
        (".5", 0.5),
        ("", None),
        ("高", None),
        ("nan", None),
        ("inf", None),
        (None, None),
    ],
)
def test_parse_score(text, value):
    assert parse_score(text) == value


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=-50, max_value=50, allow_nan=False), st.integers(min_value=0, max_value=3))
def test_formatted_scores_parse_back(x, decimals):
    assert parse_score(format_score(x, decimals)) == pytest.approx(round(x, decimals), abs=10**-decimals)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Nd", "No")), max_size=30))
def test_text_without_digits_is_a_failure(text):
    assert parse_score(text) is None


def test_failures_are_counted_not_imputed():
    y = [5.0, 6.0, 7.0, 8.0]
    s = score_predictions(y, ["5.5", "不知道", "7.5", ""])
    assert (s.n, s.n_parsed, s.n_failed, s.failure_rate) == (4, 2, 2, 0.5)
    assert s.mae == pytest.approx(0.5)  # on the two parsed answers only
    assert np.isnan(parse_scores(["x", "1"])).tolist() == [True, False]
    dash = score_predictions(y, ["", "", "", "无"])  # the paper's "—"
    assert math.isnan(dash.mae) and math.isnan(dash.src) and dash.failure_rate == 1.0
    const = score_predictions(y, ["6.0"] * 4)  # the paper's NaN SRC
    assert const.constant and math.isnan(const.src) and const.mae == pytest.approx(1.0)


def test_src_is_spearman_on_ranks():
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    s = score_predictions(y, np.exp(y))  # monotone, non-linear: Spearman 1, Pearson < 1
    assert s.src == pytest.approx(1.0)


def test_bootstrap_ci_brackets_the_estimate():
    rng = np.random.default_rng(0)
    y = rng.normal(6, 1.5, 80)
    p = y + rng.normal(0, 1, 80)
    p[:5] = np.nan
    ci = bootstrap_ci(y, p, n_boot=300)
    point = score_predictions(y, p)
    assert ci["MAE"][0] < point.mae < ci["MAE"][1] and ci["SRC"][0] < point.src < ci["SRC"][1]
    grouped = bootstrap_ci(np.r_[y, y], np.r_[p, p], groups=np.r_[np.arange(80), np.arange(80)], n_boot=300)
    assert grouped["MAE"][0] < point.mae < grouped["MAE"][1]


def test_baselines_on_the_world():
    from socialalign_lib.world import generate_world

    w = generate_world(size="tiny", seed=0)
    main, _ = split_users(select_users(posts_frame(w.smp_posts)))
    train, test = build_examples(main, form="train"), build_examples(main, form="test")
    mean = user_mean_predictions(test)
    assert mean[0] == pytest.approx(np.mean(test[0].history_scores))
    gb = BoostingBaseline().fit(main, train)
    pred = gb.predict(main, test)
    assert np.isfinite(pred).all() and score_predictions([e.target for e in test], pred).src > 0.2
    tv = tpic_variant(main)  # cross-dataset: fields missing, still predicts
    assert np.isfinite(gb.predict(tv, build_examples(tv, form="test"))).all()


def test_extra_world_users_are_new_users():
    from socialalign_lib.popularity.smp_llm import extra_world_users
    from socialalign_lib.world import generate_world

    w = generate_world(size="tiny", seed=0)
    extra = extra_world_users(w, 5)
    assert len({p["uid"] for p in extra}) == 5
    assert {p["uid"] for p in extra}.isdisjoint({p["uid"] for p in w.smp_posts})


def test_history_slope_tells_a_reader_from_a_constant(frame):
    from socialalign_lib.popularity.smp_llm_eval import history_slope

    cfg = PromptConfig(post_ids="index")
    sel = select_users(frame)
    reader = history_slope(lambda ex: user_mean_predictions(ex), sel, cfg, shots=(1, 2))
    constant = history_slope(lambda ex: np.full(len(ex), 7.0), sel, cfg, shots=(1, 2))
    assert reader["slope"] == pytest.approx(1.0) and reader["parsed"] == 1.0
    assert constant["slope"] == 0.0
    half = history_slope(lambda ex: [np.nan if i % 2 else 7.0 for i in range(len(ex))], sel, cfg, shots=(1,))
    assert half["parsed"] == pytest.approx(0.5, abs=0.2)


def test_committed_learning_curves_match_their_config_and_data():
    """The SFT learning curves notebook 08 plots were measured with the current configurations on the current
    world (rebuild: python -m socialalign_lib.popularity.smp_llm_limits)."""
    from socialalign_lib.popularity import smp_llm_limits as lim
    from socialalign_lib.world import generate_world

    df = lim.load_committed()
    assert set(df["curve"]) == {c.name for c in lim.CURVES}
    world = generate_world(size=str(df["size"].iloc[0]), seed=int(df["seed"].iloc[0]))
    assert lim.check_committed(world) == []
