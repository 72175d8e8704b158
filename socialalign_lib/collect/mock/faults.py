"""What goes wrong on the mock Weibo, and how often (:class:`FaultConfig`).

Faults are drawn per request from ``(seed, url, n-th request of that url)``, so a crawl sees the same faults every
time, whatever it was interrupted by. Two lasting states start after a number of requests and hold until the test
assigns new faults (``srv.faults = FaultConfig()``: a fresh cookie, a lifted ban): an expired login
(``{"ok": -100}`` or a 302 to the login page) and a ban (418 or the captcha page on every request).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .render import _rng

FAULT_KINDS = ("500", "502", "503", "418", "429", "slow", "malformed", "truncated", "empty")
LOGIN_EXPIRY = ("ok-100", "302")
BANS = ("418", "captcha")
LOGIN_URL = "https://passport.weibo.cn/signin/welcome"
VISITOR_PAGE = (
    "<!DOCTYPE html><html><head><title>Sina Visitor System</title></head><body>验证码</body></html>"
).encode()


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
    mix: dict[str, float] = field(
        default_factory=lambda: {
            "500": 1.0,
            "502": 0.5,
            "503": 1.5,
            "418": 1.0,
            "429": 1.5,
            "slow": 0.5,
            "malformed": 1.5,
            "truncated": 1.0,
        }
    )
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
        if (
            unknown
            or not 0.0 <= self.rate <= 1.0
            or (self.rate > 0 and not any(w > 0 for w in self.mix.values()))
        ):
            raise ValueError(
                f"FaultConfig: rate must be in [0, 1] and mix a positive weight per kind in {FAULT_KINDS}, "
                f"got rate={self.rate}, mix={self.mix}"
            )
        if self.login_expiry not in LOGIN_EXPIRY or self.ban not in BANS:
            raise ValueError(
                f"FaultConfig: login_expiry must be one of {LOGIN_EXPIRY} and ban one of {BANS}, "
                f"got {self.login_expiry!r}, {self.ban!r}"
            )

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
