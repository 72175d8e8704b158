"""Relevant-history retrieval (socialalign_lib.retrieval): BM25 as upstream, deterministic, k respected."""

from __future__ import annotations

import logging
import random
from collections import Counter

import numpy as np
import pytest

from socialalign_lib.build.retrieval import (
    ZH_STOPWORDS,
    HistoryIndex,
    RetrievalConfig,
    document_text,
    retrieve_history,
    retrieve_many,
    tokenize,
)
from socialalign_lib.data.schema import Post

# The news text of upstream's own example (utils/retrieve_relevant_doc.py __main__).
NEWS = (
    "#山姆10天翻车3次# 自9月以来，山姆超市10天已翻车3次，屡现食品安全风波。9月1日，南京的顾客在山姆购买的"
    "“血橙奇亚籽果汁茶饮料”中发现异物。9月3日，深圳顾客买到的牛奶盒内出现虫卵，9月5日，常州的消费者在鲜肉月饼中发现牙齿。"
)


def _post(pid: str, text: str, day: int, retweet: Post | None = None) -> Post:
    return Post(pid, "u1", text, f"2024-10-{day:02d}T08:00:00", retweet=retweet)


HISTORY = [
    _post("a", "今天去山姆超市买了一大堆零食，会员卡真香", 3),
    _post("b", "周末和朋友去爬山，风景很好", 9),
    _post("c", "食品安全问题真的不能忽视，希望监管部门严查", 5),
    _post("d", "新买的耳机音质不错", 12),
    _post("e", "转给大家看看", 7, retweet=_post("e0", "深圳顾客买到的牛奶盒内出现虫卵", 6)),
    _post("f", "下雨天在家追剧", 1),
    _post("g", "晚饭吃了火锅，辣得过瘾", 11),
]


def upstream_bm25_scores(docs: list[str], query: str, k1: float = 1.5, b: float = 0.75) -> list[float]:
    """Upstream's hand-rolled BM25 (SocialAlign @ 9766c3c, utils/retrieve_relevant_doc.py, MIT), condensed."""
    import jieba

    tokenized = [list(jieba.cut(d)) for d in docs]
    avgdl = np.mean([len(d) for d in tokenized])
    word_freq, doc_freq = Counter(), Counter()
    for d in tokenized:
        word_freq.update(d)
        doc_freq.update(set(d))
    n = len(docs)
    out = []
    for doc in tokenized:
        score, tf_doc = 0.0, Counter(doc)
        for word in jieba.cut(query):
            if word not in word_freq:
                continue
            idf = np.log((n - doc_freq[word] + 0.5) / (doc_freq[word] + 0.5) + 1)
            tf = tf_doc[word]
            score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(doc) / avgdl))
        out.append(score)
    return out


def test_post_sharing_words_with_the_news_ranks_first():
    top = retrieve_history(HISTORY, NEWS)
    assert [p.post_id for p, _ in top[:2]] == ["e", "a"]  # the repost quoting the news, then 山姆超市
    scores = [s for _, s in top]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[1] > 0
    # upstream has no stopwords: "新买的耳机" scores on "的" alone; with ZH_STOPWORDS it does not
    assert dict((p.post_id, s) for p, s in top)["d"] > 0
    clean = retrieve_history(HISTORY, NEWS, RetrievalConfig(stopwords=ZH_STOPWORDS))
    assert [p.post_id for p, _ in clean[:3]] == ["e", "a", "c"] and dict((p.post_id, s) for p, s in clean)[
        "d"
    ] == 0


def test_k_respected_and_short_history():
    assert len(retrieve_history(HISTORY, NEWS)) == 5
    assert len(retrieve_history(HISTORY, NEWS, RetrievalConfig(k=2))) == 2
    assert len(retrieve_history(HISTORY[:3], NEWS)) == 3
    assert retrieve_history([], NEWS) == []
    assert retrieve_history(HISTORY, NEWS, RetrievalConfig(k=0)) == []


def test_deterministic_and_order_independent():
    first = [(p.post_id, s) for p, s in retrieve_history(HISTORY, NEWS)]
    shuffled = HISTORY[:]
    random.Random(0).shuffle(shuffled)
    assert [(p.post_id, s) for p, s in retrieve_history(shuffled, NEWS)] == first
    assert [(p.post_id, s) for p, s in retrieve_history(HISTORY, NEWS)] == first


def test_ties_broken_by_recency_then_post_id():
    twins = [
        _post("z", "山姆超市", 2),
        _post("y", "山姆超市", 8),
        _post("x", "山姆超市", 8),
        _post("w", "无关", 9),
    ]
    assert [p.post_id for p, _ in retrieve_history(twins, NEWS)] == ["x", "y", "z", "w"]
    # no shared word at all: the most recent posts, all scored 0
    none = retrieve_history(HISTORY, "量子计算机", RetrievalConfig(k=3))
    assert [p.post_id for p, _ in none] == ["d", "g", "b"] and all(s == 0.0 for _, s in none)
    assert [p.post_id for p, _ in retrieve_history(HISTORY, "", RetrievalConfig(k=2))] == ["d", "g"]


def test_recent_method():
    got = retrieve_history(HISTORY, NEWS, RetrievalConfig(k=3, method="recent"))
    assert [p.post_id for p, _ in got] == ["d", "g", "b"]
    assert all(s == 0.0 for _, s in got)


def test_scores_equal_bm25s_and_upstream_formula():
    import bm25s

    cfg = RetrievalConfig(k=len(HISTORY), token_filter="none")  # upstream keeps every jieba token
    docs = [document_text(p, cfg) for p in HISTORY]
    assert docs[4] == "转给大家看看 深圳顾客买到的牛奶盒内出现虫卵"  # text + ' ' + retweet.text
    ours = HistoryIndex(HISTORY, cfg).scores(NEWS)

    ref = bm25s.BM25(k1=1.5, b=0.75, method="lucene", dtype="float64")
    ref.index([tokenize(d, cfg) for d in docs], show_progress=False)
    np.testing.assert_allclose(ours, ref.get_scores(tokenize(NEWS, cfg)) * 2.5, rtol=1e-12)
    np.testing.assert_allclose(ours, upstream_bm25_scores(docs, NEWS), rtol=1e-9)


def test_hand_example():
    """Three tiny documents, computed by hand: N=3, avgdl=2, idf(c)=ln(1+2.5/1.5), tf(c, doc1)=2, |doc1|=3."""
    cfg = RetrievalConfig(tokenizer="char_ngram", ngram=(1,))
    posts = [_post("0", "ab", 1), _post("1", "bcc", 2), _post("2", "d", 3)]
    got = dict((p.post_id, s) for p, s in retrieve_history(posts, "c", cfg))
    expected = np.log(1 + 2.5 / 1.5) * 2 * 2.5 / (2 + 1.5 * (1 - 0.75 + 0.75 * 3 / 2))
    assert got["1"] == pytest.approx(expected, rel=1e-12)
    assert got["0"] == got["2"] == 0.0


def test_options():
    full = RetrievalConfig(document="full_text")
    assert document_text(HISTORY[4], full) == HISTORY[4].full_text
    assert "，" not in tokenize("山姆超市，翻车")  # punctuation dropped by default
    assert "，" in tokenize("山姆超市，翻车", RetrievalConfig(token_filter="none"))
    assert tokenize("山姆 超市", RetrievalConfig(tokenizer="char_ngram")) == [
        "山",
        "姆",
        "山姆",
        "超",
        "市",
        "超市",
    ]
    top = retrieve_history(HISTORY, NEWS, RetrievalConfig(tokenizer="char_ngram", k=3))
    assert {p.post_id for p, _ in top} == {"a", "c", "e"}
    with pytest.raises(ValueError, match="method"):
        RetrievalConfig(method="dense")  # type: ignore[arg-type]


def test_jieba_is_quiet():
    tokenize("初始化一下结巴分词")
    assert logging.getLogger("jieba").getEffectiveLevel() >= logging.WARNING


def test_retrieve_many_matches_single_and_reuses_indexes(monkeypatch):
    other = [_post("o1", "山姆超市的牛奶", 1), _post("o2", "天气真好", 2)]
    histories = {"u1": HISTORY, "u2": other}
    queries = [("u1", NEWS), ("u2", NEWS), ("u1", "爬山 风景"), ("u2", "天气")]
    built = []
    original = HistoryIndex.__init__

    def counting_init(self, history, cfg=None):
        built.append(len(history))
        original(self, history, cfg)

    monkeypatch.setattr(HistoryIndex, "__init__", counting_init)
    got = retrieve_many(histories, queries, RetrievalConfig(k=2))
    assert len(built) == 2  # one index per user, not per query
    for (uid, query), result in zip(queries, got):
        assert result == retrieve_history(histories[uid], query, RetrievalConfig(k=2))
    assert got[2][0][0].post_id == "b"


def test_exclude_ids_in_index_top():
    index = HistoryIndex(HISTORY)
    assert "e" not in {p.post_id for p, _ in index.top(NEWS, exclude_ids=["e"])}
