"""The trio <-> asyncio bridge: asyncpg runs on its own event loop in a dedicated thread.

asyncpg is asyncio-only. Rather than run trio on top of asyncio (trio-asyncio, measured slower here
and
with an undeclared dependency in triopg), Parley starts one asyncio loop in a daemon thread and
submits
coroutines to it. A trio caller waits on a `trio.Event` set from the loop thread through the trio
token.

Cancellation crosses the bridge: when the trio caller is cancelled, the asyncio task is cancelled
too, and
the caller waits (shielded, bounded by `cancel_grace_seconds`) until that task has really finished,
so an
asyncpg connection is back in its pool in a known state (asyncpg resets a connection whose query was
cancelled) before the trio side moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import outcome
import trio

T = TypeVar("T")
P = ParamSpec("P")


class BridgeClosed(RuntimeError):
    """The asyncio thread is not running (not started yet, or already stopped)."""


class AsyncioBridge:
    """Owns an asyncio loop in a daemon thread and runs coroutine functions on it for trio
    callers."""

    def __init__(self, *, name: str = "parley-asyncio", cancel_grace_seconds: float = 5.0) -> None:
        self._name = name
        self._cancel_grace_seconds = cancel_grace_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._loop is not None

    def start(self) -> None:
        """Start the loop thread and return once the loop is accepting work."""
        if self._loop is not None:
            raise RuntimeError("bridge already started")
        ready = threading.Event()
        loop = asyncio.new_event_loop()

        def run_loop() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run_loop, name=self._name, daemon=True)
        self._thread.start()
        ready.wait()
        self._loop = loop

    async def stop(self) -> None:
        """Stop the loop once pending callbacks ran, and join the thread (without blocking trio)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = None
        loop.call_soon_threadsafe(loop.stop)
        await trio.to_thread.run_sync(thread.join)

    async def run(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn(*args, **kwargs)` on the asyncio loop and return its result to trio.

        Exceptions raised on the asyncio side propagate unchanged. A cancelled trio caller cancels
        the
        asyncio task and waits for it to finish before re-raising `trio.Cancelled`.
        """
        loop = self._loop
        if loop is None:
            raise BridgeClosed("the database bridge is not running")
        done = trio.Event()
        token = trio.lowlevel.current_trio_token()
        result: list[outcome.Outcome[T]] = []
        tasks: list[asyncio.Task[T]] = []

        async def call() -> T:
            return await fn(*args, **kwargs)

        def finished(task: asyncio.Task[T]) -> None:
            result.append(outcome.capture(task.result))
            # If the trio run ended while the query was in flight, nobody is waiting any more.
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(done.set)

        def create_task() -> None:
            task = loop.create_task(call())
            task.add_done_callback(finished)
            tasks.append(task)

        # Callbacks scheduled with call_soon_threadsafe run in order, so a later cancel always finds
        # the task created; waiting on the task's own completion (not on a concurrent.futures
        # wrapper,
        # which reports "cancelled" at once) is what guarantees the connection is back in its pool.
        loop.call_soon_threadsafe(create_task)
        try:
            await done.wait()
        except trio.Cancelled:
            loop.call_soon_threadsafe(lambda: tasks[0].cancel())
            with trio.CancelScope(shield=True), trio.move_on_after(self._cancel_grace_seconds):
                await done.wait()
            raise
        return result[0].unwrap()
