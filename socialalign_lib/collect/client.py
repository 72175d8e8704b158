"""One HTTP client for the Weibo mobile JSON API (``m.weibo.cn``), live or mock.

It knows the endpoints the timeline crawler uses (docs/formats.md#endpoints) and nothing about files: every call returns
parsed JSON plus the server's clock (the ``Date`` header, which relative times like "3分钟前" are relative
to). All the unpleasantness of a real site lives here, once: a polite rate limit, retries with exponential
backoff and jitter on 418 / 429 / 5xx, timeouts, dropped connections and malformed or truncated JSON,
``Retry-After`` honoured, a request budget, and statistics of what happened.

Three answers stop the whole crawl instead of one unit of work (``CrawlStopped``): an expired login (HTTP 200
``{"ok": -100}`` or a redirect to the login page), a ban that does not lift (``max_consecutive_bans`` answers of
418 or a captcha page with no success in between: retrying every pending unit would only prolong it), and the
request budget. The crawler saves nothing half-done, so the same command resumes once the cause is fixed.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..logsafe import redacting_logs
from .config import CrawlConfig, is_loopback
from .parse import CHINA_TZ

log = logging.getLogger("socialalign_lib.collect")

RETRY_STATUSES = frozenset({418, 429, 500, 502, 503, 504})
BAN_OUTCOMES = frozenset({"418", "captcha"})  # the site refuses *us*; counted towards max_consecutive_bans
LOGIN_REQUIRED = -100  # ``{"ok": -100, "url": "https://passport.weibo.cn/signin/..."}``: log in first
_CAPTCHA_PAGE = re.compile(
    r"Sina Visitor System|验证码|captcha|passport\.weibo\.c(?:om|n)/visitor", re.IGNORECASE
)

PROFILE = "100505{uid}"
INFO = "230283{uid}_-_INFO"
TIMELINE = "230413{uid}"
SEARCH = "100103type=1&q=#{tag}#"


class FetchError(RuntimeError):
    """A request failed for good (a non-retryable status, or every retry used up). The crawler skips the unit
    of work (one hashtag, one user) and leaves it undone in the checkpoint, so a later run picks it up."""


class CrawlStopped(RuntimeError):
    """The whole crawl has to stop, not just one unit of work; every unit not finished stays pending in the
    checkpoint and the same command resumes. ``summary`` (a ``CrawlSummary``) is set by the crawler on its way out.
    """

    reason = "stopped"
    summary: Any = None


class RequestBudgetExhausted(CrawlStopped):
    """``max_requests`` reached. Not a FetchError: it stops the whole crawl, like a kill, and a resumed run
    continues from the checkpoint."""

    reason = "request_budget"


class LoginRequired(CrawlStopped):
    """Weibo wants a login: ``{"ok": -100}`` or a redirect to its login page. The cookie expired (or none was
    given). Read as "no data", this answer would end every listing early and lose the rest of it."""

    reason = "login_required"


class CrawlBanned(CrawlStopped):
    """``max_consecutive_bans`` answers of 418 or a captcha page without a success in between: the site refuses
    this client, and a ban outlasts any retry schedule. Wait (hours), then resume."""

    reason = "banned"


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
    confirmations: int = 0  # "nothing here" answers asked again (CrawlConfig.end_confirmations)
    slept_s: float = 0.0
    events: list[tuple[str, str]] = field(default_factory=list)  # (endpoint, outcome) per attempt, in order

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "retries": self.retries,
            "gave_up": self.gave_up,
            "confirmations": self.confirmations,
            "slept_s": round(self.slept_s, 3),
            "outcomes": dict(sorted(self.outcomes.items())),
        }


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


def _login_redirect(location: str) -> bool:
    """A redirect to Weibo's login page (``passport.weibo.cn/signin/…``, ``…/login``), judged by host and path."""
    parts = urlsplit(location)
    return bool(re.search(r"signin|login|/sso", parts.netloc + parts.path, re.IGNORECASE))


def _visitor_redirect(location: str) -> bool:
    """A redirect to the "Sina Visitor System" (the anti-bot check), which is a ban, not a login."""
    parts = urlsplit(location)
    return "visitor" in (parts.netloc + parts.path).lower()


def _is_captcha_page(resp: httpx.Response) -> bool:
    """A 200 that is not JSON but the visitor check or a captcha form: a ban, where cut JSON is bad luck."""
    return bool(_CAPTCHA_PAGE.search(resp.content[:20_000].decode("utf-8", errors="replace")))


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
    hand in an ``httpx.MockTransport``. While the client is open, the cookie is redacted from every log record of
    the process (the HTTP libraries' debug logs included).
    """

    def __init__(
        self,
        config: CrawlConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if config.rate_per_s is None and transport is None and not is_loopback(config.base_url):
            raise ValueError(
                f"no rate limit (rate_per_s=None, --rate 0) is for a server on this machine only (the local "
                f"mock); {config.base_url} must be crawled at a polite rate, e.g. --rate "
                f"{CrawlConfig.rate_per_s} (the default)"
            )
        self.config = config
        self.stats = ClientStats()
        self._ban_streak = 0
        self._sleep, self._clock = sleep, clock
        self._rng = random.Random(config.seed)
        self._next_slot = 0.0
        self._http = httpx.Client(
            base_url=config.base_url,
            headers=config.headers(),
            transport=transport,
            timeout=httpx.Timeout(config.timeout_s),
            follow_redirects=False,
        )
        self._redaction = redacting_logs(config.redact).start()

    def __repr__(self) -> str:
        return f"WeiboClient(base_url={self.config.base_url!r}, cookie={'<redacted>' if self.config.has_cookie else None})"  # noqa: E501

    def close(self) -> None:
        self._http.close()
        self._redaction.stop()

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

    def pause_before_asking_again(self) -> None:
        """The wait before asking again for a page that said "nothing here" (``CrawlConfig.end_confirmations``):
        a first retry's backoff, flat rather than growing, because every listing's true end is asked about too."""
        self.stats.confirmations += 1
        self._pause(self._backoff(0, None))

    def _count_ban(self, endpoint: str, outcome: str) -> None:
        if outcome not in BAN_OUTCOMES:
            return
        self._ban_streak += 1
        if self._ban_streak >= self.config.max_consecutive_bans:
            raise CrawlBanned(
                f"{self._ban_streak} answers in a row were bans (HTTP 418 or a captcha page), the last "
                f"one for {endpoint}"
            )

    def get_json(self, path: str, params: dict[str, Any], endpoint: str) -> ApiResponse:
        """GET ``path`` and return its JSON object, retrying what a retry can fix.

        Raises FetchError (this unit failed), LoginRequired or CrawlBanned (the crawl must stop), or
        RequestBudgetExhausted.
        """
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
                    if isinstance(data, dict) and data.get("ok") == LOGIN_REQUIRED:
                        self._record(endpoint, "login_required")
                        raise LoginRequired(
                            f'{endpoint}: Weibo answered {{"ok": {LOGIN_REQUIRED}}} (log in first)'
                        )
                    if isinstance(data, dict):
                        self._record(endpoint, outcome)
                        self._ban_streak = 0
                        return ApiResponse(data, _server_now(resp))
                    outcome = "captcha" if _is_captcha_page(resp) else "bad_json"
                elif resp.is_redirect and _login_redirect(resp.headers["location"]):
                    self._record(endpoint, "login_required")
                    page = urlsplit(resp.headers["location"])
                    raise LoginRequired(
                        f"{endpoint}: HTTP {resp.status_code} redirect to the login page "
                        f"{page.netloc}{page.path}"
                    )
                elif resp.is_redirect and _visitor_redirect(resp.headers["location"]):
                    outcome = "captcha"
                elif resp.status_code in RETRY_STATUSES:
                    retry_after = _retry_after_s(resp.headers.get("retry-after"), time.time())
                else:
                    self._record(endpoint, outcome)
                    self.stats.gave_up += 1
                    raise FetchError(f"{endpoint}: HTTP {resp.status_code} for {resp.request.url}")
            self._record(endpoint, outcome)
            self._count_ban(endpoint, outcome)
            reasons.append(outcome)
            if attempt == cfg.retries:
                break
            delay = self._backoff(attempt, retry_after)
            self.stats.retries += 1
            log.debug("%s %s: %s, retry %d in %.3f s", endpoint, params, outcome, attempt + 1, delay)
            self._pause(delay)
        self.stats.gave_up += 1
        raise FetchError(
            f"{endpoint} {params}: gave up after {cfg.retries + 1} attempts ({', '.join(reasons)})"
        )

    def _record(self, endpoint: str, outcome: str) -> None:
        self.stats.outcomes[outcome] += 1
        self.stats.events.append((endpoint, outcome))

    # --- endpoints (docs/formats.md#endpoints) ----------------------------------------------------------------------

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
