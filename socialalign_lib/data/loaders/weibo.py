"""Weibo exports (docs/formats.md#crawler-outputs): weibo-crawler user JSON / CSV, weibo-search CSV, and plain
``userid,text`` post CSVs (one file, or one per day), mapped onto the shared schema.

Count strings (``"1.2万"``, ``"100万+"``) and Weibo times (absolute, ``%Y-%m-%d %H:%M:%S``, 刚刚 / N分钟前 /
昨天 HH:MM relative to ``now``) are read by the crawler's own ``parse_count`` and ``parse_weibo_time``, so crawled
and loaded data agree; topic ids come from the crawler's ``topic_id_for``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from socialalign_lib.collect.crawler import topic_id_for
from socialalign_lib.collect.parse import ParseError, parse_count, parse_weibo_time

from ..errors import DataFormatError, PathLike
from ..read import iter_csv_rows, read_json
from ..schema import Post, Response, Topic, User
from ..text import extract_hashtags
from ._common import _str_field

__all__ = [
    "load_weibo_crawler_json",
    "load_weibo_crawler_dir",
    "load_weibo_crawler_csv",
    "load_weibo_search_csv",
    "PostsCsv",
    "load_posts_csv",
    "load_daily_posts",
    "day_from_filename",
]

_GENDER = {"f": "女", "m": "男"}  # the crawler's f/m → the schema's (and the world's) convention


def _count(value: Any, path: PathLike, line: int | None, fieldname: str) -> int:
    try:
        return parse_count(value)
    except ParseError as err:
        raise DataFormatError(str(err), file=path, line=line, field=fieldname) from None


def _time(value: Any, now: dt.datetime | None, path: PathLike, line: int | None, fieldname: str) -> str:
    try:
        return parse_weibo_time(str(value), now)
    except ParseError as err:
        raise DataFormatError(str(err), file=path, line=line, field=fieldname) from None


def _need(row: Mapping[str, str], names: Sequence[str], path: PathLike, line: int) -> str:
    for n in names:
        if n in row:
            return row[n]
    raise DataFormatError(
        f"missing column (expected one of {list(names)})", file=path, line=line, field=names[0]
    )


def _topics_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(t).strip() for t in value if str(t).strip()]
    return [t.strip() for t in str(value or "").split(",") if t.strip()]


def _crawler_post(
    rec: Any,
    where: str,
    path: PathLike,
    now: dt.datetime | None,
    user_id: str,
    screen_name: str | None,
    parent_id: str | None = None,
) -> Post:
    """One ``weibo[i]`` item (crawler form, or SocialAlign's cleaned form with ``post_time``) → Post."""
    if not isinstance(rec, dict):
        raise DataFormatError(f"expected an object, got {type(rec).__name__}", file=path, field=where)
    pid = rec.get("id")
    if pid is None or str(pid).strip() == "":
        if parent_id is None:
            raise DataFormatError("missing", file=path, field=f"{where}.id")
        pid = f"{parent_id}-rt"
    text = _str_field(rec, "text", path, None, where)
    for key in ("full_created_at", "post_time", "created_at"):
        if rec.get(key):
            created = _time(rec[key], now, path, None, f"{where}.{key}")
            break
    else:
        raise DataFormatError(
            "missing (no full_created_at, post_time or created_at)", file=path, field=f"{where}.created_at"
        )
    tags = _topics_list(rec.get("topics")) or extract_hashtags(text)
    retweet = None
    if isinstance(rec.get("retweet"), dict):
        rt = rec["retweet"]
        retweet = _crawler_post(
            rt,
            f"{where}.retweet",
            path,
            now,
            str(rt.get("user_id", "") or ""),
            rt.get("screen_name"),
            parent_id=str(pid),
        )
    uid = str(rec.get("user_id") or user_id)
    return Post(
        post_id=str(pid).strip(),
        user_id=uid,
        text=text,
        created_at=created,
        hashtags=tags,
        retweet=retweet,
        likes=_count(rec.get("attitudes_count"), path, None, f"{where}.attitudes_count"),
        reposts=_count(rec.get("reposts_count"), path, None, f"{where}.reposts_count"),
        comments=_count(rec.get("comments_count"), path, None, f"{where}.comments_count"),
        screen_name=rec.get("screen_name") or screen_name,
    )


def load_weibo_crawler_json(
    path: PathLike,
    *,
    now: dt.datetime | None = None,
    encoding: str = "utf-8",
    allow_empty_history: bool = False,
) -> User:
    """weibo-crawler's ``{uid}.json`` = ``{"user": {...}, "weibo": [...]}`` → a :class:`User` whose history is
    the timeline. ``now`` resolves relative times (刚刚, N分钟前, 昨天 …) should a dump contain them.

    Gender f/m becomes 女/男; ``followers_count`` may be a display string ("1.2万")."""
    doc = read_json(path, encoding=encoding)
    if not isinstance(doc, dict):
        raise DataFormatError(
            f"expected an object with 'user' and 'weibo', got {type(doc).__name__}", file=path
        )
    info = doc.get("user")
    if not isinstance(info, dict):
        raise DataFormatError("missing" if info is None else "expected an object", file=path, field="user")
    if info.get("id") in (None, ""):
        raise DataFormatError("missing", file=path, field="user.id")
    uid, name = str(info["id"]), info.get("screen_name") or ""
    posts = doc.get("weibo")
    if not isinstance(posts, list):
        raise DataFormatError("missing" if posts is None else "expected a list", file=path, field="weibo")
    if not posts and not allow_empty_history:
        raise DataFormatError("empty history (the user has no posts)", file=path, field="weibo")
    history = [_crawler_post(p, f"weibo[{i}]", path, now, uid, name) for i, p in enumerate(posts)]
    gender = info.get("gender")
    return User(
        user_id=uid,
        screen_name=name,
        history=history,
        gender=_GENDER.get(gender, gender),
        location=info.get("location") or None,
        description=info.get("description") or None,
        followers=_count(info.get("followers_count"), path, None, "user.followers_count"),
    )


def load_weibo_crawler_dir(root: PathLike, *, now: dt.datetime | None = None) -> list[User]:
    """Every ``{uid}.json`` under ``root`` (the crawler's ``weibo/{uid}/{uid}.json`` layout), sorted by path;
    users with no posts are skipped, as the dataset construction skips them."""
    users = []
    for p in sorted(Path(root).rglob("*.json")):
        if p.stem.isdigit():
            user = load_weibo_crawler_json(p, now=now, allow_empty_history=True)
            if user.history:
                users.append(user)
    return users


def _csv_post(
    row: Mapping[str, str],
    line: int,
    path: PathLike,
    now: dt.datetime | None,
    user_id: str,
    screen_name: str | None,
    prefix: str = "",
) -> Post:
    p = prefix
    pid = _need(row, [p + "id"], path, line).strip()  # the crawler appends "\t" to ids so Excel keeps them
    if not pid:
        raise DataFormatError("empty", file=path, line=line, field=p + "id")
    text = _need(row, [p + "正文", p + "微博正文"], path, line)
    date_col = next((c for c in (p + "完整日期", p + "发布时间", p + "日期") if row.get(c, "").strip()), None)
    if date_col is None:
        raise DataFormatError(
            "missing date (完整日期 / 发布时间 / 日期)", file=path, line=line, field=p + "完整日期"
        )
    created = _time(row[date_col].strip(), now, path, line, date_col)
    tags = _topics_list(row.get(p + "话题")) or extract_hashtags(text)
    counts = {
        k: _count(row.get(p + col, "").strip() or 0, path, line, p + col)
        for k, col in (("likes", "点赞数"), ("comments", "评论数"), ("reposts", "转发数"))
    }
    return Post(
        post_id=pid,
        user_id=user_id,
        text=text,
        created_at=created,
        hashtags=tags,
        screen_name=screen_name,
        **counts,
    )


def load_weibo_crawler_csv(
    path: PathLike,
    *,
    user_id: str | None = None,
    screen_name: str | None = None,
    now: dt.datetime | None = None,
    encoding: str = "utf-8-sig",
) -> list[Post]:
    """weibo-crawler's ``{screen_name or uid}/{uid}.csv`` (utf-8-sig; ``id, bid, 正文, …, 点赞数, 评论数, 转发数,
    话题, …, 完整日期, …``) → posts. The rows carry no user id: it defaults to the file name, the screen name
    to the folder name when that differs. Reposts (``是否原创`` False) get their original from the
    ``源微博…`` columns."""
    p = Path(path)
    uid = user_id if user_id is not None else p.stem
    name = (
        screen_name
        if screen_name is not None
        else (p.parent.name if p.parent.name not in ("", uid) else None)
    )
    posts = []
    for line, row in iter_csv_rows(p, encoding):
        post = _csv_post(row, line, p, now, uid, name)
        if row.get("是否原创", "").strip().lower() == "false" and row.get("源微博id", "").strip():
            rt = _csv_post(
                row,
                line,
                p,
                now,
                row.get("源用户id", "").strip(),
                row.get("源用户昵称") or None,
                prefix="源微博",
            )
            post.retweet = rt
        posts.append(post)
    return posts


def load_weibo_search_csv(
    path: PathLike, *, now: dt.datetime | None = None, encoding: str = "utf-8-sig"
) -> list[Post]:
    """weibo-search's ``{keyword}.csv`` (``id, bid, user_id, 用户昵称, 微博正文, …, 话题, 转发数, 评论数, 点赞数,
    发布时间, …, retweet_id``) → posts. A repost's original is a separate row that ``retweet_id`` names; when
    it is in the file it is also attached as ``retweet``."""
    p = Path(path)
    posts, retweet_of = [], {}
    for line, row in iter_csv_rows(p, encoding):
        uid = _need(row, ["user_id"], p, line).strip()
        post = _csv_post(row, line, p, now, uid, row.get("用户昵称") or None)
        if row.get("retweet_id", "").strip():
            retweet_of[len(posts)] = row["retweet_id"].strip()
        posts.append(post)
    by_id = {post.post_id: post for post in posts}
    for i, rid in retweet_of.items():
        if rid in by_id and rid != posts[i].post_id:
            posts[i].retweet = by_id[rid]
    return posts


@dataclass
class PostsCsv:
    """Topics (one per hashtag), users (all their posts as history) and responses (each hashtagged post
    is a response to each of its hashtags' topics; unlabelled). Topic ``news`` and ``category`` are
    unknown in such a file and left empty."""

    topics: list[Topic]
    users: list[User]
    responses: list[Response]


def load_posts_csv(
    path: PathLike,
    *,
    encoding: str = "auto",
    user_col: str = "userid",
    text_col: str = "text",
    id_col: str | None = None,
    time_col: str | None = None,
    now: dt.datetime | None = None,
    torn_tail: str = "error",
    default_time: str = "",
) -> PostsCsv:
    """A CSV of posts with at least ``userid,text`` (hashtags inline as ``#…#``), as Chinese research dumps
    ship them, usually in GB18030.

    ``encoding="auto"`` (default) takes the first *strict* decode of UTF-8 (with or without BOM) and GB18030,
    so a UTF-8 file is never read as GB18030 mojibake (or the reverse); name an encoding to insist on it.
    A file cut off mid-row raises (see ``torn_tail``: "error", "drop" or "keep"), naming file and line.
    Post ids come from ``id_col`` if given, else ``"{file stem}-L{line}"``; times from ``time_col`` (any form
    :func:`parse_weibo_time` reads), else ``default_time``. Users and topics are in first-appearance order.
    """
    return _merge_posts(
        [path],
        encoding=encoding,
        user_col=user_col,
        text_col=text_col,
        id_col=id_col,
        time_col=time_col,
        now=now,
        torn_tail=torn_tail,
        times=[default_time],
    )


_DAY_IN_NAME = re.compile(r"(?<!\d)(\d{4})[-_.]?(\d{2})[-_.]?(\d{2})(?!\d)")


def day_from_filename(path: PathLike) -> str:
    """``"YYYY-MM-DD"`` from a file name holding a date (``2020-01-23.csv``, ``weibo_20200123.csv``,
    ``2020_01_23.csv``); a :class:`DataFormatError` naming the file when there is none or it is no real date."""
    m = _DAY_IN_NAME.search(Path(path).stem)
    if m is None:
        raise DataFormatError(
            "no date (YYYY-MM-DD or YYYYMMDD) in the file name; pass days= explicitly", file=path
        )
    try:
        return dt.date(int(m[1]), int(m[2]), int(m[3])).isoformat()
    except ValueError:
        raise DataFormatError(f"{m[0]!r} in the file name is not a date", file=path) from None


def load_daily_posts(
    source: PathLike | Iterable[PathLike],
    *,
    pattern: str = "*.csv",
    days: Sequence[str] | None = None,
    encoding: str = "auto",
    user_col: str = "userid",
    text_col: str = "text",
    id_col: str | None = None,
    time_col: str | None = None,
    now: dt.datetime | None = None,
    torn_tail: str = "error",
) -> PostsCsv:
    """Daily ``userid,text`` exports (one CSV per day, the day in the file name) merged into one dataset:
    each user is *one* :class:`User` whose history holds their posts of every day, in day order; each hashtag
    is one topic across days. ``source`` is a folder (files matching ``pattern``, sorted by day) or a list
    of files.

    Without ``time_col`` a post's ``created_at`` is its file's day (``days[i]`` for the i-th file, else
    :func:`day_from_filename`), so crowds can be split per day later. Every file is checked like
    :func:`load_posts_csv` (strict encoding, cut-off rows, short rows), and errors name the file and line.
    """
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        files = sorted(Path(source).glob(pattern))
        if not files:
            raise DataFormatError(f"no file matches {pattern!r}", file=source)
    elif isinstance(source, (str, Path)):
        files = [Path(source)]
    else:
        files = [Path(f) for f in source]
    if days is not None and len(days) != len(files):
        raise ValueError(f"{len(days)} days for {len(files)} files")
    day_of = list(days) if days is not None else [day_from_filename(f) for f in files]
    order = sorted(range(len(files)), key=lambda i: (day_of[i], str(files[i])))
    return _merge_posts(
        [files[i] for i in order],
        encoding=encoding,
        user_col=user_col,
        text_col=text_col,
        id_col=id_col,
        time_col=time_col,
        now=now,
        torn_tail=torn_tail,
        times=[day_of[i] for i in order],
    )


def _merge_posts(
    paths: Sequence[PathLike],
    *,
    encoding: str,
    user_col: str,
    text_col: str,
    id_col: str | None,
    time_col: str | None,
    now: dt.datetime | None,
    torn_tail: str,
    times: Sequence[str],
) -> PostsCsv:
    topics: dict[str, Topic] = {}
    users: dict[str, User] = {}
    responses: list[Response] = []
    for path, default_time in zip(paths, times, strict=True):
        p = Path(path)
        for line, row in iter_csv_rows(p, encoding, torn_tail):
            uid = _need(row, [user_col], p, line).strip()
            if not uid:
                raise DataFormatError("empty", file=p, line=line, field=user_col)
            text = _need(row, [text_col], p, line)
            pid = _need(row, [id_col], p, line).strip() if id_col else f"{p.stem}-L{line}"
            created = (
                _time(_need(row, [time_col], p, line).strip(), now, p, line, time_col)
                if time_col
                else default_time
            )
            post = Post(
                post_id=pid, user_id=uid, text=text, created_at=created, hashtags=extract_hashtags(text)
            )
            users.setdefault(uid, User(user_id=uid, screen_name=uid, history=[])).history.append(post)
            for tag in post.hashtags:
                tid = topic_id_for(tag)
                if tid not in topics:
                    topics[tid] = Topic(topic_id=tid, hashtag=tag, news="", category="", time=created)
                responses.append(Response(topic_id=tid, post=post, sentiment=""))
    return PostsCsv(list(topics.values()), list(users.values()), responses)
