"""How the mock Weibo renders a post: the mobile API's ``mblog`` JSON, with what the real site makes hard.

HTML ``mblog.text`` with ``span.surl-text`` topic links, emoticon images and link cards
(docs/formats.md#mblog-json); counts sometimes as "4.0824万" strings; ``created_at`` in the API's
``"Sat Dec 28 20:00:00 +0800 2019"`` form or relative to the server's clock ("3分钟前", "昨天 20:15", which the
``Date`` header lets a client resolve); reposts nested in ``retweeted_status``; long posts cut with a 全文 link.
Every rendering is exact (a count becomes "1.2万" only when that is its value), so a crawled post can be compared
field by field with the world's. Module functions, so the parsers can be property-tested against them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import random
import re
from typing import Any
from urllib.parse import quote

from socialalign_lib.data.schema import Post

_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_EMOTICON = re.compile(r"\[[^\[\]\s#@]{1,8}\]")  # Weibo emoticon names (e.g. [允悲]) never hold # or @
MEDIA_ACCOUNTS = [
    "人民日报",
    "央视新闻",
    "新京报",
    "澎湃新闻",
    "中国新闻网",
    "环球时报",
    "头条新闻",
    "财经网",
]
_SOURCES = ["iPhone客户端", "Android", "微博 weibo.com", "HUAWEI Mate 60 Pro", "小米14", "微博轻享版"]
_MAX_ID_BASE = 138_417_718_000_000


def _rng(*parts: object) -> random.Random:
    """A stream for one rendering decision, independent of request order (``hash()`` is salted per process)."""
    return random.Random(int.from_bytes(hashlib.sha256(repr(parts).encode("utf-8")).digest()[:8], "big"))


# --- rendering (module functions so the parsers can be property-tested against them) ----------------------


def format_weibo_time(iso: str, now: dt.datetime, rng: random.Random | None = None) -> str:
    """``"YYYY-MM-DDTHH:MM:SS"`` → the absolute API form, or (when ``rng`` picks it and it is exact) a
    relative form as the site shows recent posts: 刚刚, N分钟前, N小时前, 今天 HH:MM, 昨天 HH:MM."""
    t = dt.datetime.fromisoformat(iso)
    options: list[str] = []
    if rng is not None:
        delta = now - t
        secs = delta.total_seconds()
        if secs == 0:
            options.append("刚刚")
        if 0 < secs < 3600 and secs % 60 == 0:
            options.append(f"{int(secs // 60)}分钟前")
        if 3600 <= secs < 86400 and secs % 3600 == 0:
            options.append(f"{int(secs // 3600)}小时前")
        if secs >= 0 and t.second == 0 and t.date() == now.date():
            options.append(f"今天 {t:%H:%M}")
        if t.second == 0 and t.date() == now.date() - dt.timedelta(days=1):
            options.append(f"昨天 {t:%H:%M}")
        if options and rng.random() < 0.8:
            return rng.choice(options)
    return f"{_DAYS[t.weekday()]} {_MONTHS[t.month - 1]} {t.day:02d} {t:%H:%M:%S} +0800 {t.year}"


def format_count(n: int, rng: random.Random | None = None) -> int | str:
    """A count as the API may give it: an int, a digit string, or (from 10,000 on) an exact "x.xxxx万"."""
    if rng is None:
        return n
    r = rng.random()
    if n >= 10_000 and r < 0.6:
        value = f"{n / 10_000:.4f}".rstrip("0").rstrip(".")
        return f"{value}万"
    return str(n) if r > 0.85 else n


def render_text(text: str, hashtags: list[str] | tuple[str, ...] = ()) -> str:
    """Plain post text → ``mblog.text`` HTML. ``#tag#`` of the post's own hashtags become topic links (other
    '#' stay text, as the world's junk posts have them), ``[赞]`` becomes an emoticon image, ``@name`` a user
    link, 网页链接 a link card, newlines ``<br />``; everything else is escaped."""
    tokens: list[tuple[str, str]] = []  # (kind, text)
    pattern = [re.escape(f"#{h}#") for h in dict.fromkeys(hashtags) if h]
    pattern += [_EMOTICON.pattern, r"@[\w\-]{1,30}", "网页链接", "\n"]
    rx = re.compile("|".join(pattern))
    pos, used = 0, set()
    for m in rx.finditer(text):
        tokens.append(("text", text[pos : m.start()]))
        tok = m.group(0)
        if tok.startswith("#") and tok not in used:
            used.add(tok)
            tokens.append(("tag", tok))
        elif tok.startswith("#"):
            tokens.append(("text", tok))
        else:
            tokens.append(("special", tok))
        pos = m.end()
    tokens.append(("text", text[pos:]))
    out = []
    for kind, tok in tokens:
        if kind == "text":
            out.append(html.escape(tok, quote=False))
        elif kind == "tag":
            q = quote(f"231522type=1&t=10&q={tok}", safe="")
            out.append(
                f'<a href="https://m.weibo.cn/search?containerid={q}&isnewpage=1">'
                f'<span class="surl-text">{html.escape(tok, quote=False)}</span></a>'
            )
        elif tok == "\n":
            out.append("<br />")
        elif tok == "网页链接":
            out.append(
                '<a data-url="http://t.cn/A6mock" href="https://m.weibo.cn/sinaurl?u=http%3A%2F%2Fexample.com">'
                '<img style="" src="https://h5.sinaimg.cn/upload/2015/09/25/3/timeline_card_small_web_default.png">'
                '<span class="surl-text">网页链接</span></a>'
            )
        elif tok.startswith("@"):
            out.append(f"<a href='https://m.weibo.cn/n/{quote(tok[1:])}'>{html.escape(tok, quote=False)}</a>")
        else:
            alt = html.escape(tok, quote=True)
            out.append(
                f'<span class="url-icon"><img alt="{alt}" src="https://h5.sinaimg.cn/m/emoticon/icon/default/'
                f'{hashlib.md5(tok.encode()).hexdigest()[:8]}.png" style="width:1em; height:1em;" /></span>'
            )
    return "".join(out)


def _bid(post_id: str) -> str:
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    n = int(hashlib.md5(post_id.encode()).hexdigest()[:12], 16)
    out = ""
    while n:
        n, r = divmod(n, 62)
        out += alphabet[r]
    return out[:9]


def _user_obj(user_id: str, screen_name: str | None, verified: bool) -> dict[str, Any]:
    return {
        "id": user_id,
        "screen_name": screen_name,
        "verified": verified,
        "verified_type": 3 if verified else -1,
        "profile_image_url": f"https://tvax1.sinaimg.cn/crop.0.0.180.180.180/{_bid(user_id)}.jpg",
        "profile_url": f"https://m.weibo.cn/u/{user_id}",
    }


def render_mblog(
    post: Post, now: dt.datetime, seed: int = 0, long_text_chars: int | None = None, verified: bool = False
) -> dict[str, Any]:
    """A ``Post`` → an ``mblog`` object (what a ``card_type: 9`` card holds)."""
    rng = _rng(seed, "post", post.post_id, post.user_id)
    text, tags = post.text, post.hashtags
    long = long_text_chars is not None and len(text) > long_text_chars
    if long:
        cut = text[:long_text_chars]
        body = (
            render_text(cut, [t for t in tags if f"#{t}#" in cut])
            + f'...<a href="/status/{post.post_id}">全文</a>'
        )
    else:
        body = render_text(text, tags)
    mblog: dict[str, Any] = {
        "id": post.post_id,
        "mid": post.post_id,
        "bid": _bid(post.post_id),
        "mblogtype": 0,
        "created_at": format_weibo_time(post.created_at, now, rng),
        "text": body,
        "source": rng.choice(_SOURCES),
        "user": _user_obj(post.user_id, post.screen_name, verified or post.user_id.startswith("media")),
        "reposts_count": format_count(post.reposts, rng),
        "comments_count": format_count(post.comments, rng),
        "attitudes_count": format_count(post.likes, rng),
        "isLongText": long,
        "pic_num": 0,
        "edit_count": 0,
    }
    if post.retweet is not None:
        mblog["retweeted_status"] = render_mblog(post.retweet, now, seed, long_text_chars)
    return mblog
