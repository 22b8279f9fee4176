"""A token bucket for the per-connection push limit (DESIGN.md §5 "pushes per second").

Pure: time comes from an injected clock returning float seconds (in production
`trio.current_time`, in tests a plain counter), so behaviour is reproducible and the bucket never
sleeps. The bucket starts full: a fresh connection may burst (`push_burst`, default 100) and then
sustain `pushes_per_second` (default 50).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from parley.config import SocketSettings

_EPSILON = 1e-9
"""Tolerance for float drift: 50 refills of 1/50 s must add up to one whole token."""

Clock = Callable[[], float]
"""Returns the current time in seconds; only differences matter (monotonic clocks are ideal)."""


class TokenBucket:
    """`rate` tokens per second refill a bucket holding at most `burst`; each event costs tokens.

    A clock that steps backwards adds nothing (elapsed time is clamped at zero).
    """

    __slots__ = ("_clock", "_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, *, clock: Clock) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive finite number, got {rate!r}")
        if not (burst >= 1 and math.isfinite(burst)):
            raise ValueError(f"burst must be a finite number >= 1, got {burst!r}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._last = clock()
        self._tokens = self.burst

    @classmethod
    def for_pushes(cls, settings: SocketSettings, *, clock: Clock) -> TokenBucket:
        """The per-connection push limit from `socket.pushes_per_second` / `socket.push_burst`."""
        return cls(settings.pushes_per_second, settings.push_burst, clock=clock)

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate}, burst={self.burst}, tokens={self.tokens:.2f})"

    @property
    def tokens(self) -> float:
        """Tokens available now (after refilling)."""
        self._refill()
        return self._tokens

    def try_acquire(self, cost: float = 1.0) -> bool:
        """Take `cost` tokens if available and return True; otherwise take nothing, return False."""
        if cost < 0:
            raise ValueError(f"cost must be >= 0, got {cost!r}")
        self._refill()
        if self._tokens + _EPSILON >= cost:
            self._tokens = max(0.0, self._tokens - cost)
            return True
        return False

    def retry_after(self, cost: float = 1.0) -> float:
        """Seconds until `try_acquire(cost)` can succeed: 0 now, `inf` if `cost` > `burst`."""
        if cost > self.burst:
            return math.inf
        missing = cost - self.tokens
        return 0.0 if missing <= _EPSILON else missing / self.rate

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._last
        if elapsed > 0:  # a clock stepping back neither refills nor moves the reference point
            self._last = now
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
