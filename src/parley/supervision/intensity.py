"""Restart intensity: at most N restarts in any T-second window (pure; no trio)."""

from __future__ import annotations

from collections import deque


class RestartIntensity:
    """A sliding window of restart times.

    Erlang's rule: if more than `max_restarts` restarts happen within `window_seconds`, the
    supervisor gives up and fails to its parent, because restarting again is evidently not fixing
    anything and a supervisor higher up may be able to (by restarting more of the tree).
    """

    def __init__(self, max_restarts: int, window_seconds: float) -> None:
        if max_restarts < 0:
            raise ValueError("max_restarts must be >= 0")
        if window_seconds <= 0:
            raise ValueError("window_seconds must be > 0")
        self.max_restarts = max_restarts
        self.window_seconds = window_seconds
        self._times: deque[float] = deque()

    def record(self, now: float) -> bool:
        """Count a restart at time `now`; return False when that exceeds the limit."""
        self._forget_before(now)
        self._times.append(now)
        return len(self._times) <= self.max_restarts

    def recent(self, now: float) -> int:
        """How many restarts fall in the window ending at `now`."""
        self._forget_before(now)
        return len(self._times)

    def _forget_before(self, now: float) -> None:
        # A restart exactly `window_seconds` ago has left the window, so spacing restarts by the
        # window never escalates however many there are.
        while self._times and self._times[0] <= now - self.window_seconds:
            self._times.popleft()
