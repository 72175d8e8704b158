"""SocialAlign's history-post filter (upstream ``clean_user_history.filter_weibo``), each rule a parameter.

The word lists are data (``resources/history_filter.json``, copied from upstream); a user left with fewer than
``min_history`` posts is skipped *with a reason*, never silently. Texts are cleaned with ``data.text`` first, as
upstream does, and hashtags read with its one :data:`~socialalign_lib.data.text.HASHTAG` rule.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from typing import Any, NamedTuple

from .encoding import read_text_file
from .errors import DataFormatError, PathLike
from .schema import Post, User
from .text import CleanConfig, clean_text, extract_hashtags, is_only_hashtags

__all__ = ["HistoryFilter", "HistoryResult", "filter_history", "load_history_filter_lists"]


@lru_cache(maxsize=1)
def _packaged_lists() -> dict[str, tuple[str, ...]]:
    raw = resources.files("socialalign_lib").joinpath("resources/history_filter.json").read_text("utf-8")
    return _parse_lists(raw, "socialalign_lib/resources/history_filter.json")


def _parse_lists(raw: str, source: str) -> dict[str, tuple[str, ...]]:
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as err:
        raise DataFormatError(f"invalid JSON ({err.msg})", file=source, line=err.lineno) from None
    out = {}
    for key in (
        "exclude_topics",
        "exclude_texts",
        "exclude_retweet_topics",
        "exclude_retweet_texts",
        "ignore_topics",
    ):
        value = doc.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise DataFormatError("must be a list of non-empty strings", file=source, field=key)
        out[key] = tuple(dict.fromkeys(value))
    return out


def load_history_filter_lists(path: PathLike | None = None) -> dict[str, tuple[str, ...]]:
    """The exclusion word lists (default: the packaged upstream lists), de-duplicated, order kept."""
    if path is None:
        return dict(_packaged_lists())
    return _parse_lists(read_text_file(path), str(path))


def _default_list(key: str):
    return lambda: _packaged_lists()[key]


class HistoryResult(NamedTuple):
    """``(kept, dropped)``; ``dropped`` pairs each post with its reason ``"rule: detail"``.

    A skipped user (too few posts left) has ``kept == []`` and its would-be posts in ``dropped`` with reason
    ``"too_few_posts: …"``; :attr:`skip_reason` says so without scanning by hand.
    """

    kept: list[Post]
    dropped: list[tuple[Post, str]]

    @property
    def skip_reason(self) -> str | None:
        return next((r for _, r in self.dropped if r.startswith("too_few_posts")), None)

    def reason_counts(self) -> Counter[str]:
        """How many posts each rule dropped (by the rule name before the colon)."""
        return Counter(r.split(":", 1)[0] for _, r in self.dropped)


@dataclass(frozen=True)
class HistoryFilter:
    """SocialAlign's history-post filter (upstream ``clean_user_history.filter_weibo``), rules as parameters.

    A post is dropped — first rule that fires, in upstream's order — when: its retweet's topics or text hit
    ``exclude_retweet_*``; its topics hit ``exclude_topics``; its text hits ``exclude_texts`` (which carry
    '@', '【', '转发', '投票') or the user's own screen name; any topic has ≤ ``max_short_topic`` characters; the
    text is only hashtags; the text or the topics are empty. Hits are substring tests on the comma-joined
    topics and on the text *after* ``clean`` (upstream cleans first, then filters, and keeps the cleaned text).
    Topics are ``post.hashtags`` (the crawler's ``topics``), or those in the text when that list is empty,
    minus ``ignore_topics``. Calling the filter on a :class:`User` gives the kept posts, so it plugs into
    ``records.build_records(history_filter=...)``.
    """

    exclude_topics: tuple[str, ...] = field(default_factory=_default_list("exclude_topics"))
    exclude_texts: tuple[str, ...] = field(default_factory=_default_list("exclude_texts"))
    exclude_retweet_topics: tuple[str, ...] = field(default_factory=_default_list("exclude_retweet_topics"))
    exclude_retweet_texts: tuple[str, ...] = field(default_factory=_default_list("exclude_retweet_texts"))
    ignore_topics: tuple[str, ...] = field(default_factory=_default_list("ignore_topics"))
    exclude_screen_name: bool = True
    max_short_topic: int = 3
    drop_only_hashtags: bool = True
    require_text: bool = True
    require_topics: bool = True
    min_history: int = 10
    clean: CleanConfig | None = field(default_factory=CleanConfig.official)

    @classmethod
    def from_json(cls, path: PathLike, **overrides: Any) -> HistoryFilter:
        """Lists from a JSON file shaped like ``resources/history_filter.json``; other fields as keywords."""
        return cls(**{**load_history_filter_lists(path), **overrides})

    def _clean(self, text: str) -> str:
        return clean_text(text, self.clean) if self.clean is not None else (text or "")

    def topics_of(self, post: Post) -> list[str]:
        tags = list(post.hashtags) if post.hashtags else extract_hashtags(post.text)
        return [t.strip() for t in tags if t.strip() and t.strip() not in self.ignore_topics]

    def check(self, post: Post, screen_name: str | None = None) -> str | None:
        """Why ``post`` is dropped (``"rule: detail"``), or None if it is kept."""
        if post.retweet is not None:
            rt_topics = ",".join(self.topics_of(post.retweet))
            rt_text = self._clean(post.retweet.text)
            if hit := next((w for w in self.exclude_retweet_topics if w in rt_topics), None):
                return f"retweet_topic: {hit}"
            if hit := next((w for w in self.exclude_retweet_texts if w in rt_text), None):
                return f"retweet_text: {hit}"
        topic_list = self.topics_of(post)
        topics, text = ",".join(topic_list), self._clean(post.text)
        if hit := next((w for w in self.exclude_topics if w in topics), None):
            return f"topic: {hit}"
        if hit := next((w for w in self.exclude_texts if w in text), None):
            return f"text: {hit}"
        if self.exclude_screen_name and screen_name and screen_name in text:
            return f"screen_name: {screen_name}"
        if hit := next((t for t in topic_list if len(t) <= self.max_short_topic), None):
            return f"short_topic: {hit}"
        if self.drop_only_hashtags and is_only_hashtags(text):
            return "only_hashtags"
        if self.require_text and not text:
            return "empty_text"
        if self.require_topics and not topics:
            return "empty_topics"
        return None

    def __call__(self, user: User) -> list[Post]:
        """The kept posts of ``user`` ([] when the user is skipped; use :func:`filter_history` for reasons)."""
        return filter_history(user.history, user.screen_name, self).kept


def filter_history(
    posts: Iterable[Post],
    screen_name: str | None = None,
    cfg: HistoryFilter | None = None,
    *,
    exclude_ids: Iterable[str] = (),
) -> HistoryResult:
    """Apply ``cfg`` (default: the official filter) to one user's history.

    ``exclude_ids`` are removed first with reason ``"target_post"`` — upstream drops the post being predicted
    before counting, so a user needs ``min_history`` posts *besides* it. Kept posts carry the cleaned text
    (new objects; the inputs are not modified). A user left with fewer than ``cfg.min_history`` posts is
    skipped: nothing is kept and every survivor is listed with a ``"too_few_posts"`` reason.
    """
    cfg = cfg or HistoryFilter()
    targets = {str(i) for i in exclude_ids}
    kept: list[Post] = []
    dropped: list[tuple[Post, str]] = []
    for post in posts:
        if post.post_id in targets:
            dropped.append((post, "target_post"))
            continue
        reason = cfg.check(post, screen_name)
        if reason is not None:
            dropped.append((post, reason))
            continue
        if cfg.clean is not None:
            retweet = post.retweet
            if retweet is not None:
                retweet = replace(retweet, text=cfg._clean(retweet.text))
            post = replace(post, text=cfg._clean(post.text), retweet=retweet)
        kept.append(post)
    if len(kept) < cfg.min_history:
        why = f"too_few_posts: {len(kept)} left < min_history={cfg.min_history}"
        return HistoryResult([], dropped + [(p, why) for p in kept])
    return HistoryResult(kept, dropped)
