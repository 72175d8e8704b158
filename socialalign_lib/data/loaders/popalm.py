"""PopALM's released files (docs/formats.md#popalm): SFT threads (a post and its replies, most-liked first) and
reward-model pairs with like counts, plus their mapping onto the shared schema.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import DataFormatError, PathLike
from ..read import iter_jsonl_numbered
from ..schema import Post, Response, Topic
from ..text import extract_hashtags

__all__ = ["PopalmThread", "PopalmPair", "load_popalm_sft", "load_popalm_pairs", "popalm_to_schema"]


def _stable_id(prefix: str, *parts: str) -> str:
    return prefix + hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:10]


@dataclass
class PopalmThread:
    """``SFT_RL/*.json`` line: a post and its replies, most-liked first (the replies carry no counts)."""

    weibo: str
    resp: list[str]
    line: int = 0


@dataclass
class PopalmPair:
    """``RM/*.json`` line: two replies to ``weibo`` with their like counts. PopALM's reward code always
    treats ``text_j`` as preferred although it has more likes in only ~57% of dev pairs; :attr:`preferred`
    goes by the likes instead."""

    weibo: str
    text_j: str
    text_k: str
    text_j_like: int
    text_k_like: int
    line: int = 0

    @property
    def preferred(self) -> str:
        """``"j"`` or ``"k"``: the reply with more likes (``"j"`` on a tie)."""
        return "j" if self.text_j_like >= self.text_k_like else "k"


def load_popalm_sft(
    path: PathLike, *, n_replies: int | None = None, encoding: str = "utf-8"
) -> list[PopalmThread]:
    """PopALM ``SFT_RL/{train,dev,test,train_ppo}.json`` (JSON Lines ``{"weibo", "resp": [...]}``).
    ``n_replies``: require exactly that many replies per post (the released files have 10)."""
    out = []
    for line, rec in iter_jsonl_numbered(
        path, required=("weibo", "resp"), types={"weibo": str, "resp": list}, encoding=encoding
    ):
        resp = rec["resp"]
        for j, r in enumerate(resp):
            if not isinstance(r, str):
                raise DataFormatError(
                    f"expected str, got {type(r).__name__}", file=path, line=line, field=f"resp[{j}]"
                )
        if not resp or (n_replies is not None and len(resp) != n_replies):
            want = "at least 1" if n_replies is None else str(n_replies)
            raise DataFormatError(f"{len(resp)} replies, expected {want}", file=path, line=line, field="resp")
        out.append(PopalmThread(rec["weibo"], list(resp), line))
    return out


def load_popalm_pairs(path: PathLike, *, encoding: str = "utf-8") -> list[PopalmPair]:
    """PopALM ``RM/{train,dev,test}.json`` (JSON Lines of reward pairs with like counts)."""
    names = ("weibo", "text_j", "text_k", "text_j_like", "text_k_like")
    types = {"weibo": str, "text_j": str, "text_k": str, "text_j_like": int, "text_k_like": int}
    out = []
    for line, rec in iter_jsonl_numbered(path, required=names, types=types, encoding=encoding):
        for k in ("text_j_like", "text_k_like"):
            if rec[k] < 0:
                raise DataFormatError(f"negative count {rec[k]}", file=path, line=line, field=k)
        out.append(PopalmPair(*(rec[n] for n in names), line=line))
    return out


def popalm_to_schema(threads: Iterable[PopalmThread]) -> tuple[list[Topic], list[Response]]:
    """Threads → topics (the post as ``news``; hashtag = its first ``#…#``, else "") and unlabelled
    responses, one per reply, in like order (``post_id`` ``"{topic_id}-r{rank}"``). PopALM has no user ids
    or counts, so ``user_id`` is empty and ``likes`` 0; the rank is in the id."""
    topics, responses = [], []
    for th in threads:
        tags = extract_hashtags(th.weibo)
        tid = _stable_id("pa", th.weibo)
        topics.append(
            Topic(topic_id=tid, hashtag=tags[0] if tags else "", news=th.weibo, category="", time="")
        )
        for rank, text in enumerate(th.resp):
            post = Post(
                post_id=f"{tid}-r{rank}",
                user_id="",
                text=text,
                created_at="",
                hashtags=extract_hashtags(text),
            )
            responses.append(Response(topic_id=tid, post=post, sentiment=""))
    return topics, responses
