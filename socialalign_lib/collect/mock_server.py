"""Deprecated import path: use socialalign_lib.collect.mock (render, faults, server).

Every name of the old module is found here: the public ones re-exported below, private ones (``_rng``,
``_endpoint`` …) looked up in the new modules on first use."""

from __future__ import annotations

from socialalign_lib.exports import forward_names

from .mock import faults as _faults
from .mock import render as _render
from .mock import server as _server
from .mock.faults import BANS, FAULT_KINDS, LOGIN_EXPIRY, LOGIN_URL, VISITOR_PAGE, FaultConfig
from .mock.render import MEDIA_ACCOUNTS, format_count, format_weibo_time, render_mblog, render_text
from .mock.server import MockWeiboServer

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


__getattr__ = forward_names(__name__, (_render, _faults, _server))
