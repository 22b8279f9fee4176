"""MessageWriter: one actor persisting messages from every conversation by group commit.

Conversations hand it `WriteBatch` requests; it takes whatever has queued up (up to
`writer.batch_max_rows` messages, and only if `writer.batch_max_wait_ms` is set does it wait for
more), writes them all with one statement that is its own transaction
(`store.messages.BatchInserter`: one round trip to PostgreSQL), then answers each request with its
rows. Under load, batches grow by themselves: while one commit is in flight, the next batch
queues, and a batch of a hundred costs far less than a hundred batches of one
(docs/architecture.md, "Measurements behind the runtime").

Commits are one at a time, in order, but a commit and the answering of the one before overlap:
when a commit returns, the batch that queued meanwhile is sent to PostgreSQL first, and only then
are the returned requests answered (which publishes their messages). One commit is in flight and
at most one answered batch is being published at any moment.

A failed batch fails only the messages in it: a data error (a constraint, a value) is isolated by
retrying that batch's requests one at a time, so only the offending request gets the error; any
other error (the database is down) fails that batch's requests and the writer goes on with the
next. Nothing is ever half-written: each attempt is one transaction.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from parley.config import WriterSettings
from parley.store.messages import (
    BatchInserter,
    MessageStore,
    NewMessage,
    PendingInsert,
    RejectedMessages,
    Written,
)

log = logging.getLogger(__name__)


class WriteFailed(Exception):
    """The messages could not be stored; nothing of them was written."""


@dataclass(eq=False)
class WriteBatch:
    """Messages to store, in order; `finished` once `result` is filled.

    The batch is the acknowledgement's path: whoever created it waits on it (or asks to be called
    back, `when_done`), so a message handed to the writer is answered even if the actor that
    forwarded it dies meanwhile. `submitted` turns true the moment the writer has it (no
    checkpoint in between), which tells such a waiter whether its message can still be written.
    `on_commit` runs right after the commit, in commit order, so whatever it publishes goes out
    in seq order, before any `when_done` callback (a sender's own socket gets the broadcast, then
    the reply, as with a waiting task); none of them may block.
    """

    messages: list[NewMessage]
    on_commit: Callable[[list[Written]], None] | None = None
    created: float = field(default_factory=time.perf_counter)
    """When the messages reached the server (`perf_counter`): the start of their delivery
    latency."""
    submitted: bool = False
    result: list[Written] | WriteFailed | None = None
    _callbacks: list[Callable[[list[Written] | WriteFailed], None]] | None = None

    @property
    def finished(self) -> bool:
        return self.result is not None

    def finish(self, result: list[Written] | WriteFailed) -> None:
        self.result = result
        if self.on_commit is not None and not isinstance(result, WriteFailed):
            try:
                self.on_commit(result)
            except Exception:
                log.exception("on_commit callback failed")
        callbacks, self._callbacks = self._callbacks, None
        for callback in callbacks or ():
            self._call(callback, result)

    def when_done(self, callback: Callable[[list[Written] | WriteFailed], None]) -> None:
        """Call `callback` with the result once there is one (at once if there is already)."""
        if self.result is not None:
            self._call(callback, self.result)
        elif self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    @staticmethod
    def _call(
        callback: Callable[[list[Written] | WriteFailed], None], result: list[Written] | WriteFailed
    ) -> None:
        try:
            callback(result)
        except Exception:
            log.exception("a batch's done callback failed")

    async def outcome(self) -> list[Written] | WriteFailed:
        """`when_done`, awaited: the rows or why they failed, once there is one (a checkpoint
        either way). The one way to wait; the event exists only for a task that waits."""
        if self.result is None:
            done = trio.Event()
            self.when_done(lambda _: done.set())
            await done.wait()
        else:
            await trio.lowlevel.checkpoint()
        assert self.result is not None
        return self.result


Outcome = list[Written] | WriteFailed
"""What a request comes to: its rows, in order, or why none of them was stored."""


@dataclass(frozen=True)
class _Commit:
    """One statement on its way: the requests in it, their messages in order, and the call."""

    requests: list[WriteBatch]
    messages: list[NewMessage]
    pending: PendingInsert | Exception
    started: float


@dataclass(frozen=True)
class WriterStats:
    batches: int
    messages: int
    failed_messages: int
    batch_sizes: dict[str, int]
    """Histogram of batch sizes by power-of-two bucket: "1", "2-3", "4-7", ..."""
    commit_seconds_total: float
    queued: int


@dataclass(frozen=True)
class WriterObserver:
    """What the writer reports as it goes, to whoever measures it (the operator's metrics, handed
    over at run time: the writer imports nothing above it). Neither may block."""

    committed: Callable[[int, float], None]
    """A batch of this many messages was committed, after so many seconds in PostgreSQL."""
    published: Callable[[float], None]
    """A request's messages were stored and published to their subscribers this many seconds
    after they reached the server (their server-side delivery latency)."""


def _bucket(size: int) -> str:
    low = 1 << (size.bit_length() - 1)
    high = (low << 1) - 1
    return str(low) if low == high else f"{low}-{high}"


class MessageWriter:
    """The writer actor. `submit` is called by conversation actors; `run` is its supervised loop."""

    kind = "writer"

    def __init__(self, store: MessageStore, settings: WriterSettings) -> None:
        self._store = store
        self._settings = settings
        self._send, self._receive = trio.open_memory_channel[WriteBatch](settings.mailbox)
        self._batches = 0
        self._messages = 0
        self._failed_messages = 0
        self._sizes: Counter[str] = Counter()
        self._commit_seconds = 0.0
        self._running = False
        self.observer: WriterObserver | None = None

    async def submit(self, batch: WriteBatch) -> None:
        """Queue `batch`; waits for room (backpressure reaches the conversation, then the
        client)."""
        if not self._running:
            batch.finish(WriteFailed("the message writer is not running"))
            return
        try:
            # Without a checkpoint when there is room: a conversation hands over every message
            # waiting in its mailbox in one scheduler turn (see `Mailbox`).
            self._send.send_nowait(batch)
        except trio.WouldBlock:
            await self._send.send(batch)
        batch.submitted = True

    async def write(self, messages: list[NewMessage]) -> list[Written]:
        """Submit and wait: the rows the messages became (raises `WriteFailed`)."""
        batch = WriteBatch(messages)
        await self.submit(batch)
        result = await batch.outcome()
        if isinstance(result, WriteFailed):
            raise result
        return result

    async def run(
        self, *, task_status: trio.TaskStatus[MessageWriter] = trio.TASK_STATUS_IGNORED
    ) -> None:
        self._running = True
        task_status.started(self)
        try:
            async with self._store.batch_inserter() as inserter:
                while True:
                    requests = await self._next_group()
                    commit: _Commit | None = await self._start_commit(inserter, requests)
                    while commit is not None:
                        outcomes = await self._commit_outcomes(inserter, commit)
                        # The next batch goes to PostgreSQL before this one's senders are
                        # answered and its messages published: the commit and the fan-out
                        # overlap instead of taking turns (publishing is a large share of this
                        # thread's time, which was all spent while no commit was in flight).
                        following: list[WriteBatch] = []
                        self._take_queued(following, 0)
                        commit = (
                            await self._start_commit(inserter, following) if following else None
                        )
                        for request, result in outcomes:
                            request.finish(result)
                        self._observe_published(outcomes)
        finally:
            self._running = False
            # Whoever is still waiting learns at once that their messages were not stored.
            while True:
                try:
                    pending = self._receive.receive_nowait()
                except trio.WouldBlock:
                    break
                pending.finish(WriteFailed("the message writer stopped"))

    async def _next_group(self) -> list[WriteBatch]:
        """Block for the first request, take whatever else is queued, then wait for more.

        Everything that queued up meanwhile joins at once, without waiting: that is what makes
        batches grow with the load by themselves (and while a commit is in flight, `run` takes the
        next batch this way, never waiting). After that the batch closes when it holds
        `batch_max_rows` messages, when no request has arrived for `batch_max_wait_ms` (0, the
        default: it does not wait at all), or `batch_max_linger_ms` after its first request,
        whichever is first. (Closing on a quiet gap rather than a fixed deadline: after a commit,
        many senders may resubmit over a few milliseconds, and a deadline would cut that wave
        into one tiny batch and one large one.)
        """
        requests = [await self._receive.receive()]
        rows = self._take_queued(requests, len(requests[0].messages))
        gap = self._settings.batch_max_wait_ms / 1000
        if gap <= 0:
            return requests
        with trio.move_on_after(self._settings.batch_max_linger_ms / 1000):
            while rows < self._settings.batch_max_rows:
                with trio.move_on_after(gap) as quiet:
                    request = await self._receive.receive()
                if quiet.cancelled_caught:
                    break
                requests.append(request)
                rows = self._take_queued(requests, rows + len(request.messages))
        return requests

    def _take_queued(self, requests: list[WriteBatch], rows: int) -> int:
        """Move queued requests into `requests` (no checkpoint) up to `batch_max_rows` messages;
        returns the new row count."""
        while rows < self._settings.batch_max_rows:
            try:
                request = self._receive.receive_nowait()
            except trio.WouldBlock:
                break
            requests.append(request)
            rows += len(request.messages)
        return rows

    async def _start_commit(self, inserter: BatchInserter, requests: list[WriteBatch]) -> _Commit:
        """Send the requests' messages to PostgreSQL as one statement, without waiting for it."""
        messages = [m for request in requests for m in request.messages]
        try:
            pending: PendingInsert | Exception = await inserter.start(messages)
        except Exception as exc:  # not connected, or data no statement could carry
            pending = exc
        return _Commit(requests, messages, pending, time.perf_counter())

    async def _commit_outcomes(
        self, inserter: BatchInserter, commit: _Commit
    ) -> list[tuple[WriteBatch, Outcome]]:
        """Wait for `commit`: each request with its rows or its failure.

        A batch the database refused for its data is retried one request at a time, so only the
        offending request fails; any other error fails the whole batch.
        """
        requests, messages = commit.requests, commit.messages
        try:
            if isinstance(commit.pending, Exception):
                raise commit.pending
            written = await commit.pending.result()
        except RejectedMessages as exc:
            if len(requests) == 1:
                return self._failed(requests, f"the message was refused: {exc}")
            outcomes: list[tuple[WriteBatch, Outcome]] = []
            for request in requests:
                retry = await self._start_commit(inserter, [request])
                outcomes += await self._commit_outcomes(inserter, retry)
            return outcomes
        except Exception as exc:
            log.warning("a batch of %d message(s) failed: %r", len(messages), exc)
            return self._failed(requests, "the messages could not be stored; nothing was written")
        seconds = time.perf_counter() - commit.started
        self._commit_seconds += seconds
        if self.observer is not None:
            self.observer.committed(len(messages), seconds)
        self._batches += 1
        self._messages += len(messages)
        self._sizes[_bucket(len(messages))] += 1
        outcomes = []
        offset = 0
        for request in requests:
            count = len(request.messages)
            outcomes.append((request, written[offset : offset + count]))
            offset += count
        return outcomes

    def _observe_published(self, outcomes: list[tuple[WriteBatch, Outcome]]) -> None:
        observer = self.observer
        if observer is None:
            return
        now = time.perf_counter()
        for request, result in outcomes:
            if not isinstance(result, WriteFailed):
                observer.published(now - request.created)

    def _failed(self, requests: list[WriteBatch], reason: str) -> list[tuple[WriteBatch, Outcome]]:
        self._failed_messages += sum(len(request.messages) for request in requests)
        failure = WriteFailed(reason)
        return [(request, failure) for request in requests]

    def statistics(self) -> WriterStats:
        return WriterStats(
            batches=self._batches,
            messages=self._messages,
            failed_messages=self._failed_messages,
            batch_sizes=dict(sorted(self._sizes.items(), key=lambda kv: int(kv[0].split("-")[0]))),
            commit_seconds_total=self._commit_seconds,
            queued=self._receive.statistics().current_buffer_used,
        )

    def describe(self) -> dict[str, Any]:
        stats = self.statistics()
        mean = stats.messages / stats.batches if stats.batches else math.nan
        return {**stats.__dict__, "mean_batch_size": None if math.isnan(mean) else round(mean, 2)}
