"""`Waiter` on its own: one parked task, handed a value or an error, and cancellation."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from parley.actors.waiter import Waiter

MockClock = trio.testing.MockClock


async def test_wake_hands_the_value_to_the_parked_task(autojump_clock: MockClock) -> None:
    waiter = Waiter[str]()
    got: list[str] = []

    async def parked() -> None:
        got.append(await waiter.park())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(parked)
        await trio.testing.wait_all_tasks_blocked()
        assert waiter.waiting
        assert waiter.wake("hello")
        assert not waiter.waiting  # unparked at once, before the task even runs
        assert not waiter.wake("again")  # nobody parked any more: nothing done

    assert got == ["hello"]


def test_wake_and_fail_with_nobody_parked_do_nothing_and_say_so() -> None:
    waiter = Waiter[int]()

    assert not waiter.waiting
    assert not waiter.wake(1)
    assert not waiter.fail(RuntimeError("nobody hears this"))
    assert waiter.task is None


async def test_fail_raises_the_error_in_the_parked_task(autojump_clock: MockClock) -> None:
    waiter = Waiter[int]()
    raised: list[BaseException] = []

    async def parked() -> None:
        try:
            await waiter.park()
        except trio.ClosedResourceError as exc:
            raised.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(parked)
        await trio.testing.wait_all_tasks_blocked()
        assert waiter.fail(trio.ClosedResourceError("closed"))

    assert [str(exc) for exc in raised] == ["closed"]


async def test_a_second_task_cannot_park_on_a_taken_waiter(autojump_clock: MockClock) -> None:
    waiter = Waiter[int]()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter.park)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await waiter.park()
        assert waiter.wake(0)  # the first is still parked, and is the one woken


async def test_a_cancelled_park_unparks_so_a_later_value_stays_with_the_owner(
    autojump_clock: MockClock,
) -> None:
    waiter = Waiter[int]()

    with trio.move_on_after(1) as timed_out:
        await waiter.park()

    assert timed_out.cancelled_caught
    assert not waiter.waiting
    assert not waiter.wake(5)  # False: the owner keeps 5 (a mailbox queues it)


async def test_a_waiter_is_reused_wait_after_wait(autojump_clock: MockClock) -> None:
    waiter = Waiter[int]()
    got: list[int] = []

    async def parked() -> None:
        for _ in range(3):
            got.append(await waiter.park())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(parked)
        for n in range(3):
            await trio.testing.wait_all_tasks_blocked()
            assert waiter.wake(n)

    assert got == [0, 1, 2]
