"""The crawl: hashtags → their posts and the lead post's comments → the posters' profiles and timelines.

Work is done in a fixed order (hashtags as given, then users in the order they were first seen), and every
page is committed with the crawl state (``store.CrawlStore``), so any interruption resumes where it stopped
and the output does not depend on how many times the crawl was interrupted or how many requests failed.

A unit of work (a hashtag, a user) is closed only by a confirmed end: an answer that says "nothing (more)
here" (``ok: 0``, no cards) is asked again ``end_confirmations`` times, because Weibo sometimes gives it for a
page that exists. An expired login, a lasting ban or the request budget stop the crawl (``CrawlStopped``) with
the unit in progress still pending.

Outputs in ``config.out_dir`` (schema dicts, like the world's files):
``topics.jsonl`` (Topic), ``posts_by_topic.jsonl`` ({topic_id, post}), ``comments.jsonl``
({topic_id, post_id, comment}) and ``users.jsonl`` (User with its history, oldest post first).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from socialalign_lib.data.schema import Post, User

from .client import ApiResponse, ClientStats, CrawlStopped, FetchError, WeiboClient
from .config import CrawlConfig
from .parse import (
    ParseError,
    cards_to_mblogs,
    comment_to_post,
    info_items,
    is_pinned,
    is_verified,
    mblog_to_post,
    parse_count,
    topic_from_search,
    user_profile,
)
from .store import CrawlStore

log = logging.getLogger("socialalign_lib.collect")


def topic_id_for(hashtag: str) -> str:
    """A stable id from the hashtag alone: Weibo search pages carry no topic id, and a re-crawl must agree."""
    return "wb" + hashlib.sha1(hashtag.strip("#").encode("utf-8")).hexdigest()[:10]


@dataclass
class CrawlSummary:
    """Counts in the output folder after the run, and what this run's client saw."""

    topics: int
    posts: int
    comments: int
    users: int
    failed: list[str] = field(default_factory=list)  # units left undone this run ("#tag#", "user:123")
    skipped: int = 0  # unreadable posts or comments left out (logged)
    stats: ClientStats = field(default_factory=ClientStats)
    stopped: str | None = (
        None  # why the crawl stopped early (CrawlStopped.reason), None when it ran to the end
    )

    @property
    def complete(self) -> bool:
        return not self.failed and self.stopped is None


class Crawler:
    """Drives a ``WeiboClient`` and a ``CrawlStore``. Use ``crawl()`` unless you need the parts."""

    def __init__(self, config: CrawlConfig, client: WeiboClient | None = None) -> None:
        self.config = config
        self.client = client if client is not None else WeiboClient(config)
        self._own_client = client is None
        try:
            self.store = CrawlStore(config.out_dir, resume=config.resume, fsync=config.fsync)
        except BaseException:
            self._close_client()
            raise
        self.failed: list[str] = []
        self.skipped = 0

    def _close_client(self) -> None:
        if self._own_client:
            self.client.close()

    def close(self) -> None:
        """Release the output folder (its lock) and the client, if the crawler made it."""
        self.store.close()
        self._close_client()

    def _fetch(self, request: Callable[[], ApiResponse], empty: Callable[[ApiResponse], bool]) -> ApiResponse:
        """``request()``, asked again up to ``end_confirmations`` times while its answer is ``empty`` ("nothing
        here"). Weibo sometimes answers a page that exists with ``ok: 0``; believed at once, that would close a
        listing early and lose the rest of it (and mark the unit done, so a resume would not fetch it either)."""
        resp = request()
        for _ in range(self.config.end_confirmations):
            if not empty(resp):
                break
            self.client.pause_before_asking_again()
            resp = request()
        return resp

    # --- posts --------------------------------------------------------------------------------------

    def _full_text(self, mblog: dict[str, Any]) -> dict[str, Any]:
        if not (self.config.fetch_long_text and mblog.get("isLongText") and mblog.get("id") is not None):
            return mblog
        resp = self._fetch(lambda: self.client.long_text(str(mblog["id"])), lambda r: not _long_text(r))
        html = _long_text(resp)
        return {**mblog, "text": html} if html else mblog

    def _post(self, mblog: dict[str, Any], now: dt.datetime) -> Post | None:
        """Parse one mblog, first fetching the full text of it (and of its original) when the listing cut it.

        An mblog that cannot be parsed (an ad card, a field Weibo changed) is skipped with a warning rather than
        failing the page: retrying would fail the same way.
        """
        mblog = self._full_text(mblog)
        if isinstance(mblog.get("retweeted_status"), dict):
            mblog = {**mblog, "retweeted_status": self._full_text(mblog["retweeted_status"])}
        try:
            return mblog_to_post(mblog, now)
        except ParseError as err:
            log.warning("skipped an unreadable post: %s", err)
            self.skipped += 1
            return None

    def _new_users(self, users: Iterable[dict[str, Any] | None], seen: set[str]) -> list[str]:
        """Ids to queue, in order of appearance: not yet queued, and not verified when ``skip_verified``."""
        out = []
        for user in users:
            if not user or user.get("id") is None or (self.config.skip_verified and is_verified(user)):
                continue
            uid = str(user["id"])
            if uid not in seen and uid not in out:
                out.append(uid)
        return out

    def _commit(
        self, records: dict[str, list[dict[str, Any]]], users: Iterable[dict[str, Any] | None] = ()
    ) -> None:
        queue = self.store.state["user_queue"]
        queue.extend(self._new_users(users, set(queue)))
        self.store.commit(records)

    # --- hashtags -----------------------------------------------------------------------------------

    def crawl_hashtag(self, hashtag: str) -> None:
        """Search pages (topic header + posts), then the comments of the first ``comment_posts`` results.

        State is only changed right before a commit, so a page that fails half-way leaves no trace.
        """
        cfg, store = self.config, self.store
        tag = hashtag.strip().strip("#")
        tid = topic_id_for(tag)
        st = store.state["search"].setdefault(
            tag, {"topic_id": tid, "next_page": 1, "done": False, "comments": {}}
        )
        while not st["done"]:
            page = st["next_page"]
            resp = (
                self._fetch(lambda page=page: self.client.search_page(tag, page), lambda r: not _mblogs(r))
                if page <= cfg.max_search_pages
                else None
            )
            body = (resp.data.get("data") or {}) if resp is not None and resp.ok else {}
            mblogs = cards_to_mblogs(body.get("cards") or [])
            records: dict[str, list[dict[str, Any]]] = {"topics": [], "posts_by_topic": []}
            if not store.has("topics", tid) and (mblogs or page == 1 or resp is None):
                now = resp.now if resp is not None else None
                records["topics"].append(
                    topic_from_search(tag, body.get("cardlistInfo") or {}, now, tid).to_dict()
                )
            posts = (
                [p for p in (self._post(m, resp.now) for m in mblogs) if p is not None]
                if resp is not None
                else []
            )
            records["posts_by_topic"] = [{"topic_id": tid, "post": p.to_dict()} for p in posts]
            targets = [p for p in posts if p.post_id not in st["comments"]][
                : max(0, cfg.comment_posts - len(st["comments"]))
            ]
            for p in targets:
                st["comments"][p.post_id] = {"max_id": None, "pages": 0, "done": not p.comments}
            st["next_page"] = page + 1
            st["done"] = not mblogs
            self._commit(records, (m.get("user") for m in mblogs))
        for mid, cst in st["comments"].items():
            self._crawl_comments(tid, mid, cst)

    def _crawl_comments(self, tid: str, mid: str, cst: dict[str, Any]) -> None:
        while not cst["done"]:
            if cst["pages"] >= self.config.max_comment_pages:
                cst["done"] = True
                self.store.commit()
                break
            resp = self._fetch(
                lambda: self.client.comments_page(mid, cst["max_id"]), lambda r: not _comment_items(r)
            )
            body = resp.data.get("data") if resp.ok else None
            body = body if isinstance(body, dict) else {}
            items = _comment_items(resp)
            records = []
            for c in items:
                try:
                    records.append(
                        {"topic_id": tid, "post_id": mid, "comment": comment_to_post(c, resp.now).to_dict()}
                    )
                except ParseError as err:
                    log.warning("skipped an unreadable comment: %s", err)
                    self.skipped += 1
            max_id = int(body.get("max_id") or 0)
            cst.update(pages=cst["pages"] + 1, max_id=max_id, done=not items or max_id == 0)
            self._commit({"comments": records}, (c.get("user") for c in items))

    # --- users --------------------------------------------------------------------------------------

    def crawl_user(self, uid: str) -> User | None:
        """Profile (+ INFO tab) and timeline pages until ``ok: 0``, ``since`` or ``max_timeline_pages``.

        The user is one record, written once complete; ``None`` when the account does not exist (any more).
        """
        cfg = self.config
        prof = self._fetch(lambda: self.client.profile(uid), lambda r: not _user_info(r))
        info = _user_info(prof)
        if not info:
            return None
        items = {}
        if cfg.fetch_user_info:
            resp = self._fetch(lambda: self.client.user_info(uid), lambda r: not _cards(r))
            items = info_items(_cards(resp))
        history: dict[str, Post] = {}
        promised = _statuses_count(info)

        def end_unconfirmed(
            resp: ApiResponse,
        ) -> bool:  # no end is in doubt once the profile's count is reached
            return not _mblogs(resp) and (promised is None or len(history) < promised)

        for page in range(1, cfg.max_timeline_pages + 1):
            resp = self._fetch(lambda page=page: self.client.timeline_page(uid, page), end_unconfirmed)
            mblogs = _mblogs(resp)
            if not mblogs:
                break
            stop = False
            for mblog in mblogs:
                if str(mblog.get("id")) in history:
                    continue
                post = self._post(mblog, resp.now)
                if post is None:
                    continue
                if cfg.since and post.created_at < cfg.since:
                    if not is_pinned(mblog):
                        stop = True
                    continue
                history[post.post_id] = post
            if stop:
                break
        posts = sorted(history.values(), key=lambda p: (p.created_at, p.post_id))
        return User(history=posts, **user_profile(info, items))

    # --- the whole crawl ----------------------------------------------------------------------------

    def run(self, hashtags: Iterable[str] = (), user_ids: Iterable[str] = ()) -> CrawlSummary:
        """Crawl, resuming from the checkpoint. A ``CrawlStopped`` leaves with its ``summary`` set."""
        try:
            self._run(hashtags, user_ids)
        except CrawlStopped as stop:
            stop.summary = self.summary(stopped=stop.reason)
            raise
        return self.summary()

    def summary(self, stopped: str | None = None) -> CrawlSummary:
        store = self.store
        return CrawlSummary(
            topics=len(store.keys["topics"]),
            posts=len(store.keys["posts_by_topic"]),
            comments=len(store.keys["comments"]),
            users=len(store.keys["users"]),
            failed=list(self.failed),
            skipped=self.skipped,
            stats=self.client.stats,
            stopped=stopped,
        )

    def _run(self, hashtags: Iterable[str], user_ids: Iterable[str]) -> None:
        cfg, store = self.config, self.store
        if user_ids:
            self._commit({}, ({"id": uid} for uid in user_ids))
        tags = list(dict.fromkeys(h.strip().strip("#") for h in hashtags))
        for tag in tqdm(tags, desc="hashtags", disable=not cfg.progress):
            try:
                self.crawl_hashtag(tag)
            except (FetchError, ParseError) as err:
                log.warning("hashtag #%s# left for a later run: %s", tag, err)
                self.failed.append(f"#{tag}#")
        if cfg.crawl_users:
            queue = (
                store.state["user_queue"][: cfg.max_users]
                if cfg.max_users is not None
                else store.state["user_queue"]
            )
            done = set(store.state["users_done"])
            for uid in tqdm(queue, desc="users", disable=not cfg.progress):
                if uid in done:
                    continue
                try:
                    user = self.crawl_user(uid)
                except (FetchError, ParseError) as err:
                    log.warning("user %s left for a later run: %s", uid, err)
                    self.failed.append(f"user:{uid}")
                    continue
                store.state["users_done"].append(uid)
                store.commit({"users": [user.to_dict()] if user is not None else []})


# --- what an answer holds (empty when it says "nothing here") -----------------------------------------------


def _data(resp: ApiResponse) -> dict[str, Any]:
    data = resp.data.get("data") if resp.ok else None
    return data if isinstance(data, dict) else {}


def _cards(resp: ApiResponse) -> list[Any]:
    return _data(resp).get("cards") or []


def _mblogs(resp: ApiResponse) -> list[dict[str, Any]]:
    return cards_to_mblogs(_cards(resp))


def _user_info(resp: ApiResponse) -> dict[str, Any] | None:
    return _data(resp).get("userInfo") or None


def _statuses_count(info: dict[str, Any]) -> int | None:
    """The profile's post count, None when absent or unreadable (then every end of the timeline is confirmed)."""
    if info.get("statuses_count") is None:
        return None
    try:
        return parse_count(info["statuses_count"])
    except ParseError:
        return None


def _long_text(resp: ApiResponse) -> str | None:
    return _data(resp).get("longTextContent") or None


def _comment_items(resp: ApiResponse) -> list[dict[str, Any]]:
    return _flatten_comments(_data(resp).get("data") or [])


def _flatten_comments(items: list[Any]) -> list[dict[str, Any]]:
    """Hotflow comments and their nested replies (``comments: [...]``), in page order."""
    out = []
    for item in items:
        if isinstance(item, dict) and item.get("id") is not None:
            out.append(item)
            if isinstance(item.get("comments"), list):
                out.extend(_flatten_comments(item["comments"]))
    return out


def crawl(
    config: CrawlConfig,
    hashtags: Iterable[str] = (),
    user_ids: Iterable[str] = (),
    client: WeiboClient | None = None,
) -> CrawlSummary:
    """Crawl ``hashtags`` (and ``user_ids``) into ``config.out_dir``, resuming from its checkpoint.

    >>> crawl(CrawlConfig(out_dir="data/generated/crawl"), ["北京地铁新进展"])  # doctest: +SKIP
    """
    crawler = Crawler(config, client)
    try:
        return crawler.run(hashtags, user_ids)
    finally:
        crawler.close()
