"""Waiting on a condition that nothing signals (a database row, another process's state): the
tests that touch PostgreSQL run on the real clock and poll it under a generous deadline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

POLL_SECONDS = 0.02


async def eventually(predicate: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
    """Poll `predicate` until it holds, failing after `seconds`."""
    with trio.fail_after(seconds):
        while not await predicate():  # noqa: ASYNC110 (nothing signals the change)
            await trio.sleep(POLL_SECONDS)
