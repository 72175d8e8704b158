"""PopALM data: event posts with their replies and like counts, trendy targets, like-ordered preference pairs.

An :class:`Event` is one post of a social-media event (PopALM's ``weibo``) with the replies it received, most-liked
first. Everything later is built from events:

* **trendy targets** (:func:`sft_records`): the top-k liked replies of each training event, the SFT targets;
* **preference pairs** (:func:`build_pairs`): (more-liked, less-liked) replies of one event with their log-like
  margin, the reward model's training data. Likes are noisy labels (who replied early, how many followers they
  have), so pairs whose likes differ by little are dropped with ``min_margin`` (in ``log1p(likes)`` units: likes are
  log-normal, so a ratio is what carries signal, not a difference);
* **splits by event**: a held-out event contributes no reply, no pair and no prompt to training.

Sources: the embedded world (:func:`events_from_world`; its held-out *topics* are the test events), a crawl of
posts with their comments and like counts (:func:`load_comment_threads`, JSON Lines described there), and
PopALM's released files (:func:`events_from_popalm`, :func:`pairs_from_popalm`, read by
``socialalign_lib.loaders``; their SFT file keeps the like order but not the counts).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from socialalign_lib.data.errors import DataFormatError, PathLike
from socialalign_lib.data.read import iter_jsonl_numbered

from ..collect.parse import ParseError, parse_count

if TYPE_CHECKING:
    import datasets

    from socialalign_lib.data.loaders.popalm import PopalmPair, PopalmThread

    from ..world.generate import World

__all__ = [
    "PROMPT_PREFIX",
    "HELDOUT_SPLITS",
    "Event",
    "PreferencePair",
    "prompt_text",
    "events_from_world",
    "load_comment_threads",
    "events_from_popalm",
    "pairs_from_popalm",
    "split_events",
    "sft_records",
    "build_pairs",
    "pairs_dataset",
]

PROMPT_PREFIX = "请对以下微博做出评论:"  # PopALM's SFT / PPO prompt ("comment on the following Weibo post:")
HELDOUT_SPLITS: tuple[str, ...] = ("test_topic", "test_both")  # the world's replies to held-out topics


def prompt_text(post: str) -> str:
    """PopALM's prompt: the prefix, the post, then a newline the reply follows.

    The newline matters for byte-level BPE: a prompt ending in punctuation or a space would merge with the first
    character of the reply (``":#"`` for a reply that starts with a hashtag) and move the prompt/reply boundary.
    """
    return f"{PROMPT_PREFIX}{post}\n"


@dataclass
class Event:
    """One event post and its replies, most-liked first.

    ``likes`` is ``None`` when only the order is known (PopALM's ``SFT_RL`` files). ``split`` is ``"train"`` or
    ``"test"`` (held-out event). Replies are re-sorted by likes (stable) at construction, so ``replies[0]`` is
    always the most-liked one.
    """

    event_id: str
    post: str
    replies: list[str]
    likes: list[int] | None = None
    split: str = "train"

    def __post_init__(self) -> None:
        if not self.replies:
            raise ValueError(f"event {self.event_id!r} has no replies")
        if self.likes is not None:
            if len(self.likes) != len(self.replies):
                raise ValueError(
                    f"event {self.event_id!r}: {len(self.replies)} replies but {len(self.likes)} like counts"
                )
            order = sorted(range(len(self.likes)), key=lambda i: -self.likes[i])
            self.replies = [self.replies[i] for i in order]
            self.likes = [int(self.likes[i]) for i in order]

    @property
    def prompt(self) -> str:
        return prompt_text(self.post)

    def top(self, k: int) -> list[str]:
        """The ``k`` most-liked replies (the trendy responses)."""
        return self.replies[:k]

    def top_likes(self, k: int) -> list[int] | None:
        return None if self.likes is None else self.likes[:k]


@dataclass(frozen=True)
class PreferencePair:
    """Two replies to one event, ``chosen`` with more likes than ``rejected``."""

    event_id: str
    prompt: str
    chosen: str
    rejected: str
    chosen_likes: int
    rejected_likes: int

    @property
    def margin(self) -> float:
        """``log1p(chosen_likes) − log1p(rejected_likes)`` (> 0): how clear the preference is."""
        return math.log1p(self.chosen_likes) - math.log1p(self.rejected_likes)


# ------------------------------------------------------------------------------------------------ sources
def events_from_world(
    world: World, heldout_splits: Sequence[str] = HELDOUT_SPLITS, min_replies: int = 2
) -> list[Event]:
    """One event per world topic: the post is ``#hashtag#news``, the replies are the topic's responses with their
    likes. A topic whose replies fall in ``heldout_splits`` (the world's held-out topics) becomes a ``"test"`` event;
    all others are ``"train"`` (their validation/test-user replies included: the split here is by event)."""
    by_topic: dict[str, list] = {}
    for r in world.responses:
        by_topic.setdefault(r.topic_id, []).append(r)
    events = []
    for topic in world.topics:
        rs = by_topic.get(topic.topic_id, [])
        if len(rs) < min_replies:
            continue
        split = "test" if any(r.split in heldout_splits for r in rs) else "train"
        events.append(
            Event(
                topic.topic_id,
                f"#{topic.hashtag}#{topic.news}",
                [r.post.text for r in rs],
                [r.post.likes for r in rs],
                split,
            )
        )
    return events


def _event_id(post: str) -> str:
    return "ev" + hashlib.sha1(post.encode("utf-8")).hexdigest()[:10]


def load_comment_threads(path: PathLike, *, encoding: str = "utf-8", min_comments: int = 2) -> list[Event]:
    """Events from a crawl of posts with their comments and like counts, JSON Lines, one post per line::

        {"id": "4900000000000001",            # optional; default: a hash of the text
         "weibo": "#话题#正文…",                # the post (PopALM's key)
         "comments": [{"text": "评论", "like_count": 1234}, …],   # weibo-crawler's comment fields
         "split": "train"}                     # optional: "train" | "test"

    ``like_count`` may be an int or a Weibo count string ("1.2万", "100万+"), read by the crawler's own
    ``parse_count``. Raises :class:`~socialalign_lib.io.DataFormatError` naming file, line and field (e.g.
    ``comments[3].like_count``) for anything else, and for a post with fewer than ``min_comments`` comments.
    """
    events = []
    for line, rec in iter_jsonl_numbered(
        path, required=("weibo", "comments"), types={"weibo": str, "comments": list}, encoding=encoding
    ):
        texts, likes = [], []
        for j, c in enumerate(rec["comments"]):
            where = f"comments[{j}]"
            if not isinstance(c, dict):
                raise DataFormatError(
                    f"expected an object, got {type(c).__name__}", file=path, line=line, field=where
                )
            for key in ("text", "like_count"):
                if key not in c or c[key] is None:
                    raise DataFormatError("missing", file=path, line=line, field=f"{where}.{key}")
            if not isinstance(c["text"], str):
                raise DataFormatError(
                    f"expected str, got {type(c['text']).__name__}",
                    file=path,
                    line=line,
                    field=f"{where}.text",
                )
            if isinstance(c["like_count"], bool):
                raise DataFormatError(
                    "expected a count, got a bool", file=path, line=line, field=f"{where}.like_count"
                )
            try:
                n = parse_count(c["like_count"])
            except ParseError as err:
                raise DataFormatError(str(err), file=path, line=line, field=f"{where}.like_count") from None
            if n < 0:
                raise DataFormatError(
                    f"negative count {n}", file=path, line=line, field=f"{where}.like_count"
                )
            texts.append(c["text"])
            likes.append(n)
        if len(texts) < min_comments:
            raise DataFormatError(
                f"{len(texts)} comments, need at least {min_comments}", file=path, line=line, field="comments"
            )
        split = rec.get("split", "train")
        if split not in ("train", "test"):
            raise DataFormatError(
                f"expected 'train' or 'test', got {split!r}", file=path, line=line, field="split"
            )
        event_id = str(rec["id"]) if rec.get("id") is not None else _event_id(rec["weibo"])
        events.append(Event(event_id, rec["weibo"], texts, likes, split))
    return events


def events_from_popalm(threads: Iterable[PopalmThread], split: str = "train") -> list[Event]:
    """Events from PopALM's ``SFT_RL/*.json`` threads (``loaders.load_popalm_sft``): replies in like order, counts
    unknown (``likes=None``), so they give SFT targets and PPO prompts but no pairs."""
    return [Event(_event_id(t.weibo), t.weibo, list(t.resp), None, split) for t in threads]


def pairs_from_popalm(pairs: Iterable[PopalmPair]) -> list[PreferencePair]:
    """PopALM's ``RM/*.json`` pairs, **ordered by their like counts** (the official reward code always prefers
    ``text_j``, which has more likes in only 57% of dev pairs); tied pairs are dropped."""
    out = []
    for p in pairs:
        if p.text_j_like == p.text_k_like:
            continue
        (c, cl), (r, rl) = sorted([(p.text_j, p.text_j_like), (p.text_k, p.text_k_like)], key=lambda x: -x[1])
        out.append(PreferencePair(_event_id(p.weibo), prompt_text(p.weibo), c, r, cl, rl))
    return out


def split_events(events: Sequence[Event], test_frac: float = 0.2, seed: int = 0) -> list[Event]:
    """Copies of ``events`` with a seeded random ``test_frac`` of them marked ``"test"`` (at least one), for real
    data that comes without a split. Splitting by event keeps every reply of a test post out of training."""
    if not 0.0 < test_frac < 1.0:
        raise ValueError(f"test_frac must be in (0, 1), got {test_frac}")
    n_test = max(1, int(round(test_frac * len(events))))
    test = set(np.random.default_rng(seed).choice(len(events), size=n_test, replace=False).tolist())
    return [replace(e, split="test" if i in test else "train") for i, e in enumerate(events)]


# ------------------------------------------------------------------------------------------------ training data
def sft_records(events: Iterable[Event], top_k: int = 3) -> list[dict[str, str]]:
    """Prompt/completion records: each event's ``top_k`` most-liked replies as targets (PopALM trains on the
    top-liked reply; several per event give a small dataset more to learn from)."""
    return [{"prompt": e.prompt, "completion": r} for e in events for r in e.top(top_k)]


def build_pairs(
    events: Iterable[Event], min_margin: float = 0.0, max_pairs_per_event: int | None = None, seed: int = 0
) -> list[PreferencePair]:
    """All (more-liked, less-liked) pairs of replies within each event whose margin
    ``log1p(likes_i) − log1p(likes_j)`` exceeds ``min_margin`` (ties never pair).

    ``max_pairs_per_event`` keeps a seeded random subset per event, so a post with many replies does not dominate
    (n replies give n(n−1)/2 pairs). Events without like counts raise ``ValueError``.
    """
    rng = np.random.default_rng(seed)
    out: list[PreferencePair] = []
    for e in events:
        if e.likes is None:
            raise ValueError(
                f"event {e.event_id!r} has no like counts: pairs need them (use pairs_from_popalm "
                "for PopALM's RM files)"
            )
        logl = np.log1p(np.asarray(e.likes, dtype=float))
        ev = [
            PreferencePair(e.event_id, e.prompt, e.replies[i], e.replies[j], e.likes[i], e.likes[j])
            for i in range(len(e.replies))
            for j in range(i + 1, len(e.replies))
            if logl[i] - logl[j] > min_margin
        ]
        if max_pairs_per_event is not None and len(ev) > max_pairs_per_event:
            keep = np.sort(rng.choice(len(ev), size=max_pairs_per_event, replace=False))
            ev = [ev[i] for i in keep]
        out.extend(ev)
    return out


def pairs_dataset(pairs: Sequence[PreferencePair], margin_scale: float | None = None) -> datasets.Dataset:
    """A ``datasets.Dataset`` in TRL's explicit-prompt preference format (``prompt``, ``chosen``, ``rejected``).

    ``margin_scale``: add a ``margin`` column ``= scale · log-like margin``; TRL's ``RewardTrainer`` then trains on
    ``−log σ(r_c − r_r − margin)`` (Llama 2's margin loss): clearer pairs must be separated by more.
    """
    from datasets import Dataset

    rows: dict[str, list[Any]] = {
        "prompt": [p.prompt for p in pairs],
        "chosen": [p.chosen for p in pairs],
        "rejected": [p.rejected for p in pairs],
    }
    if margin_scale is not None:
        rows["margin"] = [float(margin_scale * p.margin) for p in pairs]
    return Dataset.from_dict(rows)
