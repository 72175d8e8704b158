"""Weibo mobile JSON → the project schema (docs/formats.md#mblog-json).

The API hands back what the page shows, not what a dataset needs: ``mblog.text`` is HTML whose topics sit in
``span.surl-text`` links and whose emoticons are ``<img alt="[赞]">``; counts are ints or display strings
("1.2万", "100万+", "3亿"); ``created_at`` is either ``"Sat Dec 28 20:00:00 +0800 2019"`` or relative to the
moment of the request ("3分钟前", "昨天 20:15"). These functions undo all of that so a crawled post compares
equal to the post it was rendered from. Times are naive China-time (UTC+8) ISO strings, like the world's.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from html.parser import HTMLParser
from typing import Any

from socialalign_lib.data.schema import Post, Topic
from socialalign_lib.data.text import HASHTAG

CHINA_TZ = dt.timezone(dt.timedelta(hours=8))
ISO_FORMAT = "%Y-%m-%dT%H:%M:%S"
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}
_GENDER = {"f": "女", "m": "男"}


class ParseError(ValueError):
    """A field of an API record could not be read; the message names the record and the field."""


# --- counts -------------------------------------------------------------------------------------------------

_UNITS = {"万": 10_000, "亿": 100_000_000}
_COUNT_RE = re.compile(r"^\s*([0-9][0-9,]*(?:\.[0-9]+)?)\s*([万亿]?)\s*\+?\s*$")
_ZERO_LABELS = {"", "转发", "评论", "赞", "点赞", "-"}


def parse_count(value: Any) -> int:
    """``551894`` / ``"1.2万"`` → 12000 / ``"100万+"`` → 1000000 / ``"3亿"`` / ``"1,234"`` / ``None`` → 0.

    Decimal arithmetic keeps ``"4.0824万"`` exact (40824), so a count rendered as a display string round-trips.
    The button labels Weibo shows instead of a zero ("转发", "评论", "赞") read as 0.
    """
    if value is None or isinstance(value, bool):
        return int(bool(value))
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    text = str(value).strip()
    if text in _ZERO_LABELS:
        return 0
    m = _COUNT_RE.match(text)
    if not m:
        raise ParseError(f"unreadable count {value!r}")
    try:
        number = Decimal(m.group(1).replace(",", ""))
    except InvalidOperation as err:  # pragma: no cover - the regex admits only decimals
        raise ParseError(f"unreadable count {value!r}") from err
    return int(number * _UNITS.get(m.group(2), 1))


# --- times --------------------------------------------------------------------------------------------------

_HM = r"(\d{1,2}):(\d{2})(?::(\d{2}))?"


def _as_china(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(CHINA_TZ).replace(tzinfo=None, microsecond=0)
    if now.tzinfo is not None:
        now = now.astimezone(CHINA_TZ).replace(tzinfo=None)
    return now.replace(microsecond=0)


def _at(day: dt.date, h: str, m: str, s: str | None) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, int(h), int(m), int(s or 0))


def parse_weibo_time(text: str, now: dt.datetime | None = None) -> str:
    """A Weibo ``created_at`` → ``"YYYY-MM-DDTHH:MM:SS"`` in China time.

    Relative forms are resolved against ``now`` (the crawler passes the response's ``Date`` header, the moment
    the server rendered "3分钟前"; aware datetimes are converted to UTC+8). Handles the API's absolute form
    ``"Sat Dec 28 20:00:00 +0800 2019"`` (any offset), 刚刚, N秒前, N分钟前, N小时前, N天前, 今天 HH:MM,
    昨天 [HH:MM], MM-DD [HH:MM], YYYY-MM-DD [HH:MM[:SS]], ISO, MM月DD日 HH:MM and YYYY年MM月DD日 HH:MM.
    """
    s = str(text).strip()
    ref = _as_china(now)
    parts = s.split()
    if len(parts) == 6 and parts[1] in _MONTHS and re.fullmatch(r"[+-]\d{4}", parts[4]):
        h, mi, se = (int(x) for x in parts[3].split(":"))
        sign = 1 if parts[4][0] == "+" else -1
        tz = dt.timezone(sign * dt.timedelta(hours=int(parts[4][1:3]), minutes=int(parts[4][3:5])))
        when = dt.datetime(int(parts[5]), _MONTHS[parts[1]], int(parts[2]), h, mi, se, tzinfo=tz)
        return when.astimezone(CHINA_TZ).strftime(ISO_FORMAT)
    if s == "刚刚":
        return ref.strftime(ISO_FORMAT)
    m = re.fullmatch(r"(\d+)\s*(秒|分钟|小时|天)前", s)
    if m:
        unit = {"秒": "seconds", "分钟": "minutes", "小时": "hours", "天": "days"}[m.group(2)]
        return (ref - dt.timedelta(**{unit: int(m.group(1))})).strftime(ISO_FORMAT)
    m = re.fullmatch(r"(今天|昨天|前天)\s*(?:" + _HM + r")?", s)
    if m:
        day = ref.date() - dt.timedelta(days={"今天": 0, "昨天": 1, "前天": 2}[m.group(1)])
        return _at(day, m.group(2) or "0", m.group(3) or "0", m.group(4)).strftime(ISO_FORMAT)
    m = re.fullmatch(r"(?:(\d{4})[-/年])?(\d{1,2})[-/月](\d{1,2})日?(?:[ T]+" + _HM + r")?", s)
    if m:
        year = int(m.group(1)) if m.group(1) else ref.year
        try:
            day = dt.date(year, int(m.group(2)), int(m.group(3)))
        except ValueError as err:
            raise ParseError(f"unreadable created_at {text!r}: {err}") from err
        return _at(day, m.group(4) or "0", m.group(5) or "0", m.group(6)).strftime(ISO_FORMAT)
    raise ParseError(f"unreadable created_at {text!r}")


# --- HTML text ----------------------------------------------------------------------------------------------


class _TextExtractor(HTMLParser):
    """Visible text of an ``mblog.text``: tags dropped, ``<br>`` → newline, emoticon ``<img alt>`` kept,
    topics collected from ``span.surl-text`` whose text is ``#…#`` (other surl-text spans are links)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hashtags: list[str] = []
        self._span_stack: list[int | None] = []  # start index in parts of an open surl-text span, else None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "br":
            self.parts.append("\n")
        elif tag == "img":
            alt = a.get("alt") or ""
            if re.fullmatch(r"\[[^\[\]]{1,8}\]", alt):
                self.parts.append(alt)
        elif tag == "span":
            classes = (a.get("class") or "").split()
            self._span_stack.append(len(self.parts) if "surl-text" in classes else None)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "span":
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._span_stack:
            start = self._span_stack.pop()
            if start is not None:
                inner = "".join(self.parts[start:]).strip()
                m = HASHTAG.fullmatch(inner)
                if m and m.group(1) not in self.hashtags:
                    self.hashtags.append(m.group(1))

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(html: str) -> tuple[str, list[str]]:
    """``mblog.text`` HTML → (plain text, hashtags without '#', in order of appearance)."""
    parser = _TextExtractor()
    parser.feed(html or "")
    parser.close()
    return "".join(parser.parts), parser.hashtags


# --- records ------------------------------------------------------------------------------------------------


def _user_fields(obj: dict[str, Any]) -> tuple[str, str | None]:
    user = obj.get("user") or {}
    uid = user.get("id")
    return ("" if uid is None else str(uid)), user.get("screen_name")


def is_verified(mblog_or_user: dict[str, Any]) -> bool:
    """Verified accounts (media, brands, officials) post the news; the crawl models the public around it."""
    user = mblog_or_user.get("user", mblog_or_user) or {}
    return bool(user.get("verified"))


def is_pinned(mblog: dict[str, Any]) -> bool:
    """A pinned post heads a timeline out of date order, so it must not stop a ``since`` cut-off."""
    return mblog.get("mblogtype") == 2 or bool(mblog.get("isTop"))


def mblog_to_post(mblog: dict[str, Any], now: dt.datetime | None = None) -> Post:
    """One ``mblog`` (card_type 9) → ``Post``; ``retweeted_status`` becomes the nested ``retweet``.

    ``now`` is the server's clock for relative times (see ``parse_weibo_time``). Hashtags are the post's own
    (those in its text), as the timeline crawler records them; a repost's original keeps its own.
    """
    try:
        pid = str(mblog["id"])
    except KeyError as err:
        raise ParseError(f"mblog without 'id': {str(mblog)[:120]}") from err
    try:
        text, tags = html_to_text(mblog.get("text", ""))
        retweet = None
        if isinstance(mblog.get("retweeted_status"), dict):
            retweet = mblog_to_post(mblog["retweeted_status"], now)
        uid, name = _user_fields(mblog)
        return Post(
            post_id=pid,
            user_id=uid,
            text=text,
            created_at=parse_weibo_time(mblog["created_at"], now),
            hashtags=tags,
            retweet=retweet,
            likes=parse_count(mblog.get("attitudes_count")),
            reposts=parse_count(mblog.get("reposts_count")),
            comments=parse_count(mblog.get("comments_count")),
            screen_name=name,
        )
    except (ParseError, KeyError, TypeError, ValueError) as err:
        raise ParseError(f"mblog {pid}: {err}") from err


def comment_to_post(comment: dict[str, Any], now: dt.datetime | None = None) -> Post:
    """A hotflow comment → ``Post`` (``likes`` = ``like_count``; comments carry no repost or reply counts)."""
    cid = str(comment.get("id", ""))
    try:
        text, tags = html_to_text(comment.get("text", ""))
        uid, name = _user_fields(comment)
        return Post(
            post_id=cid,
            user_id=uid,
            text=text,
            created_at=parse_weibo_time(comment["created_at"], now),
            hashtags=tags,
            likes=parse_count(comment.get("like_count")),
            screen_name=name,
        )
    except (ParseError, KeyError, TypeError, ValueError) as err:
        raise ParseError(f"comment {cid}: {err}") from err


def cards_to_mblogs(cards: list[Any]) -> list[dict[str, Any]]:
    """Posts of a card list: ``card_type 9`` holds an ``mblog``; ``card_type 11`` groups cards. Others
    (notices, "related searches", user cards) are skipped."""
    out: list[dict[str, Any]] = []
    for card in cards or []:
        if not isinstance(card, dict):
            continue
        if card.get("card_type") == 9 and isinstance(card.get("mblog"), dict):
            out.append(card["mblog"])
        elif card.get("card_type") == 11:
            out.extend(cards_to_mblogs(card.get("card_group") or []))
    return out


def user_profile(user_info: dict[str, Any], info_items: dict[str, str] | None = None) -> dict[str, Any]:
    """``data.userInfo`` (+ the INFO tab's ``{item_name: item_content}``) → ``User`` keyword fields.

    Gender "f"/"m" becomes 女/男, the schema's (and the world's) convention.
    """
    items = info_items or {}
    gender = user_info.get("gender")
    if user_info.get("id") is None:
        raise ParseError(f"userInfo without 'id': {str(user_info)[:120]}")
    return {
        "user_id": str(user_info["id"]),
        "screen_name": user_info.get("screen_name") or "",
        "gender": _GENDER.get(gender, gender),
        "location": items.get("所在地") or None,
        "description": user_info.get("description"),
        "followers": parse_count(user_info.get("followers_count")),
    }


def info_items(cards: list[Any]) -> dict[str, str]:
    """The INFO tab (``230283{uid}_-_INFO``): ``{item_name: item_content}`` from every card group."""
    out: dict[str, str] = {}
    for card in cards or []:
        for item in (card or {}).get("card_group") or []:
            if isinstance(item, dict) and item.get("item_name"):
                out.setdefault(str(item["item_name"]), str(item.get("item_content", "")))
    return out


def topic_from_search(hashtag: str, info: dict[str, Any], now: dt.datetime | None, topic_id: str) -> Topic:
    """The topic header of a hashtag search (``cardlistInfo``: ``desc`` = the 导语 lead, ``category``,
    ``created_at``). Fields the page does not give stay empty, so a live crawl still yields a usable Topic."""
    created = info.get("created_at")
    return Topic(
        topic_id=topic_id,
        hashtag=hashtag,
        news=str(info.get("desc") or ""),
        category=str(info.get("category") or ""),
        time=parse_weibo_time(created, now) if created else "",
    )
