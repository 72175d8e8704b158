"""Every knob of a crawl in one dataclass, with defaults that are polite to the live site.

The cookie comes from the environment (``WEIBO_COOKIE``) and is kept out of ``repr``, logs, checkpoints and
output files: a Weibo ``SUB`` cookie is a login, and crawl logs get pasted into issues.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..paths import GENERATED_DIR

REDACTED = "<redacted>"
DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Linux; Android 13) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36"
)


def _cookie_from_env() -> str | None:
    return os.environ.get("WEIBO_COOKIE") or None


def clean_cookie(raw: str | None) -> str | None:
    """The cookie without surrounding whitespace, or a ValueError that says what is wrong *without showing it*.

    A cookie copied from a browser or a ``.env`` file often ends in ``\\r`` or a newline; sent as is, the HTTP
    library rejects the header with an error that quotes the whole value (into logs and tracebacks). Inside the
    value only printable ASCII is valid in a Cookie header.
    """
    if raw is None:
        return None
    value = raw.strip()
    for i, ch in enumerate(value):
        if not " " <= ch <= "~":
            kind = "a control character" if ord(ch) < 32 or ord(ch) == 127 else "a non-ASCII character"
            raise ValueError(
                f"the Weibo cookie (WEIBO_COOKIE) has {kind} (U+{ord(ch):04X}) at position {i + 1} of "
                f"{len(value)}; copy it again as one line from the browser (the value is not shown here)"
            )
    return value or None


def is_loopback(base_url: str) -> bool:
    """True for a server on this machine (127.0.0.0/8, ::1, localhost): the local mock, never the live site."""
    host = urlsplit(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class CrawlConfig:
    """What to fetch, how fast, and how hard to try.

    Live defaults follow the upstream crawler's manners (docs/formats.md#rate-limits-and-retries - seconds
    between pages, exponential
    backoff up to minutes). Tests against the local mock set ``rate_per_s=None`` and millisecond backoffs.
    """

    base_url: str = "https://m.weibo.cn"
    out_dir: Path = field(default_factory=lambda: GENERATED_DIR / "crawl")
    cookie: str | None = field(default_factory=_cookie_from_env, repr=False)
    user_agent: str = DEFAULT_USER_AGENT
    # politeness and robustness
    rate_per_s: float | None = 0.2  # at most one request per 1/rate seconds; None = no limit (mock only)
    rate_jitter: float = 0.3  # each gap is stretched by U(0, jitter) so requests do not tick like a metronome
    timeout_s: float = 10.0
    retries: int = 5  # extra attempts after the first, on 418/429/5xx, timeouts, transport and JSON errors
    backoff_base_s: float = 5.0  # attempt k waits U(0.5, 1) * min(backoff_max_s, base * 2**k)
    backoff_max_s: float = 160.0
    max_retry_after_s: float = 900.0  # a longer Retry-After is obeyed only up to this
    max_requests: int | None = None  # request budget; exceeding it raises RequestBudgetExhausted
    max_consecutive_bans: int = (
        10  # this many 418 / captcha answers without a success in between stop the crawl
    )
    # An "ok: 0 / nothing here" answer is asked again this often (after a backoff_base_s pause) before it ends a
    # listing: Weibo sometimes gives it for a page that exists. Each true end costs these extra requests too.
    end_confirmations: int = 2
    # what to collect
    max_search_pages: int = 50  # Weibo shows at most ~50 result pages per query
    max_timeline_pages: int = 40
    max_comment_pages: int = 10
    comment_posts: int = 1  # per hashtag, fetch the comments of the first N results (the lead post first)
    crawl_users: bool = True  # then each poster's / commenter's profile and timeline
    skip_verified: bool = True  # verified accounts (media) post the news; the public is what we model
    max_users: int | None = None
    fetch_user_info: bool = True  # the INFO tab gives 所在地 (location)
    fetch_long_text: bool = True  # isLongText posts are cut in listings; /statuses/extend has the rest
    since: str | None = None  # ISO date: timeline pages stop at the first older non-pinned post
    # bookkeeping
    resume: bool = True  # continue from out_dir/checkpoint.json; False starts the output over
    fsync: bool = True
    progress: bool = True
    seed: int = 0  # jitter only; the collected records never depend on it

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.base_url = self.base_url.rstrip("/")
        self.cookie = clean_cookie(self.cookie)
        if self.retries < 0 or self.timeout_s <= 0:
            raise ValueError(
                f"CrawlConfig: retries must be >= 0 and timeout_s > 0, got {self.retries}, {self.timeout_s}"
            )
        if self.rate_per_s is not None and self.rate_per_s < 0:
            raise ValueError(
                f"CrawlConfig: rate_per_s must be > 0 (or None: no limit, local server only), got {self.rate_per_s}"
            )
        self.rate_per_s = self.rate_per_s or None  # 0 means no limit, as on the command line
        if self.max_consecutive_bans < 1 or self.end_confirmations < 0:
            raise ValueError(
                f"CrawlConfig: max_consecutive_bans must be >= 1 and end_confirmations >= 0, got "
                f"{self.max_consecutive_bans}, {self.end_confirmations}"
            )

    @property
    def has_cookie(self) -> bool:
        return bool(self.cookie)

    def headers(self) -> dict[str, str]:
        """Request headers as the mobile site's own pages send them (Referer, accept), plus the cookie."""
        h = {
            "User-Agent": self.user_agent,
            "Referer": "https://m.weibo.cn/",
            "Accept": "application/json, text/plain, */*",
            "X-Requested-With": "XMLHttpRequest",
            "MWeibo-Pwa": "1",
        }
        if self.cookie:
            h["Cookie"] = self.cookie
        return h

    def redact(self, text: str) -> str:
        """``text`` with the cookie and each of its values replaced, for anything that may be printed."""
        if not self.cookie:
            return text
        secrets = {self.cookie, *(part.split("=", 1)[-1].strip() for part in self.cookie.split(";"))}
        for s in sorted((s for s in secrets if len(s) >= 6), key=len, reverse=True):
            text = text.replace(s, REDACTED)
        return text


class RedactingFilter(logging.Filter):
    """A filter for one logger or handler. The client does more: it redacts the cookie from every logger's
    records (``socialalign_lib.logsafe``), the HTTP libraries' debug logs included."""

    def __init__(self, config: CrawlConfig) -> None:
        super().__init__()
        self.config = config

    def filter(self, record: logging.LogRecord) -> bool:
        if self.config.cookie:
            msg = record.getMessage()
            clean = self.config.redact(msg)
            if clean != msg:
                record.msg, record.args = clean, None
        return True
