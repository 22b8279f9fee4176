"""Seq order per (topic, stream) with repeats dropped and gaps filled (mock clock, no bus)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from parley.actors.realtime.sequencer import Sequencer

pytestmark = pytest.mark.trio


class Recorder:
    def __init__(self) -> None:
        self.delivered: list[tuple[str, str, Any]] = []
        self.stored: dict[int, str] = {}
        self.fills: list[tuple[str, int, int]] = []

    def deliver(self, topic: str, event: str, payload: Any) -> int:
        self.delivered.append((topic, event, payload))
        return 1

    async def fill(self, stream: str, after: int, limit: int) -> list[tuple[int, Any]]:
        self.fills.append((stream, after, limit))
        return [
            (seq, body) for seq, body in sorted(self.stored.items()) if after < seq <= after + limit
        ]


def sequencer(recorder: Recorder, subscribed: set[str] | None = None) -> Sequencer:
    topics = subscribed if subscribed is not None else {"t"}
    return Sequencer(
        recorder.deliver,
        topics.__contains__,
        recorder.fill,
        gap_wait_seconds=0.1,
        max_streams=10,
    )


def payloads(recorder: Recorder) -> list[Any]:
    return [payload for _, _, payload in recorder.delivered]


async def test_in_order_is_delivered_at_once_and_repeats_are_dropped() -> None:
    recorder = Recorder()
    order = sequencer(recorder)
    for seq in (1, 2, 2, 3, 1):
        order.offer("t", "new_msg", f"m{seq}", "c", seq)
    assert payloads(recorder) == ["m1", "m2", "m3"]
    assert order.stats.duplicates == 2


async def test_a_late_predecessor_is_waited_for() -> None:
    recorder = Recorder()
    order = sequencer(recorder)
    order.offer("t", "new_msg", "m1", "c", 1)
    order.offer("t", "new_msg", "m3", "c", 3)
    assert payloads(recorder) == ["m1"]
    order.offer("t", "new_msg", "m2", "c", 2)
    assert payloads(recorder) == ["m1", "m2", "m3"]
    assert recorder.fills == []


async def test_a_gap_is_filled_from_the_store_after_the_wait(
    mock_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    recorder = Recorder()
    recorder.stored = {2: "m2 (stored)", 3: "m3 (stored)"}
    order = sequencer(recorder)
    nursery.start_soon(order.run)
    order.offer("t", "new_msg", "m1", "c", 1)
    order.offer("t", "new_msg", "m4", "c", 4)
    await trio.testing.wait_all_tasks_blocked()
    assert payloads(recorder) == ["m1"]
    mock_clock.jump(0.1)
    await trio.testing.wait_all_tasks_blocked()
    assert payloads(recorder) == ["m1", "m2 (stored)", "m3 (stored)", "m4"]
    assert recorder.fills == [("c", 1, 3)]
    assert order.stats.gap_messages_filled == 2
    order.offer("t", "new_msg", "m3 (late)", "c", 3)  # the lost envelope turns up after all
    assert len(recorder.delivered) == 4


async def test_a_seq_the_store_does_not_have_is_skipped(
    mock_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    recorder = Recorder()
    order = sequencer(recorder)
    nursery.start_soon(order.run)
    order.offer("t", "new_msg", "m1", "c", 1)
    order.offer("t", "new_msg", "m3", "c", 3)
    mock_clock.jump(0.1)
    await trio.testing.wait_all_tasks_blocked()
    assert payloads(recorder) == ["m1", "m3"]
    assert order.stats.gap_messages_lost == 1


async def test_topics_without_subscribers_keep_no_position() -> None:
    recorder = Recorder()
    order = sequencer(recorder, subscribed=set())
    order.offer("t", "new_msg", "m5", "c", 5)
    assert recorder.delivered == []
    assert order.describe()["streams"] == 0


async def test_what_arrives_ahead_while_a_gap_is_filled_waits_for_its_own_predecessor(
    mock_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    recorder = Recorder()
    recorder.stored = {2: "m2 (stored)"}
    filling = trio.Event()
    go_on = trio.Event()
    fill = recorder.fill

    async def slow_fill(stream: str, after: int, limit: int) -> list[tuple[int, Any]]:
        filling.set()
        await go_on.wait()
        return await fill(stream, after, limit)

    recorder.fill = slow_fill  # type: ignore[method-assign]
    order = sequencer(recorder)
    nursery.start_soon(order.run)
    order.offer("t", "new_msg", "m1", "c", 1)
    order.offer("t", "new_msg", "m3", "c", 3)
    mock_clock.jump(0.1)
    await filling.wait()
    order.offer("t", "new_msg", "m5", "c", 5)  # 4 is still on its way
    go_on.set()
    await trio.testing.wait_all_tasks_blocked()
    assert payloads(recorder) == ["m1", "m2 (stored)", "m3"]
    order.offer("t", "new_msg", "m4", "c", 4)
    assert payloads(recorder) == ["m1", "m2 (stored)", "m3", "m4", "m5"]
    assert order.stats.gap_messages_lost == 0


async def test_a_new_stream_waits_for_seqs_committed_just_before_its_first_one(
    mock_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    recorder = Recorder()
    order = sequencer(recorder)
    nursery.start_soon(order.run)
    # Two nodes commit 1 and 2 at once; 2 overtakes 1 on its way here.
    order.offer("t", "new_msg", "m2", "c", 2)
    assert payloads(recorder) == []
    order.offer("t", "new_msg", "m1", "c", 1)
    assert payloads(recorder) == ["m1", "m2"]
    mock_clock.jump(0.1)
    await trio.testing.wait_all_tasks_blocked()
    assert payloads(recorder) == ["m1", "m2"]
    assert recorder.fills == []


async def test_a_new_stream_starts_at_the_lowest_seq_that_came_within_the_wait(
    mock_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    recorder = Recorder()
    recorder.stored = {6: "m6 (stored)"}
    order = sequencer(recorder)
    nursery.start_soon(order.run)
    order.offer("t", "new_msg", "m7", "c", 7)
    order.offer("t", "new_msg", "m5", "c", 5)
    mock_clock.jump(0.1)
    await trio.testing.wait_all_tasks_blocked()
    # 5 starts the stream (what came before it was before anyone here subscribed); 6 is a gap.
    assert payloads(recorder) == ["m5", "m6 (stored)", "m7"]
    assert recorder.fills == [("c", 5, 2)]
    order.offer("t", "new_msg", "m4", "c", 4)  # older than the start: a repeat now
    assert len(recorder.delivered) == 3
    assert order.stats.openings_held == 1
