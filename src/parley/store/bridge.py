"""The trio <-> asyncio bridge: asyncpg runs on its own event loop in a dedicated thread.

asyncpg is asyncio-only. Rather than run trio on top of asyncio (trio-asyncio, slower here and an
undeclared dependency in triopg), Parley starts one asyncio loop in a daemon thread and submits
coroutines to it. A trio caller waits on a `trio.Event` set from the loop thread through the
trio token.

Wake-ups are coalesced in both directions. Waking the other thread is a system call that releases
the GIL, and the woken thread takes it at once: the waker then waits for the GIL until the other
thread's whole burst of work is done (docs/architecture.md, "Measurements behind the store", has
what that cost). So requests queue in a deque and only the first one
since the loop last drained it wakes the loop; results come back the same way, one trio wake-up per
batch of finished tasks.

Cancellation crosses the bridge: when the trio caller is cancelled, the asyncio task is cancelled
too, and the caller waits (shielded, bounded by `cancel_grace_seconds`) until that task has really
finished, so an asyncpg connection is back in its pool in a known state (asyncpg resets a
connection whose query was cancelled) before the trio side moves on.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, ParamSpec, TypeVar

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
        self.cancel_grace_seconds = cancel_grace_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        # Work for the loop thread, and results for the trio thread. Only the sending side sets a
        # `*_scheduled` flag and only the receiving side clears it, before it drains: a job
        # appended before the clear is drained, one appended after it schedules a new drain.
        self._to_loop: deque[Callable[[], None]] = deque()
        self._loop_drain_scheduled = False
        self._to_trio: deque[Callable[[], None]] = deque()
        self._trio_drain_scheduled = False

    @property
    def running(self) -> bool:
        return self._loop is not None

    def start(self) -> None:
        """Start the loop thread and return once the loop is accepting work (from trio)."""
        if self._loop is not None:
            raise RuntimeError("bridge already started")
        self._token = trio.lowlevel.current_trio_token()
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
        the asyncio task and waits for it to finish before re-raising `trio.Cancelled`.
        """
        return await self.submit(fn, *args, **kwargs).result()

    def submit(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> PendingCall[T]:
        """Start `fn(*args, **kwargs)` on the asyncio loop now, without waiting for it.

        For a caller with other work to do meanwhile (the message writer publishes one batch
        while the next is being committed). The call must be awaited with `result()`: that is
        where cancellation and errors reach the caller.
        """
        loop = self._loop
        if loop is None:
            raise BridgeClosed("the database bridge is not running")
        return PendingCall(self, loop, fn, args, kwargs)

    # -- coalesced wake-ups ---------------------------------------------------------------------

    def _to_loop_soon(self, loop: asyncio.AbstractEventLoop, job: Callable[[], None]) -> None:
        """Run `job` on the loop thread; wakes the loop only if no drain is pending (trio side)."""
        self._to_loop.append(job)
        if not self._loop_drain_scheduled:
            self._loop_drain_scheduled = True
            loop.call_soon_threadsafe(self._drain_to_loop)

    def _drain_to_loop(self) -> None:
        self._loop_drain_scheduled = False
        jobs = self._to_loop
        while jobs:
            jobs.popleft()()

    def _to_trio_soon(self, job: Callable[[], None]) -> None:
        """Run `job` on the trio thread; wakes trio only if no drain is pending (loop side)."""
        self._to_trio.append(job)
        if not self._trio_drain_scheduled:
            self._trio_drain_scheduled = True
            token = self._token
            assert token is not None
            try:
                token.run_sync_soon(self._drain_to_trio)
            except trio.RunFinishedError:
                # The trio run ended while queries were in flight: nobody is waiting any more.
                self._to_trio.clear()

    def _drain_to_trio(self) -> None:
        self._trio_drain_scheduled = False
        jobs = self._to_trio
        while jobs:
            jobs.popleft()()


class PendingCall(Generic[T]):
    """A coroutine function running on the bridge's loop; `result()` waits for its outcome."""

    def __init__(
        self,
        bridge: AsyncioBridge,
        loop: asyncio.AbstractEventLoop,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self._bridge = bridge
        self._loop = loop
        self._done = trio.Event()
        self._outcome: outcome.Outcome[T] | None = None
        self._task: asyncio.Task[T] | None = None

        async def call() -> T:
            return await fn(*args, **kwargs)

        def create_task() -> None:
            self._task = loop.create_task(call())
            self._task.add_done_callback(self._finished)

        bridge._to_loop_soon(loop, create_task)

    def _finished(self, task: asyncio.Task[T]) -> None:
        self._outcome = outcome.capture(task.result)
        self._bridge._to_trio_soon(self._done.set)

    def _cancel_task(self) -> None:
        assert self._task is not None  # jobs run in order: the task was created before this
        self._task.cancel()

    async def result(self) -> T:
        """The call's return value (or its exception), once it has finished on the loop.

        A cancelled caller cancels the asyncio task and waits (shielded, bounded by the bridge's
        `cancel_grace_seconds`) for it to finish: waiting on the task itself, not on a
        concurrent.futures wrapper that reports "cancelled" at once, is what guarantees an asyncpg
        connection is back in its pool before trio moves on.
        """
        try:
            await self._done.wait()
        except trio.Cancelled:
            self._bridge._to_loop_soon(self._loop, self._cancel_task)
            with (
                trio.CancelScope(shield=True),
                trio.move_on_after(self._bridge.cancel_grace_seconds),
            ):
                await self._done.wait()
            raise
        assert self._outcome is not None
        return self._outcome.unwrap()
