"""In-memory rate limiting for the auth endpoints: exact sliding windows with an injected clock.

`SlidingWindowLimiter` allows at most `limit` events per key in any window of `window_seconds`
(a sliding log: each key keeps the times of its last `limit` counted events, so memory per key is
bounded by `limit`, and the number of keys by `max_keys`). Unlike a fixed window it never lets
`2 * limit` through around a window boundary, and `retry_after_seconds` is exact: the moment the
oldest counted event leaves the window.

`AuthThrottle` applies DESIGN's rules on top of two limiters:

* failed logins per account (default 10 per 15 minutes): `check` before verifying, count only
  failures, never successes. The key is the normalised e-mail *as submitted*, whether or not such an
  account exists, so the limiter's answers reveal nothing about which accounts exist;
* per client IP (default 100 per hour) for failed logins, registrations and forgot-password
  requests, each action in its own bucket. IPv6 clients are keyed by their /64 (one subscriber's
  allocation) so that rotating addresses within it gains nothing. Loopback is exempt only when
  `server.env == "dev"` and `auth.exempt_loopback_in_dev` is set (the test environment is not
  exempt, so the limits can be tested through real sockets).

State is plain process memory: the API layer keeps one `AuthThrottle` in its app context. In a
cluster (DESIGN §8) every counted event is also sent to the other nodes (`on_counted`, over the
cluster bus) and counted there (`count_from_elsewhere`), so the limits hold across nodes; the bus
is at most once, so while it is down each node counts on its own. Check-then-record is not atomic
across concurrent requests for one key (or across nodes within a bus round trip), so a burst may
overshoot by the number of requests in flight; the hashing limiter bounds that.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from parley.accounts.client_ip import is_loopback, rate_limit_key

if TYPE_CHECKING:
    from collections.abc import Callable

    from parley.config import AuthSettings, ServerSettings

__all__ = [
    "DEFAULT_MAX_KEYS",
    "AuthThrottle",
    "Decision",
    "IpAction",
    "SlidingWindowLimiter",
]

DEFAULT_MAX_KEYS: Final = 50_000
"""Keys kept per limiter; at 10-100 timestamps each this is a few MiB to a few tens of MiB."""

_MAX_ACCOUNT_KEY_CHARS: Final = 320

IpAction = Literal["login", "register", "forgot_password"]
LimiterName = Literal["account", "ip"]


@dataclass(frozen=True, slots=True)
class Decision:
    """`allowed`, or else wait `retry_after_seconds` (whole seconds >= 1, for Retry-After)."""

    allowed: bool
    retry_after_seconds: int = 0
    remaining: int = 0
    """Events still allowed in the current window after this decision."""


_ALLOW_UNLIMITED: Final = Decision(allowed=True, retry_after_seconds=0, remaining=2**31 - 1)


class SlidingWindowLimiter:
    """At most `limit` counted events per key within any `window_seconds` (sliding log).

    `hit(key)` counts an event if allowed; `check(key)` only asks. `clock` returns monotonic
    seconds (`time.monotonic` by default; tests inject a fake). When more than `max_keys` keys are
    live, keys whose events have all expired are dropped first, then the least recently counted
    ones (an evicted key starts afresh: acceptable, as an attacker must spread over `max_keys`
    other keys, themselves limited per IP, to cause it).
    """

    def __init__(
        self,
        limit: int,
        window_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        if window_seconds <= 0:
            raise ValueError("window_seconds must be > 0")
        if max_keys < 1:
            raise ValueError("max_keys must be >= 1")
        self.limit = limit
        self.window_seconds = float(window_seconds)
        self.max_keys = max_keys
        self._clock = clock
        # key -> times of its counted events, oldest first; dict order = least recently counted.
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        """Number of keys currently held (for metrics and tests)."""
        return len(self._events)

    def check(self, key: str) -> Decision:
        """Would one more event for `key` be allowed now? Counts nothing."""
        now = self._clock()
        events = self._events.get(key)
        if events is None:
            return Decision(True, 0, self.limit)
        self._expire(events, now)
        if not events:
            del self._events[key]
            return Decision(True, 0, self.limit)
        return self._decide(events, now, counting=False)

    def hit(self, key: str) -> Decision:
        """Count one event for `key` if allowed; a refused event is not counted (so a client
        hammering while blocked does not extend its own block)."""
        now = self._clock()
        events = self._events.get(key)
        if events is None:
            self._make_room(now)
            events = self._events[key] = deque(maxlen=self.limit)
        else:
            self._expire(events, now)
        decision = self._decide(events, now, counting=True)
        if decision.allowed:
            events.append(now)
            self._events.move_to_end(key)
        return decision

    def reset(self, key: str) -> None:
        """Forget `key` (e.g. after an operator unblocks an account)."""
        self._events.pop(key, None)

    def prune(self) -> int:
        """Drop keys whose events have all left the window; returns how many were dropped."""
        now = self._clock()
        stale = [key for key, events in self._events.items() if self._expired(events, now)]
        for key in stale:
            del self._events[key]
        return len(stale)

    def _decide(self, events: deque[float], now: float, *, counting: bool) -> Decision:
        if len(events) < self.limit:
            remaining = self.limit - len(events) - (1 if counting else 0)
            return Decision(True, 0, remaining)
        wait = events[0] + self.window_seconds - now
        return Decision(False, max(1, math.ceil(wait)), 0)

    def _expire(self, events: deque[float], now: float) -> None:
        horizon = now - self.window_seconds
        while events and events[0] <= horizon:
            events.popleft()

    def _expired(self, events: deque[float], now: float) -> bool:
        return not events or events[-1] <= now - self.window_seconds

    def _make_room(self, now: float) -> None:
        if len(self._events) < self.max_keys:
            return
        self.prune()
        while len(self._events) >= self.max_keys:
            self._events.popitem(last=False)


class AuthThrottle:
    """The auth endpoints' limits (see the module docstring); one per process, in the app context.

    Login: `d = check_login(email, ip)`; if refused, answer 429 with
    `Retry-After: d.retry_after_seconds` without verifying; otherwise verify, and on failure call
    `record_login_failure(email, ip)`.
    Registration and forgot-password: `d = hit_ip("register" | "forgot_password", ip)`.
    `ip` is the client address from `client_ip.client_ip`.
    """

    def __init__(
        self,
        auth: AuthSettings,
        server: ServerSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        self.account_failures = SlidingWindowLimiter(
            auth.login_failures_per_account,
            auth.login_failure_window_seconds,
            clock=clock,
            max_keys=max_keys,
        )
        self.per_ip = SlidingWindowLimiter(
            auth.per_ip_requests_per_hour, 3600, clock=clock, max_keys=max_keys
        )
        self._exempt_loopback = server.env == "dev" and auth.exempt_loopback_in_dev
        self._limiters: dict[LimiterName, SlidingWindowLimiter] = {
            "account": self.account_failures,
            "ip": self.per_ip,
        }
        self.on_counted: Callable[[LimiterName, str], None] | None = None
        """Called with each event counted here (which limiter, its key), to count it elsewhere."""

    def count_from_elsewhere(self, limiter: str, key: str) -> None:
        """An event another node counted (`on_counted` there); unknown limiters are ignored."""
        found = self._limiters.get(limiter)  # type: ignore[call-overload]
        if found is not None:
            found.hit(key)

    def _hit(self, limiter: LimiterName, key: str) -> Decision:
        decision = self._limiters[limiter].hit(key)
        if decision.allowed and self.on_counted is not None:
            self.on_counted(limiter, key)
        return decision

    def is_exempt(self, ip: str) -> bool:
        """Loopback clients skip the per-IP limits, in development only."""
        return self._exempt_loopback and is_loopback(ip)

    def check_login(self, account: str, ip: str) -> Decision:
        """Before verifying a password: refused if the account or the IP is over its limit.

        `account` is the normalised e-mail (or username) as submitted. The later of the two
        waits is returned when both are over.
        """
        by_account = self.account_failures.check(_account_key(account))
        by_ip = self._check_ip("login", ip)
        if by_account.allowed and by_ip.allowed:
            return by_account if by_account.remaining <= by_ip.remaining else by_ip
        return Decision(False, max(by_account.retry_after_seconds, by_ip.retry_after_seconds), 0)

    def record_login_failure(self, account: str, ip: str) -> None:
        """Count a failed login against the account and the client IP."""
        self._hit("account", _account_key(account))
        if not self.is_exempt(ip):
            self._hit("ip", _ip_key("login", ip))

    def hit_ip(self, action: IpAction, ip: str) -> Decision:
        """Count a registration or forgot-password request (or any per-IP action) and decide."""
        if self.is_exempt(ip):
            return _ALLOW_UNLIMITED
        return self._hit("ip", _ip_key(action, ip))

    def _check_ip(self, action: IpAction, ip: str) -> Decision:
        if self.is_exempt(ip):
            return _ALLOW_UNLIMITED
        return self.per_ip.check(_ip_key(action, ip))


def _account_key(account: str) -> str:
    # Submitted logins are not validated before throttling; hash overlong ones to bound memory.
    normalized = account.strip().lower()
    if len(normalized) > _MAX_ACCOUNT_KEY_CHARS:
        normalized = hashlib.sha256(normalized.encode("utf-8", "surrogatepass")).hexdigest()
    return "acct:" + normalized


def _ip_key(action: IpAction, ip: str) -> str:
    return f"{action}:{rate_limit_key(ip)}"
