"""Relevant-history retrieval as SocialAlign does it: BM25 over one user's history, query = the news text.

Upstream (``utils/retrieve_relevant_doc.py``, docs/methods.md#history-retrieval) hand-rolls BM25 with jieba
tokens, k1=1.5,
b=0.75, idf = ln((N − df + 0.5)/(df + 0.5) + 1), one index per user, and keeps the top 5 posts. We use
``bm25s`` (its "lucene" variant has exactly that idf) and multiply by (k1 + 1), the factor Lucene dropped
from the numerator, so our scores *equal* upstream's, not just rank like them.

Choices, each a :class:`RetrievalConfig` field:

* ``document="concat"``: a repost is indexed as ``text + " " + retweet.text``, as upstream does.
  ``"full_text"`` indexes ``Post.full_text`` ("该用户转发了微博: X, 并评论说: Y"); its template words then
  match any news that says 微博/转发/评论 and favour reposts, which is why it is not the default.
* ``token_filter="punct"``: whitespace- and punctuation-only tokens are dropped. Upstream keeps them (use
  ``"none"``), so "，" in both news and post counts as a shared term and long posts gain a little.
* ``tokenizer="char_ngram"``: character uni+bigrams, for text jieba's dictionary does not know.
* ``stopwords``: tokens never indexed nor queried. Upstream uses none, so a news text with six "的" gives
  every post containing "的" six matches; :data:`ZH_STOPWORDS` is a small list of such function words.
* ``method="recent"``: the most recent k posts, score 0.0 — a baseline for ablations, not the paper.

Ties (e.g. a news text sharing no word with any post) are broken by recency, then post_id, so the result
is deterministic and a zero-overlap query degrades to "most recent posts".
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

from socialalign_lib.data.schema import Post

__all__ = [
    "RetrievalConfig",
    "HistoryIndex",
    "retrieve_history",
    "retrieve_many",
    "tokenize",
    "document_text",
    "ZH_STOPWORDS",
]

_ZH_STOPWORDS = (
    "的 了 是 在 和 与 及 或 就 都 而 也 还 又 很 太 更 最 被 把 让 给 对 从 向 于 以 之 其 这 那 这个 那个 这些 那些 "
    "我 你 他 她 它 我们 你们 他们 她们 自己 一个 一 有 没有 不 没 个 着 过 吗 呢 吧 啊 呀 哦 啦 嘛 么 "
    "但 但是 因为 所以 如果 虽然 已 已经 将 会 能 要 可以 就是 还是 等 等等"
)
ZH_STOPWORDS: tuple[str, ...] = tuple(_ZH_STOPWORDS.split())
"""Common Chinese function words; opt-in via ``RetrievalConfig(stopwords=ZH_STOPWORDS)``."""


@dataclass(frozen=True)
class RetrievalConfig:
    """How history posts are chosen. Defaults = the paper: BM25, jieba, k1=1.5, b=0.75, top 5."""

    k: int = 5  # history posts retrieved per case
    method: Literal["bm25", "recent"] = "bm25"  # BM25 against the news, or simply the k most recent posts
    tokenizer: Literal["jieba", "char_ngram"] = "jieba"  # how posts and news are split into terms
    k1: float = 1.5  # BM25 term-frequency saturation
    b: float = 0.75  # BM25 length normalisation
    document: Literal["concat", "full_text"] = (
        "concat"  # a repost's document: comment + original, or full_text
    )
    token_filter: Literal["punct", "none"] = "punct"  # drop punctuation-only terms, or keep all
    ngram: tuple[int, ...] = (1, 2)  # char_ngram only
    stopwords: tuple[str, ...] = ()  # e.g. ZH_STOPWORDS; upstream: none

    def __post_init__(self) -> None:
        choices = {
            "method": ("bm25", "recent"),
            "tokenizer": ("jieba", "char_ngram"),
            "document": ("concat", "full_text"),
            "token_filter": ("punct", "none"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"RetrievalConfig.{name}={getattr(self, name)!r}; choose from {allowed}")
        if self.k < 0:
            raise ValueError(f"RetrievalConfig.k={self.k}; must be ≥ 0")
        if not self.ngram or min(self.ngram) < 1:
            raise ValueError(f"RetrievalConfig.ngram={self.ngram}; need sizes ≥ 1")


# ----------------------------------------------------------------------------------------------- tokens


@lru_cache(maxsize=1)
def _jieba():
    """jieba, imported and initialised on first use, with its chatty INFO logging turned off."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def _is_junk(token: str) -> bool:
    """Whitespace- or punctuation/symbol-only token ("，", " ", "[", "//")."""
    return all(ch.isspace() or unicodedata.category(ch)[0] in "PSZ" for ch in token)


def _char_ngrams(text: str, sizes: Sequence[int]) -> list[str]:
    runs, run = [], []
    for ch in text:
        if _is_junk(ch):
            if run:
                runs.append("".join(run))
            run = []
        else:
            run.append(ch.lower())
    if run:
        runs.append("".join(run))
    return [r[i : i + n] for r in runs for n in sizes for i in range(len(r) - n + 1)]


@lru_cache(maxsize=200_000)
def _raw_tokens(text: str, tokenizer: str, token_filter: str, ngram: tuple[int, ...]) -> tuple[str, ...]:
    if tokenizer == "char_ngram":
        return tuple(_char_ngrams(text, ngram))
    toks = _jieba().lcut(text)
    if token_filter == "punct":
        return tuple(t for t in toks if t and not _is_junk(t))
    return tuple(t for t in toks if t)


def _tokens(text: str, cfg: RetrievalConfig) -> list[str]:
    toks = _raw_tokens(text or "", cfg.tokenizer, cfg.token_filter, cfg.ngram)
    if cfg.stopwords:
        stop = set(cfg.stopwords)
        return [t for t in toks if t not in stop]
    return list(toks)


def tokenize(text: str, cfg: RetrievalConfig | None = None) -> list[str]:
    """Tokens of ``text`` as retrieval sees them (cached: the same post is tokenised once per process)."""
    return _tokens(text, cfg or RetrievalConfig())


def document_text(post: Post, cfg: RetrievalConfig | None = None) -> str:
    """The text a history post is indexed under: upstream's ``text + " " + retweet.text`` or ``full_text``."""
    cfg = cfg or RetrievalConfig()
    if cfg.document == "full_text" or post.retweet is None:
        return post.full_text
    return f"{post.text} {post.retweet.text}"


# ------------------------------------------------------------------------------------------------ index


class HistoryIndex:
    """A BM25 index over one user's history. Build once, query for every news item the user answered.

    ``scores(query)`` → ``[n_posts]`` float64 (upstream's scale); ``top(query)`` → ``[(post, score)]``.
    """

    def __init__(self, history: Sequence[Post], cfg: RetrievalConfig | None = None) -> None:
        self.cfg = cfg or RetrievalConfig()
        self.posts = list(history)
        # recency rank: equal created_at share a rank; later = larger
        stamps = sorted({p.created_at or "" for p in self.posts})
        rank = {s: i for i, s in enumerate(stamps)}
        self._recency = [rank[p.created_at or ""] for p in self.posts]
        self._bm25 = None
        if self.cfg.method == "bm25":
            docs = [_tokens(document_text(p, self.cfg), self.cfg) for p in self.posts]
            if any(docs):  # bm25s cannot index a corpus with no tokens at all
                import bm25s

                self._bm25 = bm25s.BM25(k1=self.cfg.k1, b=self.cfg.b, method="lucene", dtype="float64")
                self._bm25.index(docs, show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every post for ``query``, ``[n_posts]``; zeros for 'recent' or no shared term."""
        q = _tokens(query, self.cfg)
        if self._bm25 is None or not q:
            return np.zeros(len(self.posts))
        return np.asarray(self._bm25.get_scores(q), dtype=np.float64) * (self.cfg.k1 + 1.0)

    def top(
        self, query: str, k: int | None = None, exclude_ids: Iterable[str] = ()
    ) -> list[tuple[Post, float]]:
        """The ``k`` best posts (default ``cfg.k``), score descending, ties → more recent → smaller post_id.

        ``exclude_ids`` are left out of the result but still count in the corpus statistics (N, df, avgdl);
        for upstream's exact numbers, drop them from the history before indexing (as ``records`` does).
        """
        k = self.cfg.k if k is None else k
        s = self.scores(query)
        skip = {str(i) for i in exclude_ids}
        order = sorted(
            (i for i, p in enumerate(self.posts) if p.post_id not in skip),
            key=lambda i: (-s[i], -self._recency[i], self.posts[i].post_id),
        )
        return [(self.posts[i], float(s[i])) for i in order[:k]]


def retrieve_history(
    history: Sequence[Post], query: str, cfg: RetrievalConfig | None = None
) -> list[tuple[Post, float]]:
    """Top-``cfg.k`` history posts for ``query`` (the news text), best first; fewer if the history is short.

    Returns ``[(post, score)]`` sorted by score descending, ties broken by recency then post_id.
    """
    cfg = cfg or RetrievalConfig()
    if not history or cfg.k == 0:
        return []
    return HistoryIndex(history, cfg).top(query)


def retrieve_many(
    histories: Mapping[str, Sequence[Post]],
    queries: Iterable[tuple[str, str]],
    cfg: RetrievalConfig | None = None,
    *,
    progress: bool = False,
) -> list[list[tuple[Post, float]]]:
    """:func:`retrieve_history` for many ``(user_id, query)`` pairs, one index per user, built on first use.

    A user answers several topics, so this builds each index once instead of once per case, and token lists
    are cached across users. Results are aligned with ``queries``; an unknown user_id raises ``KeyError``.
    """
    cfg = cfg or RetrievalConfig()
    pairs = list(queries)
    if progress:
        from tqdm.auto import tqdm

        pairs = tqdm(pairs, desc="retrieve", unit="query")
    indexes: dict[str, HistoryIndex] = {}
    out = []
    for user_id, query in pairs:
        if user_id not in indexes:
            indexes[user_id] = HistoryIndex(histories[user_id], cfg)
        out.append(indexes[user_id].top(query))
    return out
