"""The outbound queue's deferred writes: what a connection gets during one scheduler turn is
written by the flusher in one go, unless its writer was woken meanwhile."""

from __future__ import annotations

import trio
import trio.testing
from trio.testing import MockClock

from parley.api.socket.core.message import Frame
from parley.api.socket.core.outbound import OutboundQueue


def deferring_queue() -> tuple[OutboundQueue, list[list[bytes]], list[OutboundQueue]]:
    """A queue whose transport records each write, and the list `defer` hands it to."""
    queue = OutboundQueue(max_frames=10, max_bytes=10_000)
    writes: list[list[bytes]] = []

    def write_now(frames: list[Frame]) -> bool:
        writes.append([frame.data for frame in frames])
        return True

    deferred: list[OutboundQueue] = []
    queue.write_now = write_now
    queue.defer = deferred.append
    return queue, writes, deferred


async def test_frames_of_one_turn_leave_in_one_write(autojump_clock: MockClock) -> None:
    queue, writes, deferred = deferring_queue()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(queue.take_all)  # the connection's writer, parked with nothing to do
        await trio.testing.wait_all_tasks_blocked()

        for n in range(3):
            assert queue.put(Frame(b"%d" % n))
        assert deferred == [queue]  # handed to the flusher once, not per frame
        assert writes == []

        queue.write_deferred()
        assert writes == [[b"0", b"1", b"2"]]
        assert len(queue) == 0
        assert queue.sent_frames == 3

        assert queue.put(Frame(b"3"))  # a new turn: handed over again
        assert deferred == [queue, queue]
        nursery.cancel_scope.cancel()


async def test_a_writer_woken_before_the_flusher_takes_the_frames_itself(
    autojump_clock: MockClock,
) -> None:
    queue, writes, _ = deferring_queue()
    taken: list[list[Frame]] = []

    async def writer() -> None:
        taken.append(await queue.take_all())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        await trio.testing.wait_all_tasks_blocked()
        assert queue.put(Frame(b"a"))
        assert queue.put(Frame(b"b"))
        queue.close(1000, "bye")  # wakes the writer, which drains what is queued first
        queue.write_deferred()  # the flusher's turn comes too late: nothing left for it
    assert writes == []
    assert [[frame.data for frame in frames] for frames in taken] == [[b"a", b"b"]]
