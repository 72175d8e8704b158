"""A local Weibo: a real HTTP server on 127.0.0.1 that serves an embedded ``World`` in the mobile API's shapes.

Offline, the crawler is tested and taught against this server with the same code that talks to m.weibo.cn.
:mod:`.render` turns a post into the API's ``mblog`` JSON (HTML text, "万" counts, relative times, reposts, long
texts); :mod:`.faults` decides what goes wrong and how often (:class:`FaultConfig`: 5xx, 418, 429, timeouts,
broken bodies, an expired login, a ban); :mod:`.server` maps the world onto Weibo's endpoints
(:class:`MockWeiboServer`).
"""

from __future__ import annotations

from .faults import BANS, FAULT_KINDS, LOGIN_EXPIRY, LOGIN_URL, VISITOR_PAGE, FaultConfig
from .render import MEDIA_ACCOUNTS, format_count, format_weibo_time, render_mblog, render_text
from .server import MockWeiboServer

__all__ = [
    "BANS",
    "FAULT_KINDS",
    "LOGIN_EXPIRY",
    "LOGIN_URL",
    "MEDIA_ACCOUNTS",
    "VISITOR_PAGE",
    "FaultConfig",
    "MockWeiboServer",
    "format_count",
    "format_weibo_time",
    "render_mblog",
    "render_text",
]
