"""One HTTP client for the Weibo mobile JSON API (``m.weibo.cn``), live or mock.

It knows the endpoints the timeline crawler uses (FORMATS §1.2) and nothing about files: every call returns
parsed JSON plus the server's clock (the ``Date`` header, which relative times like "3分钟前" are relative
to). All the unpleasantness of a real site lives here, once: a polite rate limit, retries with exponential
backoff and jitter on 418 / 429 / 5xx, timeouts, dropped connections and malformed or truncated JSON,
``Retry-After`` honoured, a request budget, and statistics of what happened.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from .config import CrawlConfig, RedactingFilter
from .parse import CHINA_TZ

log = logging.getLogger("socialalign_lib.collect")

RETRY_STATUSES = frozenset({418, 429, 500, 502, 503, 504})

PROFILE = "100505{uid}"
INFO = "230283{uid}_-_INFO"
TIMELINE = "230413{uid}"
SEARCH = "100103type=1&q=#{tag}#"


class FetchError(RuntimeError):
    """A request failed for good (a non-retryable status, or every retry used up). The crawler skips the unit
    of work (one hashtag, one user) and leaves it undone in the checkpoint, so a later run picks it up."""


class RequestBudgetExhausted(RuntimeError):
    """``max_requests`` reached. Not a FetchError: it stops the whole crawl, like a kill, and a resumed run
    continues from the checkpoint."""


@dataclass
class ApiResponse:
    """Parsed JSON and the server's clock at the time of the response (naive China time)."""

    data: dict[str, Any]
    now: dt.datetime

    @property
    def ok(self) -> bool:
        return bool(self.data.get("ok"))


@dataclass
class ClientStats:
    """What the client saw: outcome per attempt ("200", "503", "429", "timeout", "bad_json"…), retries, waits."""

    requests: int = 0
    outcomes: Counter = field(default_factory=Counter)
    by_endpoint: Counter = field(default_factory=Counter)
    retries: int = 0
    gave_up: int = 0
    slept_s: float = 0.0
    events: list[tuple[str, str]] = field(default_factory=list)  # (endpoint, outcome) per attempt, in order

    def summary(self) -> dict[str, Any]:
        return {"requests": self.requests, "retries": self.retries, "gave_up": self.gave_up,
                "slept_s": round(self.slept_s, 3), "outcomes": dict(sorted(self.outcomes.items()))}


def _retry_after_s(value: str | None, now: float) -> float | None:
    """``Retry-After``: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def _server_now(resp: httpx.Response) -> dt.datetime:
    date = resp.headers.get("date")
    if date:
        try:
            return email.utils.parsedate_to_datetime(date).astimezone(CHINA_TZ).replace(tzinfo=None)
        except (TypeError, ValueError):
            pass
    return dt.datetime.now(CHINA_TZ).replace(tzinfo=None, microsecond=0)


class WeiboClient:
    """``with WeiboClient(config) as client: client.timeline_page(uid, 1)``.

    ``sleep`` and ``clock`` are injectable so tests can check waits without waiting; ``transport`` lets a test
    hand in an ``httpx.MockTransport``.
    """

    def __init__(self, config: CrawlConfig, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.stats = ClientStats()
        self._sleep, self._clock = sleep, clock
        self._rng = random.Random(config.seed)
        self._next_slot = 0.0
        self._http = httpx.Client(base_url=config.base_url, headers=config.headers(), transport=transport,
                                  timeout=httpx.Timeout(config.timeout_s), follow_redirects=False)
        self._filter = RedactingFilter(config)
        log.addFilter(self._filter)

    def __repr__(self) -> str:
        return f"WeiboClient(base_url={self.config.base_url!r}, cookie={'<redacted>' if self.config.has_cookie else None})"

    def close(self) -> None:
        self._http.close()
        log.removeFilter(self._filter)

    def __enter__(self) -> WeiboClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the request loop ------------------------------------------------------------------------------

    def _wait_turn(self) -> None:
        rate = self.config.rate_per_s
        if not rate:
            return
        now = self._clock()
        if now < self._next_slot:
            self._pause(self._next_slot - now)
            now = self._next_slot
        self._next_slot = now + (1.0 / rate) * (1.0 + self._rng.uniform(0.0, self.config.rate_jitter))

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self.stats.slept_s += seconds
            self._sleep(seconds)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        cfg = self.config
        delay = min(cfg.backoff_max_s, cfg.backoff_base_s * 2**attempt) * self._rng.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, min(retry_after, cfg.max_retry_after_s))
        return delay

    def get_json(self, path: str, params: dict[str, Any], endpoint: str) -> ApiResponse:
        """GET ``path`` and return its JSON object, retrying what a retry can fix. Raises FetchError."""
        cfg = self.config
        reasons: list[str] = []
        for attempt in range(cfg.retries + 1):
            if cfg.max_requests is not None and self.stats.requests >= cfg.max_requests:
                raise RequestBudgetExhausted(f"request budget of {cfg.max_requests} used up")
            self._wait_turn()
            self.stats.requests += 1
            self.stats.by_endpoint[endpoint] += 1
            retry_after: float | None = None
            try:
                resp = self._http.get(path, params=params)
            except httpx.TimeoutException:
                outcome = "timeout"
            except httpx.TransportError as err:  # refused, reset, or a body cut short
                outcome = "truncated" if isinstance(err, httpx.RemoteProtocolError) else "transport"
            else:
                outcome = str(resp.status_code)
                if resp.status_code == 200:
                    try:
                        data = resp.json()
                    except (json.JSONDecodeError, UnicodeDecodeError):
                        data = None
                    if isinstance(data, dict):
                        self._record(endpoint, outcome)
                        return ApiResponse(data, _server_now(resp))
                    outcome = "bad_json"
                elif resp.status_code in RETRY_STATUSES:
                    retry_after = _retry_after_s(resp.headers.get("retry-after"), time.time())
                else:
                    self._record(endpoint, outcome)
                    self.stats.gave_up += 1
                    raise FetchError(f"{endpoint}: HTTP {resp.status_code} for {resp.request.url}")
            self._record(endpoint, outcome)
            reasons.append(outcome)
            if attempt == cfg.retries:
                break
            delay = self._backoff(attempt, retry_after)
            self.stats.retries += 1
            log.debug("%s %s: %s, retry %d in %.3f s", endpoint, params, outcome, attempt + 1, delay)
            self._pause(delay)
        self.stats.gave_up += 1
        raise FetchError(f"{endpoint} {params}: gave up after {cfg.retries + 1} attempts ({', '.join(reasons)})")

    def _record(self, endpoint: str, outcome: str) -> None:
        self.stats.outcomes[outcome] += 1
        self.stats.events.append((endpoint, outcome))

    # --- endpoints (FORMATS §1.2) ----------------------------------------------------------------------

    def _index(self, containerid: str, endpoint: str, **extra: Any) -> ApiResponse:
        return self.get_json("/api/container/getIndex", {"containerid": containerid, **extra}, endpoint)

    def profile(self, uid: str) -> ApiResponse:
        """``data.userInfo`` of a user."""
        return self._index(PROFILE.format(uid=uid), "profile")

    def user_info(self, uid: str) -> ApiResponse:
        """The INFO tab: ``data.cards[*].card_group[*].{item_name, item_content}``."""
        return self._index(INFO.format(uid=uid), "info")

    def timeline_page(self, uid: str, page: int) -> ApiResponse:
        """One page of a user's posts, newest first; ``ok: 0`` (or no cards) past the last page."""
        return self._index(TIMELINE.format(uid=uid), "timeline", page=page)

    def search_page(self, hashtag: str, page: int) -> ApiResponse:
        """One page of a hashtag search; ``cardlistInfo`` describes the topic."""
        return self._index(SEARCH.format(tag=hashtag.strip("#")), "search", page_type="searchall", page=page)

    def comments_page(self, mid: str, max_id: int | None = None) -> ApiResponse:
        """Hot comments of a post; follow ``data.max_id`` until it is 0."""
        params: dict[str, Any] = {"id": mid, "mid": mid, "max_id_type": 0}
        if max_id:
            params["max_id"] = max_id
        return self.get_json("/comments/hotflow", params, "comments")

    def long_text(self, mid: str) -> ApiResponse:
        """Full HTML of a post cut in listings (``isLongText``): ``data.longTextContent``."""
        return self.get_json("/statuses/extend", {"id": mid}, "long_text")
