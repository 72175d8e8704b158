"""A local Weibo: a real HTTP server on 127.0.0.1 that serves an embedded ``World`` in the mobile API's shapes.

Offline, the crawler is tested and taught against this server with the same code that talks to m.weibo.cn.
It renders what the real site makes hard (docs/formats.md#mblog-json): HTML ``mblog.text`` with ``span.surl-text`` topic
links, emoticon images and link cards; counts sometimes as "4.0824万" strings; ``created_at`` in the API's
``"Sat Dec 28 20:00:00 +0800 2019"`` form or relative to the server's clock ("3分钟前", "昨天 20:15", which the
``Date`` header lets a client resolve); reposts nested in ``retweeted_status``; long posts cut with a 全文
link and served whole by ``/statuses/extend``; grouped and non-post cards; ``ok: 0`` past the last page;
hotflow comments chained by ``max_id``. Every rendering is exact (a count becomes "1.2万" only when that
is its value), so a crawled post can be compared field by field with the world's.

How the world maps onto Weibo (a mock-only convention, documented because a test relies on it):
each topic has a lead post ``{topic_id}m`` by a verified media account ``media{k}`` with text
``#hashtag#news``; the hashtag search lists the lead post first and then the topic's replies; the lead post's
hotflow comments are the same replies (comment id ``{post_id}c``); ``cardlistInfo`` of the search carries the
topic's 导语 (``desc``), ``category`` and ``created_at``.

Faults (``FaultConfig``) are drawn per request from ``(seed, url, n-th request of that url)``, so a crawl sees
the same faults every time, whatever it was interrupted by. Two lasting states start after a number of requests
and hold until the test assigns new faults (``srv.faults = FaultConfig()``: a fresh cookie, a lifted ban): an
expired login (``{"ok": -100}`` or a 302 to the login page) and a ban (418 or the captcha page on every request).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import hashlib
import html
import json
import random
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from socialalign_lib.data.schema import Post, Topic, User

from .parse import CHINA_TZ

_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_EMOTICON = re.compile(r"\[[^\[\]\s#@]{1,8}\]")  # Weibo emoticon names (e.g. [允悲]) never hold # or @
MEDIA_ACCOUNTS = ["人民日报", "央视新闻", "新京报", "澎湃新闻", "中国新闻网", "环球时报", "头条新闻", "财经网"]
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
        tokens.append(("text", text[pos:m.start()]))
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
            out.append(f'<a href="https://m.weibo.cn/search?containerid={q}&isnewpage=1">'
                       f'<span class="surl-text">{html.escape(tok, quote=False)}</span></a>')
        elif tok == "\n":
            out.append("<br />")
        elif tok == "网页链接":
            out.append('<a data-url="http://t.cn/A6mock" href="https://m.weibo.cn/sinaurl?u=http%3A%2F%2Fexample.com">'
                       '<img style="" src="https://h5.sinaimg.cn/upload/2015/09/25/3/timeline_card_small_web_default.png">'
                       '<span class="surl-text">网页链接</span></a>')
        elif tok.startswith("@"):
            out.append(f"<a href='https://m.weibo.cn/n/{quote(tok[1:])}'>{html.escape(tok, quote=False)}</a>")
        else:
            alt = html.escape(tok, quote=True)
            out.append(f'<span class="url-icon"><img alt="{alt}" src="https://h5.sinaimg.cn/m/emoticon/icon/default/'
                       f'{hashlib.md5(tok.encode()).hexdigest()[:8]}.png" style="width:1em; height:1em;" /></span>')
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
    return {"id": user_id, "screen_name": screen_name, "verified": verified, "verified_type": 3 if verified else -1,
            "profile_image_url": f"https://tvax1.sinaimg.cn/crop.0.0.180.180.180/{_bid(user_id)}.jpg",
            "profile_url": f"https://m.weibo.cn/u/{user_id}"}


def render_mblog(post: Post, now: dt.datetime, seed: int = 0, long_text_chars: int | None = None,
                 verified: bool = False) -> dict[str, Any]:
    """A ``Post`` → an ``mblog`` object (what a ``card_type: 9`` card holds)."""
    rng = _rng(seed, "post", post.post_id, post.user_id)
    text, tags = post.text, post.hashtags
    long = long_text_chars is not None and len(text) > long_text_chars
    if long:
        cut = text[:long_text_chars]
        body = render_text(cut, [t for t in tags if f"#{t}#" in cut]) + f'...<a href="/status/{post.post_id}">全文</a>'
    else:
        body = render_text(text, tags)
    mblog: dict[str, Any] = {
        "id": post.post_id, "mid": post.post_id, "bid": _bid(post.post_id), "mblogtype": 0,
        "created_at": format_weibo_time(post.created_at, now, rng), "text": body,
        "source": rng.choice(_SOURCES), "user": _user_obj(post.user_id, post.screen_name, verified or post.user_id.startswith("media")),
        "reposts_count": format_count(post.reposts, rng), "comments_count": format_count(post.comments, rng),
        "attitudes_count": format_count(post.likes, rng), "isLongText": long, "pic_num": 0, "edit_count": 0,
    }
    if post.retweet is not None:
        mblog["retweeted_status"] = render_mblog(post.retweet, now, seed, long_text_chars)
    return mblog


# --- faults -------------------------------------------------------------------------------------------------

FAULT_KINDS = ("500", "502", "503", "418", "429", "slow", "malformed", "truncated", "empty")
LOGIN_EXPIRY = ("ok-100", "302")
BANS = ("418", "captcha")
LOGIN_URL = "https://passport.weibo.cn/signin/welcome"
VISITOR_PAGE = ("<!DOCTYPE html><html><head><title>Sina Visitor System</title></head>"
                "<body>验证码</body></html>").encode()


@dataclass
class FaultConfig:
    """What goes wrong, how often. ``rate`` is the share of requests that get a fault, drawn from ``mix``.

    ``max_consecutive`` caps the faults in a row for one URL (then it is served), so a client with more
    retries than that always gets through and a test can demand that nothing is lost; None = no cap.
    ``slow`` holds the response for ``slow_s`` (longer than the client's timeout, it is a timeout);
    ``malformed`` is a 200 with cut JSON or the HTML "visitor system" page; ``truncated`` promises a
    Content-Length and closes the connection half-way; ``empty`` (not in the default mix) is Weibo's transient
    ``{"ok": 0}``, the very answer that ends a listing, given for a page that exists.

    From request number ``login_expires_after`` on (counted over the whole server), every request gets the
    expired-login answer ``login_expiry``: ``"ok-100"`` (HTTP 200 ``{"ok": -100, "url": …}``) or ``"302"`` (a
    redirect to the login page). From request number ``banned_after`` on, every request gets ``ban``:
    ``"418"`` or ``"captcha"`` (the visitor-system page with HTTP 200).
    """

    rate: float = 0.0
    mix: dict[str, float] = field(default_factory=lambda: {"500": 1.0, "502": 0.5, "503": 1.5, "418": 1.0, "429": 1.5,
                                                            "slow": 0.5, "malformed": 1.5, "truncated": 1.0})
    retry_after_s: int = 1
    slow_s: float = 2.0
    max_consecutive: int | None = 3
    seed: int = 0
    login_expires_after: int | None = None
    login_expiry: str = "ok-100"
    banned_after: int | None = None
    ban: str = "418"

    def __post_init__(self) -> None:
        unknown = set(self.mix) - set(FAULT_KINDS)
        if unknown or not 0.0 <= self.rate <= 1.0 or (self.rate > 0 and not any(w > 0 for w in self.mix.values())):
            raise ValueError(f"FaultConfig: rate must be in [0, 1] and mix a positive weight per kind in {FAULT_KINDS}, "
                             f"got rate={self.rate}, mix={self.mix}")
        if self.login_expiry not in LOGIN_EXPIRY or self.ban not in BANS:
            raise ValueError(f"FaultConfig: login_expiry must be one of {LOGIN_EXPIRY} and ban one of {BANS}, "
                             f"got {self.login_expiry!r}, {self.ban!r}")

    def lasting(self, n_served: int) -> str | None:
        """The lasting state for the server's ``n_served``-th request: "login:<how>", "ban:<how>" or None."""
        if self.login_expires_after is not None and n_served >= self.login_expires_after:
            return f"login:{self.login_expiry}"
        if self.banned_after is not None and n_served >= self.banned_after:
            return f"ban:{self.ban}"
        return None

    def draw(self, key: str, n: int) -> str | None:
        """The fault (or None) for the ``n``-th request of ``key``."""
        if self.rate <= 0:
            return None
        rng = _rng(self.seed, "fault", key, n)
        if rng.random() >= self.rate:
            return None
        kinds = [k for k, w in self.mix.items() if w > 0]
        return rng.choices(kinds, weights=[self.mix[k] for k in kinds])[0]


# --- the server ---------------------------------------------------------------------------------------------


@dataclass
class _TopicEntry:
    topic: Topic
    lead: Post
    replies: list[Post]


class MockWeiboServer:
    """``with MockWeiboServer(world, FaultConfig(rate=0.3)) as srv: crawl(CrawlConfig(base_url=srv.base_url))``.

    ``stats`` counts requests per endpoint and faults per kind; ``events`` lists ``(endpoint, fault or "ok")``
    per request; ``cookie_requests`` counts requests that carried a Cookie header (its value is never kept).
    ``faults`` may be replaced between crawls (a fresh login, a lifted ban).
    """

    def __init__(self, world: Any, faults: FaultConfig | None = None, *, page_size: int = 10, comment_page_size: int = 5,
                 long_text_chars: int | None = 70, now: dt.datetime | None = None, seed: int = 0,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.faults = faults or FaultConfig()
        self.page_size, self.comment_page_size = page_size, comment_page_size
        self.long_text_chars, self.seed = long_text_chars, seed
        self.host, self.port = host, port
        self._lock = threading.Lock()
        self._attempts: Counter = Counter()
        self._streak: Counter = Counter()
        self.stats: Counter = Counter()
        self.events: list[tuple[str, str]] = []
        self.cookie_requests = 0
        self._index(world)
        self.now = now or self._default_now()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- the world as Weibo sees it ------------------------------------------------------------------

    def _index(self, world: Any) -> None:
        self.users: dict[str, User] = {u.user_id: u for u in world.users}
        replies: dict[str, list[Post]] = {}
        for r in world.responses:
            replies.setdefault(r.topic_id, []).append(r.post)
        self.topics: dict[str, _TopicEntry] = {}
        self.leads: dict[str, _TopicEntry] = {}
        self.media: dict[str, list[Post]] = {}
        for t in world.topics:
            entry = _TopicEntry(t, self.lead_post(t, len(replies.get(t.topic_id, []))), replies.get(t.topic_id, []))
            self.topics[t.hashtag] = entry
            self.leads[entry.lead.post_id] = entry
            self.media.setdefault(entry.lead.user_id, []).append(entry.lead)
        self.posts: dict[str, Post] = {}
        for post in [e.lead for e in self.topics.values()] + [p for e in self.topics.values() for p in e.replies] + \
                [p for u in self.users.values() for p in u.history]:
            self.posts[post.post_id] = post
            if post.retweet is not None:
                self.posts.setdefault(post.retweet.post_id, post.retweet)

    def _default_now(self) -> dt.datetime:
        """20 minutes after the newest post, so the latest replies render as "N分钟前", "N小时前", "今天 HH:MM"."""
        latest = max(p.created_at for p in self.posts.values())
        return dt.datetime.fromisoformat(latest) + dt.timedelta(minutes=20)

    @staticmethod
    def lead_post(topic: Topic, n_replies: int) -> Post:
        """The news post that opens a topic: ``{topic_id}m`` by media account ``media{k}``, text ``#tag#news``."""
        k = int(hashlib.md5(topic.topic_id.encode()).hexdigest(), 16) % len(MEDIA_ACCOUNTS)
        rng = _rng("lead", topic.topic_id)
        return Post(f"{topic.topic_id}m", f"media{k}", f"#{topic.hashtag}#{topic.news}", topic.time, hashtags=[topic.hashtag],
                    likes=rng.randint(2_000, 300_000), reposts=rng.randint(50, 20_000), comments=n_replies,
                    screen_name=MEDIA_ACCOUNTS[k])

    @staticmethod
    def comment_of(post: Post) -> Post:
        """The comment a reply becomes under the lead post (what a crawler should read back)."""
        return Post(f"{post.post_id}c", post.user_id, post.text, post.created_at, hashtags=list(post.hashtags),
                    likes=post.likes, screen_name=post.screen_name)

    def _mblog(self, post: Post) -> dict[str, Any]:
        return render_mblog(post, self.now, self.seed, self.long_text_chars)

    def _cards(self, posts: list[Post], key: str) -> list[dict[str, Any]]:
        cards: list[dict[str, Any]] = []
        for post in posts:
            card = {"card_type": 9, "itemid": f"{key}_-_{post.post_id}", "scheme": f"https://m.weibo.cn/status/{_bid(post.post_id)}",
                    "mblog": self._mblog(post)}
            cards.append({"card_type": 11, "card_group": [card]} if _rng(self.seed, "group", post.post_id).random() < 0.2 else card)
        return cards

    @staticmethod
    def _empty(msg: str = "这里还没有内容") -> dict[str, Any]:
        return {"ok": 0, "msg": msg, "data": {"cards": []}}

    def _page(self, items: list[Any], page: int, size: int) -> list[Any]:
        return items[(page - 1) * size: page * size] if page >= 1 else []

    def route(self, path: str, q: dict[str, str]) -> dict[str, Any] | None:
        """The JSON body for a request, or None for 404."""
        if path == "/api/container/getIndex":
            cid = q.get("containerid", "")
            page = int(q.get("page") or 1)
            if cid.startswith("100505"):
                return self._profile(cid[6:])
            if cid.startswith("230283") and cid.endswith("_-_INFO"):
                return self._info(cid[6:-7])
            if cid.startswith("230413"):
                return self._timeline(cid[6:], page, cid)
            if cid.startswith("100103"):
                inner = dict(parse_qs(cid[6:]).items())
                return self._search((inner.get("q") or [""])[0].strip("#"), page, cid)
            return self._empty()
        if path == "/comments/hotflow":
            return self._hotflow(q.get("mid") or q.get("id", ""), int(q.get("max_id") or 0))
        if path == "/statuses/extend":
            post = self.posts.get(q.get("id", ""))
            if post is None:
                return {"ok": 0, "msg": "该微博不存在"}
            return {"ok": 1, "data": {"ok": 1, "longTextContent": render_text(post.text, post.hashtags),
                                      "reposts_count": post.reposts, "comments_count": post.comments,
                                      "attitudes_count": post.likes}}
        if path == "/":
            return {"ok": 1, "msg": "m.weibo.cn (mock)"}
        return None

    def _profile(self, uid: str) -> dict[str, Any]:
        user = self.users.get(uid)
        if user is None and uid in self.media:
            name = self.media[uid][0].screen_name
            info = {**_user_obj(uid, name, True), "statuses_count": len(self.media[uid]), "followers_count": "1.2亿",
                    "follow_count": 3000, "description": f"{name}官方微博", "gender": "m", "verified_reason": f"{name}官方微博"}
            return {"ok": 1, "data": {"userInfo": info}}
        if user is None:
            return {"ok": 0, "msg": "用户不存在"}
        rng = _rng(self.seed, "user", uid)
        info = {**_user_obj(uid, user.screen_name, False), "statuses_count": len(user.history),
                "followers_count": format_count(user.followers, rng), "follow_count": rng.randint(10, 900),
                "description": user.description or "", "gender": {"女": "f", "男": "m"}.get(user.gender or "", "n"),
                "urank": rng.randint(1, 40), "mbrank": rng.randint(0, 7), "close_blue_v": False}
        return {"ok": 1, "data": {"userInfo": info, "fans_scheme": "", "follow_scheme": ""}}

    def _info(self, uid: str) -> dict[str, Any]:
        user = self.users.get(uid)
        if user is None:
            return {"ok": 0, "msg": "用户不存在"}
        group = [{"card_type": 41, "item_name": "注册时间", "item_content": "2015-06-01"}]
        if user.location:
            group[:0] = [{"card_type": 41, "item_name": "所在地", "item_content": user.location},
                         {"card_type": 41, "item_name": "IP属地", "item_content": user.location}]
        return {"ok": 1, "data": {"cards": [{"card_type": 11, "card_group": [{"card_type": 41, "item_name": "昵称",
                                                                               "item_content": user.screen_name}]},
                                            {"card_type": 11, "card_group": group}]}}

    def _timeline(self, uid: str, page: int, cid: str) -> dict[str, Any]:
        posts = self.users[uid].history if uid in self.users else self.media.get(uid, [])
        newest_first = sorted(posts, key=lambda p: (p.created_at, p.post_id), reverse=True)
        chunk = self._page(newest_first, page, self.page_size)
        if not chunk:
            return self._empty()
        cards = self._cards(chunk, cid)
        if page == 1:
            cards.insert(0, {"card_type": 11, "card_group": [{"card_type": 58, "desc": "以下为近期微博"}]})
        return {"ok": 1, "data": {"cardlistInfo": {"containerid": cid, "v_p": 42, "total": len(posts), "page": page + 1,
                                                   "since_id": None},
                                  "cards": cards, "scheme": "", "showAppTips": 0}}

    def _search(self, tag: str, page: int, cid: str) -> dict[str, Any]:
        entry = self.topics.get(tag)
        if entry is None:
            return self._empty("抱歉，未找到相关结果")
        posts = [entry.lead] + entry.replies
        chunk = self._page(posts, page, self.page_size)
        if not chunk:
            return self._empty()
        t = entry.topic
        info = {"containerid": cid, "v_p": 42, "title_top": f"#{t.hashtag}#", "desc": t.news, "category": t.category,
                "created_at": format_weibo_time(t.time, self.now), "total": len(posts),
                "page": page + 1 if page * self.page_size < len(posts) else None}
        cards = self._cards(chunk, cid)
        if page == 1:
            cards.append({"card_type": 11, "card_group": [{"card_type": 17, "title": "相关搜索",
                                                           "group": [{"title_sub": f"{t.hashtag} 最新"}]}]})
        return {"ok": 1, "data": {"cardlistInfo": info, "cards": cards}}

    def _hotflow(self, mid: str, max_id: int) -> dict[str, Any]:
        entry = self.leads.get(mid)
        if entry is None or not entry.replies:
            return {"ok": 0, "msg": "快来发表你的评论吧"}
        offset = max_id - _MAX_ID_BASE if max_id else 0
        chunk = entry.replies[offset: offset + self.comment_page_size]
        if offset < 0 or not chunk:
            return {"ok": 0, "msg": "快来发表你的评论吧"}
        end = offset + len(chunk)
        data = []
        for post in chunk:
            c = self.comment_of(post)
            data.append({"id": c.post_id, "bid": _bid(c.post_id), "rootid": c.post_id, "floor_number": 0,
                         "created_at": format_weibo_time(c.created_at, self.now, _rng(self.seed, "comment", c.post_id)),
                         "text": render_text(c.text, c.hashtags), "like_count": c.likes,
                         "user": {**_user_obj(c.user_id, c.screen_name, False), "avatar_hd": ""},
                         "comments": False, "pic": None, "source": "来自" + (self.users[c.user_id].location or "")
                         if c.user_id in self.users else ""})
        return {"ok": 1, "data": {"data": data, "total_number": len(entry.replies),
                                  "max_id": _MAX_ID_BASE + end if end < len(entry.replies) else 0, "max_id_type": 0}}

    # --- HTTP ----------------------------------------------------------------------------------------

    def _decide(self, endpoint: str, key: str, has_cookie: bool) -> str | None:
        with self._lock:
            n = self._attempts[key]
            self._attempts[key] += 1
            cap = self.faults.max_consecutive
            fault = self.faults.lasting(self.stats["requests"])
            if fault is None:
                fault = None if cap is not None and self._streak[key] >= cap else self.faults.draw(key, n)
                self._streak[key] = self._streak[key] + 1 if fault else 0
            self.stats["requests"] += 1
            self.stats[f"endpoint:{endpoint}"] += 1
            self.stats[f"fault:{fault or 'ok'}"] += 1
            self.events.append((endpoint, fault or "ok"))
            self.cookie_requests += has_cookie
            return fault

    def http_date(self) -> str:
        return email.utils.format_datetime(self.now.replace(tzinfo=CHINA_TZ).astimezone(dt.timezone.utc), usegmt=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        srv = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "mock-weibo/1.0"
            protocol_version = "HTTP/1.1"  # keep-alive, like the real site; every response has a Content-Length

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes; without this, Nagle + delayed ACK add 40 ms to each
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass  # quiet: a crawl is thousands of requests, and the test output should stay readable

            def date_time_string(self, timestamp: float | None = None) -> str:
                return srv.http_date()

            def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None,
                      declared: int | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body) if declared is None else declared))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._get()  # a broken pipe: the client gave up (timeout) before we answered

            def _get(self) -> None:
                url = urlsplit(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
                endpoint = _endpoint(url.path, q.get("containerid", ""))
                key = url.path + "?" + urlencode(sorted(q.items()))
                fault = srv._decide(endpoint, key, "cookie" in {h.lower() for h in self.headers})
                rng = _rng(srv.faults.seed, "body", key, srv._attempts[key])
                if fault in ("500", "502", "503"):
                    msg = {"500": "Internal Server Error", "502": "Bad Gateway", "503": "Service Unavailable"}[fault]
                    body = f"<html><body><h1>{fault} {msg}</h1><hr><center>nginx</center></body></html>".encode()
                    return self._send(int(fault), body, "text/html")
                if fault in ("418", "ban:418"):
                    return self._send(418, b"", "text/html")
                if fault == "ban:captcha":
                    return self._send(200, VISITOR_PAGE, "text/html; charset=utf-8")
                back = quote(f"https://m.weibo.cn{self.path}", safe="")
                if fault == "login:302":
                    return self._send(302, b"", "text/html", {"Location": f"{LOGIN_URL}?entry=mweibo&r={back}"})
                if fault == "login:ok-100":
                    body = json.dumps({"ok": -100, "url": f"{LOGIN_URL}?entry=mweibo&r={back}"}).encode()
                    return self._send(200, body, "application/json; charset=utf-8")
                if fault == "empty":
                    body = json.dumps(srv._empty(), ensure_ascii=False).encode("utf-8")
                    return self._send(200, body, "application/json; charset=utf-8")
                if fault == "429":
                    body = json.dumps({"ok": 0, "msg": "请求过于频繁，歇歇吧"}, ensure_ascii=False).encode()
                    return self._send(429, body, "application/json", {"Retry-After": str(srv.faults.retry_after_s)})
                payload = srv.route(url.path, q)
                if payload is None:
                    return self._send(404, b'{"ok":0,"msg":"not found"}', "application/json")
                body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
                if fault == "slow":
                    time.sleep(srv.faults.slow_s)
                elif fault == "malformed":
                    if rng.random() < 0.5:
                        return self._send(200, body[: max(1, len(body) // 3)], "application/json; charset=utf-8")
                    return self._send(200, VISITOR_PAGE, "text/html; charset=utf-8")
                elif fault == "truncated":
                    self.close_connection = True
                    return self._send(200, body[: len(body) // 2], "application/json; charset=utf-8", declared=len(body))
                self._send(200, body, "application/json; charset=utf-8")

        return Handler

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("MockWeiboServer is not running; use it as a context manager or call start()")
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    def start(self) -> MockWeiboServer:
        self._httpd = ThreadingHTTPServer((self.host, self.port), self._handler())
        self._httpd.daemon_threads = True
        self._httpd.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="mock-weibo", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._httpd = None

    def __enter__(self) -> MockWeiboServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fault_counts(self) -> dict[str, int]:
        """Requests by what the server did: "ok" or the fault kind."""
        return {k.split(":", 1)[1]: v for k, v in sorted(self.stats.items()) if k.startswith("fault:")}


def _endpoint(path: str, cid: str) -> str:
    if path == "/api/container/getIndex":
        for prefix, name in (("100505", "profile"), ("230283", "info"), ("230413", "timeline"), ("100103", "search")):
            if cid.startswith(prefix):
                return name
    return {"/comments/hotflow": "comments", "/statuses/extend": "long_text"}.get(path, path)
