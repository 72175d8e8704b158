"""Micro-level metrics (socialalign_lib.metrics): every metric on a case small enough to compute by hand."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from socialalign_lib.metrics import (
    POPALM_KEYS,
    STYLE_FEATURES,
    accuracy,
    best_over_references,
    char_bleu4,
    char_tokens,
    corpus_bleu,
    distinct_n,
    jieba_tokens,
    length_ratio,
    lexical_similarity,
    macro_f1,
    mean_rouge_f1,
    persona_consistency,
    persona_consistency_parts,
    popalm_scores,
    rouge_f1,
    sentence_bleu,
    style_features,
    style_typicality,
)

APPROX = {"abs": 1e-6}  # rouge-chinese adds 1e-8 to the F1 denominator

# "今天天气很好" vs "今天天气不错", by hand (characters):
#   unigrams: hyp 今 天 天 气 很 好, ref 今 天 天 气 不 错 → clipped overlap 今 天 天 气 = 4 of 6
#   bigrams 3/5 (今天 天天 天气), trigrams 2/4 (今天天 天天气), 4-grams 1/3 (今天天气), equal lengths → BP = 1
HYP, REF = "今天天气很好", "今天天气不错"
BLEU_HYP_REF = (4 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25


# ----------------------------------------------------------------------------------------- sentiment
def test_accuracy_and_macro_f1_by_hand():
    y_true = ["negative", "negative", "negative", "positive"]
    y_pred = ["negative", "negative", "negative", "negative"]
    assert accuracy(y_true, y_pred) == pytest.approx(3 / 4)
    # negative: P = 3/4, R = 1 → F1 = 6/7; neutral (never seen) and positive (never predicted): 0
    assert macro_f1(y_true, y_pred) == pytest.approx((6 / 7 + 0 + 0) / 3)
    # a two-class label set changes the macro average, not the accuracy
    assert macro_f1(y_true, y_pred, labels=("negative", "positive")) == pytest.approx((6 / 7) / 2)


def test_sentiment_metrics_reject_unknown_labels_and_length_mismatch():
    with pytest.raises(ValueError, match="not in the label set"):
        accuracy(["negative"], ["angry"])
    with pytest.raises(ValueError, match="y_pred has 2"):
        macro_f1(["negative"], ["negative", "neutral"])


# ----------------------------------------------------------------------------------------- ROUGE
def test_tokens():
    assert char_tokens("好 的！\n") == ["好", "的", "！"]
    tokens = jieba_tokens("今天 天气 很好！")
    assert "".join(tokens) == "今天天气很好！"
    assert all(t.strip() for t in tokens)


def test_rouge_char_level_by_hand():
    r = rouge_f1(HYP, REF, tokenizer="char")
    # unique n-grams (rouge-chinese's default): {今 天 气 很 好} ∩ {今 天 气 不 错} = 3 of 5 each side
    assert r["rouge-1"] == pytest.approx(3 / 5, **APPROX)
    assert r["rouge-2"] == pytest.approx(3 / 5, **APPROX)  # {今天 天天 天气} of 5 distinct bigrams
    assert r["rouge-l"] == pytest.approx(4 / 6, **APPROX)  # LCS 今天天气 = 4 of 6
    multiset = rouge_f1(HYP, REF, tokenizer="char", unique_ngrams=False)
    assert multiset["rouge-1"] == pytest.approx(4 / 6, **APPROX)  # 天 counted twice


def test_rouge_jieba_level_by_hand():
    assert jieba_tokens(HYP) == ["今天天气", "很", "好"]
    assert jieba_tokens(REF) == ["今天天气", "不错"]
    r = rouge_f1(HYP, REF, tokenizer="jieba")
    p, rec = 1 / 3, 1 / 2  # one shared token of 3 and of 2
    assert r["rouge-1"] == pytest.approx(2 * p * rec / (p + rec), **APPROX)
    assert r["rouge-2"] == pytest.approx(0.0, **APPROX)
    assert r["rouge-l"] == pytest.approx(2 * p * rec / (p + rec), **APPROX)


def test_rouge_keeps_chinese_and_handles_empty():
    assert rouge_f1("支持国产芯片", "支持国产芯片", "char")["rouge-1"] == pytest.approx(1.0, **APPROX)
    assert rouge_f1("", REF) == {"rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0}
    assert rouge_f1("  ", REF, "char")["rouge-l"] == 0.0
    mean = mean_rouge_f1([HYP, REF], [REF, REF], "char")
    assert mean["rouge-1"] == pytest.approx((3 / 5 + 1) / 2, **APPROX)


# ----------------------------------------------------------------------------------------- BLEU
def test_sacrebleu_zh_by_hand():
    assert corpus_bleu([HYP], [REF]) == pytest.approx(BLEU_HYP_REF, abs=1e-9)
    assert sentence_bleu(HYP, REF) == pytest.approx(BLEU_HYP_REF, abs=1e-9)
    assert corpus_bleu([HYP, REF], [REF, [REF, "明天下雨"]]) > BLEU_HYP_REF  # variable number of references
    assert corpus_bleu([REF], [[REF]]) == pytest.approx(1.0)


def test_char_bleu4_by_hand():
    assert char_bleu4(HYP, REF) == pytest.approx(BLEU_HYP_REF)
    # "天气好" vs REF: p1 = 2/3, p2 = 1/2, p3 = 0/1 → 1/(2·1), p4 = 0/max(1, 0) → 1/(4·1); BP = exp(1 − 6/3)
    assert char_bleu4("天气好", REF) == pytest.approx(math.exp(-1) * (2 / 3 * 1 / 2 * 1 / 2 * 1 / 4) ** 0.25)
    assert char_bleu4("", REF) == 0.0
    assert char_bleu4("哦", REF) == 0.0  # no unigram match
    # several references: counts clipped by the max over references, closest reference length for BP
    assert char_bleu4(HYP, [REF, HYP]) == pytest.approx(1.0)


def test_char_bleu4_matches_nltk_method3():
    bleu = pytest.importorskip("nltk.translate.bleu_score")
    rng = random.Random(0)
    alphabet = "好的不是我们今天天气真！？"
    smooth = bleu.SmoothingFunction().method3
    for _ in range(300):
        hyp = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        refs = [
            "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(rng.randint(1, 3))
        ]
        expected = bleu.sentence_bleu([list(r) for r in refs], list(hyp), smoothing_function=smooth)
        assert char_bleu4(hyp, refs) == pytest.approx(expected, abs=1e-12)


# ----------------------------------------------------------------------------------------- diversity, length
def test_distinct_n_by_hand():
    texts = ["哈哈哈", "哈 哈好"]
    assert distinct_n(texts, 1) == pytest.approx(2 / 6)  # {哈, 好} of 6 characters
    assert distinct_n(texts, 2) == pytest.approx(2 / 4)  # 哈哈 哈哈 | 哈哈 哈好
    assert distinct_n(texts, 3) == pytest.approx(2 / 2)  # n-grams do not cross texts
    assert distinct_n(["好"], 2) == 0.0
    assert distinct_n("好的", 1) == 1.0


def test_length_ratio_by_hand():
    assert length_ratio(["今天好", "哈哈"], ["今天天气很好", "哈 哈"]) == pytest.approx(5 / 8)
    assert length_ratio("好", "好好") == pytest.approx(0.5)
    with pytest.raises(ValueError):
        length_ratio("好", " ")


# ----------------------------------------------------------------------------------------- persona consistency
HISTORY = ["哈哈哈哈", "好的好的"]


def test_style_features_by_hand():
    f = style_features(["好！！[doge]", "abc 12"])
    assert f.shape == (2, len(STYLE_FEATURES))
    row = dict(zip(STYLE_FEATURES, f[0]))
    assert row["log_length"] == pytest.approx(math.log1p(9))
    assert row["emoji"] == pytest.approx(1 / 9)
    assert row["exclaim"] == pytest.approx(2 / 9)
    assert row["latin"] == 0.0  # the letters of [doge] belong to the emoji
    row = dict(zip(STYLE_FEATURES, f[1]))
    assert (row["latin"], row["digit"]) == (pytest.approx(3 / 5), pytest.approx(2 / 5))


def test_persona_consistency_by_hand():
    # Same style as every history post (4 characters, no punctuation), no shared n-gram → style 1, lexical 0.
    parts = persona_consistency_parts("今天不错", HISTORY)
    assert parts["style"] == pytest.approx(1.0)
    assert parts["lexical"] == 0.0
    assert parts["score"] == pytest.approx(0.5)
    # A copy of history post 2: its TF-IDF vector is orthogonal to post 1's and every term has the same idf,
    # so cos(d2, (d1 + d2)/2) = (1/2) / |(d1 + d2)/2| = 1/√2.
    assert lexical_similarity("好的好的", HISTORY) == pytest.approx(1 / math.sqrt(2))
    assert persona_consistency("好的好的", HISTORY) == pytest.approx(0.5 + 0.5 / math.sqrt(2))
    # "好！": log length z = (ln 3 − ln 5)/0.35 (σ floored); "！" rate 1/2 with μ = 0, σ = 0.02 → typicality ≈ 0.
    typ = style_typicality("好！", HISTORY)
    z = (math.log(3) - math.log(5)) / 0.35
    assert typ[0] == pytest.approx(math.exp(-z * z / 2))
    assert typ.mean() == pytest.approx((math.exp(-z * z / 2) + 0.0 + 8 * 1.0) / 10)


def test_persona_consistency_prefers_the_users_own_style():
    history = ["哈哈哈笑死我了~~", "今天也要开心鸭~[哈哈]", "好想吃火锅啊~", "周末去哪儿玩呢~[doge]"]
    own = persona_consistency("这个新闻笑死我了~[哈哈]", history)
    other = persona_consistency("该事件反映出监管体系存在的结构性问题。应当依法严肃处理。", history)
    assert 0.0 <= other < own <= 1.0
    with pytest.raises(ValueError, match="style_weight"):
        persona_consistency("好", history, style_weight=2.0)
    with pytest.raises(ValueError, match="history"):
        style_typicality("好", [])


# ----------------------------------------------------------------------------------------- PopALM protocol
GOLD = ["今天天气不错", "明天下雨", ""]
GENERATED = ["今天天气很好", "下雨", "明天下雨"]
# character ROUGE-1 F per (generation, reference), by hand:
#   g0: vs 今天天气不错 3/5 → 0.6; vs 明天下雨 {天}: P 1/5, R 1/4 → 2/9
#   g1 "下雨": vs 明天下雨 P 1, R 1/2 → 2/3 (best so far after 2 generations)
#   g2: identical to 明天下雨 → 1
BLEU_G1 = math.exp(1 - 4 / 2) * (1 * 1 * 1 / 2 * 1 / 4) ** 0.25  # "下雨" vs "明天下雨", method 3


def test_best_over_references_by_hand():
    best = best_over_references(GENERATED, GOLD, top_k=(1, 2, 3), tokenizer="char")
    assert [best[k]["rouge-1"] for k in (1, 2, 3)] == pytest.approx([0.6, 2 / 3, 1.0], **APPROX)
    # BLEU is the BLEU of the pair ROUGE-1 selected, not the best BLEU
    assert [best[k]["bleu-4"] for k in (1, 2, 3)] == pytest.approx([BLEU_HYP_REF, BLEU_G1, 1.0])
    running = best_over_references(GENERATED, GOLD, top_k=(1, 2, 3), tokenizer="char", mode="running_mean")
    assert running[1] == best[1]
    assert running[3]["rouge-1"] == pytest.approx((0.6 + 2 / 3 + 1.0) / 3, **APPROX)
    per_metric = best_over_references(GENERATED, GOLD, top_k=(2,), tokenizer="char", select_by=None)
    assert per_metric[2]["bleu-4"] == pytest.approx(max(BLEU_HYP_REF, BLEU_G1))
    assert set(best[1]) == set(POPALM_KEYS)


def test_best_over_references_errors():
    with pytest.raises(ValueError, match="needs 5 generations"):
        best_over_references(GENERATED, GOLD)
    with pytest.raises(ValueError, match="empty"):
        best_over_references(GENERATED, ["", " "], top_k=(1,))


def test_popalm_scores_table():
    table = popalm_scores([GENERATED, GENERATED[::-1]], [GOLD, GOLD], top_k=(1, 3), tokenizer="char")
    assert list(table.index) == [1, 3]
    assert list(table.columns) == [*POPALM_KEYS, "distinct-1", "distinct-2"]
    # post 2's first generation is the exact gold reply
    assert table.loc[1, "rouge-1"] == pytest.approx((0.6 + 1.0) / 2, **APPROX)
    assert table.loc[3, "rouge-1"] == pytest.approx(1.0, **APPROX)
    assert table.loc[1, "distinct-1"] == pytest.approx(distinct_n([GENERATED[0], GENERATED[2]], 1))
    assert np.all((table.to_numpy() >= 0) & (table.to_numpy() <= 1 + 1e-9))
