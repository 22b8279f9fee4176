"""The MessageWriter's group commit against a scripted store: how batches form, and how a failed
batch fails only its own messages (a refused value only the offending one)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import trio

from parley.actors.writer import MessageWriter, WriteBatch, WriteFailed
from parley.config import WriterSettings
from parley.store.messages import (
    BatchInserter,
    Message,
    MessageStore,
    NewMessage,
    RejectedMessages,
    Written,
)

CONVERSATION = uuid.uuid4()
SENDER = uuid.uuid4()


class ScriptedStore(MessageStore):
    """Numbers messages like the database would; can hold a commit open, or refuse a batch.

    `batches` records each batch when its insert starts, as PostgreSQL would receive it."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = trio.Event()
        self.hold_first = False
        self.refused_body = "refused"
        self.failures: list[Exception] = []
        self._seq = 0

    def batch_inserter(self) -> BatchInserter:
        return ScriptedInserter(self)

    async def commit(self, batch: list[NewMessage], *, first: bool) -> list[Written]:
        if self.hold_first and first:
            await self.release.wait()
        if self.failures:
            raise self.failures.pop(0)
        if any(m.body == self.refused_body for m in batch):
            raise RejectedMessages("a value was refused")
        written = []
        for new in batch:
            self._seq += 1
            message = Message(
                self._seq, new.conversation_id, self._seq, new.sender_id, new.body,
                new.client_id, datetime.now(UTC), None, None,
            )  # fmt: skip
            written.append(Written(message, duplicate=False))
        return written


class ScriptedInserter(BatchInserter):
    def __init__(self, store: ScriptedStore) -> None:
        self.store = store

    async def aclose(self) -> None:
        pass

    async def start(self, batch: list[NewMessage]) -> ScriptedInsert:
        self.store.batches.append([m.body for m in batch])
        return ScriptedInsert(self.store, batch, first=len(self.store.batches) == 1)


@dataclass
class ScriptedInsert:
    store: ScriptedStore
    batch: list[NewMessage]
    first: bool

    async def result(self) -> list[Written]:
        return await self.store.commit(self.batch, first=self.first)


def batch_of(body: str, committed: list[str] | None = None) -> WriteBatch:
    batch = WriteBatch([NewMessage(CONVERSATION, SENDER, body, None)])
    if committed is not None:
        batch.on_commit = lambda rows: committed.extend(w.message.body for w in rows)
    return batch


async def rows(batch: WriteBatch) -> list[Written]:
    """A batch's stored rows once it is finished (raises its `WriteFailed`)."""
    result = await batch.outcome()
    if isinstance(result, WriteFailed):
        raise result
    return result


async def start_writer(
    nursery: trio.Nursery, store: ScriptedStore, settings: WriterSettings
) -> MessageWriter:
    started: MessageWriter = await nursery.start(MessageWriter(store, settings).run)
    return started


async def held_writer(
    nursery: trio.Nursery, *, batch_max_rows: int = WriterSettings.batch_max_rows
) -> tuple[ScriptedStore, MessageWriter]:
    """A writer that never waits to fill a batch, over a store holding its first commit open
    until `store.release` is set (so what is submitted meanwhile queues)."""
    store = ScriptedStore()
    store.hold_first = True
    settings = WriterSettings(
        batch_max_rows=batch_max_rows, batch_max_wait_ms=0, batch_max_linger_ms=0
    )
    return store, await start_writer(nursery, store, settings)


async def submit_all(writer: MessageWriter, batches: list[WriteBatch]) -> None:
    for batch in batches:
        await writer.submit(batch)


async def test_requests_queued_during_a_commit_form_the_next_batch_without_waiting(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    store, writer = await held_writer(nursery)
    first = batch_of("m1")
    await writer.submit(first)
    await trio.testing.wait_all_tasks_blocked()
    later = [batch_of(f"m{n}") for n in range(2, 5)]
    await submit_all(writer, later)
    store.release.set()
    started = trio.current_time()
    for batch in [first, *later]:
        await rows(batch)
    assert store.batches == [["m1"], ["m2", "m3", "m4"]]
    assert trio.current_time() == started  # nobody waited on a timer


async def test_the_next_batch_is_sent_before_the_last_one_is_answered(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    store, writer = await held_writer(nursery)
    batches_sent_when_answered: list[list[list[str]]] = []
    first = batch_of("m1")
    first.on_commit = lambda rows: batches_sent_when_answered.append(list(store.batches))
    await writer.submit(first)
    await trio.testing.wait_all_tasks_blocked()
    second = batch_of("m2")
    await writer.submit(second)
    store.release.set()
    await rows(second)
    # m1's commit returned with m2 queued: m2 went to the database before m1 was published.
    assert batches_sent_when_answered == [[["m1"], ["m2"]]]


async def test_a_batch_taken_from_the_queue_holds_at_most_batch_max_rows(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    store, writer = await held_writer(nursery, batch_max_rows=2)
    batches = [batch_of(f"m{n}") for n in range(1, 7)]
    await writer.submit(batches[0])
    await trio.testing.wait_all_tasks_blocked()
    await submit_all(writer, batches[1:])
    store.release.set()
    for batch in batches:
        await rows(batch)
    assert store.batches == [["m1"], ["m2", "m3"], ["m4", "m5"], ["m6"]]


async def test_a_batch_closes_after_a_quiet_gap_or_its_linger(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    store = ScriptedStore()
    writer = await start_writer(
        nursery, store, WriterSettings(batch_max_wait_ms=2, batch_max_linger_ms=5)
    )
    batches = [batch_of(f"m{n}") for n in range(1, 8)]
    # 1 ms apart: m1-m5 (the linger closes it after 5 ms); m6 and m7 are 3 ms apart (the gap).
    for batch, pause in zip(batches, [1, 1, 1, 1, 1.5, 3, 0], strict=True):
        await writer.submit(batch)
        await trio.sleep(pause / 1000)
    for batch in batches:
        await rows(batch)
    assert store.batches == [["m1", "m2", "m3", "m4", "m5"], ["m6"], ["m7"]]


async def test_a_refused_message_fails_alone_and_the_others_commit_in_order(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    store, writer = await held_writer(nursery)
    committed: list[str] = []
    blocker = batch_of("m0", committed)
    await writer.submit(blocker)
    await trio.testing.wait_all_tasks_blocked()
    batches = [batch_of(body, committed) for body in ("m1", "refused", "m2")]
    await submit_all(writer, batches)
    store.release.set()
    assert [w.message.body for w in await rows(batches[0])] == ["m1"]
    with pytest.raises(WriteFailed, match="refused"):
        await rows(batches[1])
    assert [w.message.body for w in await rows(batches[2])] == ["m2"]
    assert committed == ["m0", "m1", "m2"]
    assert writer.statistics().failed_messages == 1


async def test_a_batch_that_fails_otherwise_fails_only_its_own_messages(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    store, writer = await held_writer(nursery)
    store.failures = [ConnectionError("database down")]
    failing = batch_of("m1")
    await writer.submit(failing)
    await trio.testing.wait_all_tasks_blocked()
    after = batch_of("m2")
    await writer.submit(after)
    store.release.set()
    with pytest.raises(WriteFailed, match="nothing was written"):
        await rows(failing)
    assert [w.message.body for w in await rows(after)] == ["m2"]


def test_a_batch_calls_back_after_on_commit_and_at_once_when_already_done(
    caplog: pytest.LogCaptureFixture,
) -> None:
    order: list[str] = []
    batch = WriteBatch([], on_commit=lambda rows: order.append("on_commit"))
    batch.when_done(lambda result: order.append("first"))

    def broken(_: object) -> None:
        raise RuntimeError("callback bug")

    batch.when_done(broken)
    batch.when_done(lambda result: order.append("second"))
    batch.finish([])
    assert order == ["on_commit", "first", "second"]  # a failing callback stops no other
    assert "done callback failed" in caplog.text
    batch.when_done(lambda result: order.append(f"late {result!r}"))
    assert order[-1] == "late []"

    failed = WriteBatch([], on_commit=lambda rows: order.append("not for a failure"))
    got: list[object] = []
    failed.when_done(got.append)
    failed.finish(WriteFailed("down"))
    assert [type(x) for x in got] == [WriteFailed] and "not for a failure" not in order
