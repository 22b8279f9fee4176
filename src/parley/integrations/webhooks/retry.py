"""When a failed webhook request is tried again, and when it is given up (PUSHER_PROTOCOL.md §10:
retried with exponential back-off for 5 minutes).

The n-th failed attempt waits `backoff_base_seconds * 2**(n-1)`, at most `backoff_max_seconds`,
and never past the event's give-up time (`give_up_seconds` after it was recorded): the last try
is made at that time, and an attempt that fails at or after it gives the event up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from parley.config import WebhookSettings

MAX_EXPONENT = 30
"""2**30 of any base is past every cap: no larger power is ever computed."""


def backoff(attempts: int, settings: WebhookSettings) -> float:
    """Seconds before trying again after the `attempts`-th attempt failed."""
    exponent = min(max(attempts - 1, 0), MAX_EXPONENT)
    return float(min(settings.backoff_base_seconds * 2**exponent, settings.backoff_max_seconds))


def retry_delay(attempts: int, age_seconds: float, settings: WebhookSettings) -> float | None:
    """Seconds until the next attempt of an event `age_seconds` old whose `attempts`-th attempt
    just failed, or None: give it up."""
    left = settings.give_up_seconds - age_seconds
    if left <= 0:
        return None
    return min(backoff(attempts, settings), left)
