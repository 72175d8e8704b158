"""The mock Weibo server: a real HTTP server on 127.0.0.1 serving an embedded ``World`` in the mobile API's shapes.

How the world maps onto Weibo (a mock-only convention, documented because a test relies on it):
each topic has a lead post ``{topic_id}m`` by a verified media account ``media{k}`` with text
``#hashtag#news``; the hashtag search lists the lead post first and then the topic's replies; the lead post's
hotflow comments are the same replies (comment id ``{post_id}c``); ``cardlistInfo`` of the search carries the
topic's 导语 (``desc``), ``category`` and ``created_at``. Grouped and non-post cards, ``ok: 0`` past the last page,
long texts served whole by ``/statuses/extend`` and hotflow comments chained by ``max_id`` are as on the real site.

One module of a little over 500 lines: the routes and the HTTP handler read and update the same per-server state
(attempt counts, lasting faults, statistics), so they stay together.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import hashlib
import json
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from socialalign_lib.data.schema import Post, Topic, User

from ..parse import CHINA_TZ
from .faults import LOGIN_URL, VISITOR_PAGE, FaultConfig
from .render import (
    _MAX_ID_BASE,
    MEDIA_ACCOUNTS,
    _bid,
    _rng,
    _user_obj,
    format_count,
    format_weibo_time,
    render_mblog,
    render_text,
)


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

    def __init__(
        self,
        world: Any,
        faults: FaultConfig | None = None,
        *,
        page_size: int = 10,
        comment_page_size: int = 5,
        long_text_chars: int | None = 70,
        now: dt.datetime | None = None,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
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
            entry = _TopicEntry(
                t, self.lead_post(t, len(replies.get(t.topic_id, []))), replies.get(t.topic_id, [])
            )
            self.topics[t.hashtag] = entry
            self.leads[entry.lead.post_id] = entry
            self.media.setdefault(entry.lead.user_id, []).append(entry.lead)
        self.posts: dict[str, Post] = {}
        for post in (
            [e.lead for e in self.topics.values()]
            + [p for e in self.topics.values() for p in e.replies]
            + [p for u in self.users.values() for p in u.history]
        ):
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
        return Post(
            f"{topic.topic_id}m",
            f"media{k}",
            f"#{topic.hashtag}#{topic.news}",
            topic.time,
            hashtags=[topic.hashtag],
            likes=rng.randint(2_000, 300_000),
            reposts=rng.randint(50, 20_000),
            comments=n_replies,
            screen_name=MEDIA_ACCOUNTS[k],
        )

    @staticmethod
    def comment_of(post: Post) -> Post:
        """The comment a reply becomes under the lead post (what a crawler should read back)."""
        return Post(
            f"{post.post_id}c",
            post.user_id,
            post.text,
            post.created_at,
            hashtags=list(post.hashtags),
            likes=post.likes,
            screen_name=post.screen_name,
        )

    def _mblog(self, post: Post) -> dict[str, Any]:
        return render_mblog(post, self.now, self.seed, self.long_text_chars)

    def _cards(self, posts: list[Post], key: str) -> list[dict[str, Any]]:
        cards: list[dict[str, Any]] = []
        for post in posts:
            card = {
                "card_type": 9,
                "itemid": f"{key}_-_{post.post_id}",
                "scheme": f"https://m.weibo.cn/status/{_bid(post.post_id)}",
                "mblog": self._mblog(post),
            }
            cards.append(
                {"card_type": 11, "card_group": [card]}
                if _rng(self.seed, "group", post.post_id).random() < 0.2
                else card
            )
        return cards

    @staticmethod
    def _empty(msg: str = "这里还没有内容") -> dict[str, Any]:
        return {"ok": 0, "msg": msg, "data": {"cards": []}}

    def _page(self, items: list[Any], page: int, size: int) -> list[Any]:
        return items[(page - 1) * size : page * size] if page >= 1 else []

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
            return {
                "ok": 1,
                "data": {
                    "ok": 1,
                    "longTextContent": render_text(post.text, post.hashtags),
                    "reposts_count": post.reposts,
                    "comments_count": post.comments,
                    "attitudes_count": post.likes,
                },
            }
        if path == "/":
            return {"ok": 1, "msg": "m.weibo.cn (mock)"}
        return None

    def _profile(self, uid: str) -> dict[str, Any]:
        user = self.users.get(uid)
        if user is None and uid in self.media:
            name = self.media[uid][0].screen_name
            info = {
                **_user_obj(uid, name, True),
                "statuses_count": len(self.media[uid]),
                "followers_count": "1.2亿",
                "follow_count": 3000,
                "description": f"{name}官方微博",
                "gender": "m",
                "verified_reason": f"{name}官方微博",
            }
            return {"ok": 1, "data": {"userInfo": info}}
        if user is None:
            return {"ok": 0, "msg": "用户不存在"}
        rng = _rng(self.seed, "user", uid)
        info = {
            **_user_obj(uid, user.screen_name, False),
            "statuses_count": len(user.history),
            "followers_count": format_count(user.followers, rng),
            "follow_count": rng.randint(10, 900),
            "description": user.description or "",
            "gender": {"女": "f", "男": "m"}.get(user.gender or "", "n"),
            "urank": rng.randint(1, 40),
            "mbrank": rng.randint(0, 7),
            "close_blue_v": False,
        }
        return {"ok": 1, "data": {"userInfo": info, "fans_scheme": "", "follow_scheme": ""}}

    def _info(self, uid: str) -> dict[str, Any]:
        user = self.users.get(uid)
        if user is None:
            return {"ok": 0, "msg": "用户不存在"}
        group = [{"card_type": 41, "item_name": "注册时间", "item_content": "2015-06-01"}]
        if user.location:
            group[:0] = [
                {"card_type": 41, "item_name": "所在地", "item_content": user.location},
                {"card_type": 41, "item_name": "IP属地", "item_content": user.location},
            ]
        return {
            "ok": 1,
            "data": {
                "cards": [
                    {
                        "card_type": 11,
                        "card_group": [
                            {"card_type": 41, "item_name": "昵称", "item_content": user.screen_name}
                        ],
                    },
                    {"card_type": 11, "card_group": group},
                ]
            },
        }

    def _timeline(self, uid: str, page: int, cid: str) -> dict[str, Any]:
        posts = self.users[uid].history if uid in self.users else self.media.get(uid, [])
        newest_first = sorted(posts, key=lambda p: (p.created_at, p.post_id), reverse=True)
        chunk = self._page(newest_first, page, self.page_size)
        if not chunk:
            return self._empty()
        cards = self._cards(chunk, cid)
        if page == 1:
            cards.insert(0, {"card_type": 11, "card_group": [{"card_type": 58, "desc": "以下为近期微博"}]})
        return {
            "ok": 1,
            "data": {
                "cardlistInfo": {
                    "containerid": cid,
                    "v_p": 42,
                    "total": len(posts),
                    "page": page + 1,
                    "since_id": None,
                },
                "cards": cards,
                "scheme": "",
                "showAppTips": 0,
            },
        }

    def _search(self, tag: str, page: int, cid: str) -> dict[str, Any]:
        entry = self.topics.get(tag)
        if entry is None:
            return self._empty("抱歉，未找到相关结果")
        posts = [entry.lead] + entry.replies
        chunk = self._page(posts, page, self.page_size)
        if not chunk:
            return self._empty()
        t = entry.topic
        info = {
            "containerid": cid,
            "v_p": 42,
            "title_top": f"#{t.hashtag}#",
            "desc": t.news,
            "category": t.category,
            "created_at": format_weibo_time(t.time, self.now),
            "total": len(posts),
            "page": page + 1 if page * self.page_size < len(posts) else None,
        }
        cards = self._cards(chunk, cid)
        if page == 1:
            cards.append(
                {
                    "card_type": 11,
                    "card_group": [
                        {"card_type": 17, "title": "相关搜索", "group": [{"title_sub": f"{t.hashtag} 最新"}]}
                    ],
                }
            )
        return {"ok": 1, "data": {"cardlistInfo": info, "cards": cards}}

    def _hotflow(self, mid: str, max_id: int) -> dict[str, Any]:
        entry = self.leads.get(mid)
        if entry is None or not entry.replies:
            return {"ok": 0, "msg": "快来发表你的评论吧"}
        offset = max_id - _MAX_ID_BASE if max_id else 0
        chunk = entry.replies[offset : offset + self.comment_page_size]
        if offset < 0 or not chunk:
            return {"ok": 0, "msg": "快来发表你的评论吧"}
        end = offset + len(chunk)
        data = []
        for post in chunk:
            c = self.comment_of(post)
            data.append(
                {
                    "id": c.post_id,
                    "bid": _bid(c.post_id),
                    "rootid": c.post_id,
                    "floor_number": 0,
                    "created_at": format_weibo_time(
                        c.created_at, self.now, _rng(self.seed, "comment", c.post_id)
                    ),
                    "text": render_text(c.text, c.hashtags),
                    "like_count": c.likes,
                    "user": {**_user_obj(c.user_id, c.screen_name, False), "avatar_hd": ""},
                    "comments": False,
                    "pic": None,
                    "source": "来自" + (self.users[c.user_id].location or "")
                    if c.user_id in self.users
                    else "",
                }
            )
        return {
            "ok": 1,
            "data": {
                "data": data,
                "total_number": len(entry.replies),
                "max_id": _MAX_ID_BASE + end if end < len(entry.replies) else 0,
                "max_id_type": 0,
            },
        }

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
        return email.utils.format_datetime(
            self.now.replace(tzinfo=CHINA_TZ).astimezone(dt.timezone.utc), usegmt=True
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        srv = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "mock-weibo/1.0"
            protocol_version = (
                "HTTP/1.1"  # keep-alive, like the real site; every response has a Content-Length
            )

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes; without this, Nagle + delayed ACK add 40 ms to each
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass  # quiet: a crawl is thousands of requests, and the test output should stay readable

            def date_time_string(self, timestamp: float | None = None) -> str:
                return srv.http_date()

            def _send(
                self,
                status: int,
                body: bytes,
                ctype: str,
                headers: dict[str, str] | None = None,
                declared: int | None = None,
            ) -> None:
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
                    msg = {
                        "500": "Internal Server Error",
                        "502": "Bad Gateway",
                        "503": "Service Unavailable",
                    }[fault]
                    body = (
                        f"<html><body><h1>{fault} {msg}</h1><hr><center>nginx</center></body></html>".encode()
                    )
                    return self._send(int(fault), body, "text/html")
                if fault in ("418", "ban:418"):
                    return self._send(418, b"", "text/html")
                if fault == "ban:captcha":
                    return self._send(200, VISITOR_PAGE, "text/html; charset=utf-8")
                back = quote(f"https://m.weibo.cn{self.path}", safe="")
                if fault == "login:302":
                    return self._send(
                        302, b"", "text/html", {"Location": f"{LOGIN_URL}?entry=mweibo&r={back}"}
                    )
                if fault == "login:ok-100":
                    body = json.dumps({"ok": -100, "url": f"{LOGIN_URL}?entry=mweibo&r={back}"}).encode()
                    return self._send(200, body, "application/json; charset=utf-8")
                if fault == "empty":
                    body = json.dumps(srv._empty(), ensure_ascii=False).encode("utf-8")
                    return self._send(200, body, "application/json; charset=utf-8")
                if fault == "429":
                    body = json.dumps({"ok": 0, "msg": "请求过于频繁，歇歇吧"}, ensure_ascii=False).encode()
                    return self._send(
                        429, body, "application/json", {"Retry-After": str(srv.faults.retry_after_s)}
                    )
                payload = srv.route(url.path, q)
                if payload is None:
                    return self._send(404, b'{"ok":0,"msg":"not found"}', "application/json")
                body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
                if fault == "slow":
                    time.sleep(srv.faults.slow_s)
                elif fault == "malformed":
                    if rng.random() < 0.5:
                        return self._send(
                            200, body[: max(1, len(body) // 3)], "application/json; charset=utf-8"
                        )
                    return self._send(200, VISITOR_PAGE, "text/html; charset=utf-8")
                elif fault == "truncated":
                    self.close_connection = True
                    return self._send(
                        200, body[: len(body) // 2], "application/json; charset=utf-8", declared=len(body)
                    )
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
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="mock-weibo", daemon=True
        )
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
        for prefix, name in (
            ("100505", "profile"),
            ("230283", "info"),
            ("230413", "timeline"),
            ("100103", "search"),
        ):
            if cid.startswith(prefix):
                return name
    return {"/comments/hotflow": "comments", "/statuses/extend": "long_text"}.get(path, path)
