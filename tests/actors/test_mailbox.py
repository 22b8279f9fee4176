"""The mailbox and the reply slot on their own: order, bounds, waiting, cancellation, close."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from parley.actors.mailbox import Mailbox, Ok, ReplyCallback, ReplySlot

MockClock = trio.testing.MockClock


async def test_messages_come_out_in_the_order_they_went_in(autojump_clock: MockClock) -> None:
    mailbox = Mailbox[int](8)
    for n in range(5):
        mailbox.put_nowait(n)

    assert [await mailbox.get() for _ in range(5)] == [0, 1, 2, 3, 4]
    assert mailbox.depth == 0


async def test_a_waiting_reader_gets_the_next_message_before_later_ones(
    autojump_clock: MockClock,
) -> None:
    mailbox = Mailbox[int](8)
    got: list[int] = []

    async def reader() -> None:
        for _ in range(3):
            got.append(await mailbox.get())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        for n in range(3):  # the first goes straight to the parked reader, the others queue
            mailbox.put_nowait(n)

    assert got == [0, 1, 2]


async def test_a_full_mailbox_refuses_put_nowait_and_makes_put_wait_for_room(
    autojump_clock: MockClock,
) -> None:
    mailbox = Mailbox[str](2)
    mailbox.put_nowait("a")
    mailbox.put_nowait("b")
    with pytest.raises(trio.WouldBlock):
        mailbox.put_nowait("c")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(mailbox.put, "c")
        nursery.start_soon(mailbox.put, "d")
        await trio.testing.wait_all_tasks_blocked()
        assert mailbox.depth == 2  # both senders wait

        assert await mailbox.get() == "a"
        assert await mailbox.get() == "b"
        await trio.testing.wait_all_tasks_blocked()

    assert sorted([await mailbox.get(), await mailbox.get()]) == ["c", "d"]
    assert mailbox.depth == 0


async def test_a_cancelled_get_loses_no_message(autojump_clock: MockClock) -> None:
    mailbox = Mailbox[int](4)

    with trio.move_on_after(1):
        await mailbox.get()
    mailbox.put_nowait(7)  # no reader is parked any more: it must be queued, not handed over

    assert mailbox.depth == 1
    assert await mailbox.get() == 7


async def test_a_cancelled_put_queues_nothing(autojump_clock: MockClock) -> None:
    mailbox = Mailbox[int](1)
    mailbox.put_nowait(1)

    with trio.move_on_after(1):
        await mailbox.put(2)

    assert mailbox.depth == 1
    assert await mailbox.get() == 1
    assert mailbox.depth == 0


async def test_a_second_reader_is_refused(autojump_clock: MockClock) -> None:
    mailbox = Mailbox[int](1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(mailbox.get)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await mailbox.get()
        mailbox.put_nowait(1)


async def test_close_returns_the_queued_messages_and_fails_waiting_senders_and_reader(
    autojump_clock: MockClock,
) -> None:
    mailbox = Mailbox[int](1)
    mailbox.put_nowait(1)
    failures: list[str] = []

    async def sender() -> None:
        try:
            await mailbox.put(2)
        except trio.ClosedResourceError:
            failures.append("sender")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender)
        await trio.testing.wait_all_tasks_blocked()
        assert mailbox.close() == [1]
    assert failures == ["sender"]
    assert mailbox.close() == []  # idempotent

    empty = Mailbox[int](1)

    async def reader() -> None:
        try:
            await empty.get()
        except trio.ClosedResourceError:
            failures.append("reader")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        empty.close()
    assert failures == ["sender", "reader"]

    with pytest.raises(trio.ClosedResourceError):
        mailbox.put_nowait(3)


async def test_a_reopened_mailbox_takes_messages_again(autojump_clock: MockClock) -> None:
    mailbox = Mailbox[int](2)
    mailbox.close()

    mailbox.reopen()
    mailbox.put_nowait(5)

    assert not mailbox.closed
    assert await mailbox.get() == 5


def test_a_mailbox_needs_room_for_one_message() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Mailbox[int](0)


async def test_a_reply_slot_wakes_its_caller_with_the_reply(autojump_clock: MockClock) -> None:
    slot = ReplySlot[int]()
    got: list[object] = []

    async def caller() -> None:
        got.append(await slot.wait())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(caller)
        await trio.testing.wait_all_tasks_blocked()
        slot.send(Ok(42))
        slot.send(Ok(43))  # only the first answer counts

    assert got == [Ok(42)]
    assert await slot.wait() == Ok(42)  # answered already: no waiting


async def test_a_reply_slot_closed_unanswered_raises_end_of_channel(
    autojump_clock: MockClock,
) -> None:
    slot = ReplySlot[int]()

    async with trio.open_nursery() as nursery:

        async def caller() -> None:
            with pytest.raises(trio.EndOfChannel):
                await slot.wait()

        nursery.start_soon(caller)
        await trio.testing.wait_all_tasks_blocked()
        slot.close()

    with pytest.raises(trio.EndOfChannel):
        await slot.wait()


async def test_a_reply_after_the_caller_gave_up_is_dropped(autojump_clock: MockClock) -> None:
    slot = ReplySlot[int]()

    with trio.move_on_after(1) as timed_out:
        await slot.wait()

    slot.send(Ok(1))  # the actor answers late: nobody is woken, nothing is kept
    assert timed_out.cancelled_caught
    assert slot.closed
    with pytest.raises(trio.EndOfChannel):
        await slot.wait()


def test_a_reply_callback_is_called_once_with_the_reply_or_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answered: list[object] = []
    slot = ReplyCallback[int](answered.append)
    slot.send(Ok(7))
    slot.send(Ok(8))
    slot.close()
    assert answered == [Ok(7)]

    closed: list[object] = []
    unanswered = ReplyCallback[int](closed.append)
    unanswered.close()
    unanswered.send(Ok(9))
    assert closed == [None]

    def broken(_: object) -> None:
        raise RuntimeError("callback bug")

    ReplyCallback[int](broken).send(Ok(1))  # logged, never raised into whoever answers
    assert "reply callback failed" in caplog.text
