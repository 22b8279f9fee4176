"""The runtime's slot and the public ref over it, apart: what each owns and who drives what.

The slot is driven here by hand, as `runtime.py` drives it, with no actor class and no
supervisor: that it works alone is the point of the split. The last test pins the split itself:
the ref offers no method that starts, ends or counts an incarnation.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from parley.actors import ActorRef, ActorUnavailable, MailboxFull, Overflow
from parley.actors.mailbox import Call, Cast, Info, Ok, ReplyCallback, ReplySlot
from parley.actors.slot import ActorSlot

MockClock = trio.testing.MockClock


def _slot(capacity: int = 4) -> ActorSlot[str, str, str]:
    return ActorSlot("probe-1", "probe", "k", capacity)


def _ref(
    slot: ActorSlot[str, str, str], overflow: Overflow = Overflow.RAISE
) -> ActorRef[str, str, str]:
    return ActorRef(slot, overflow=overflow, call_timeout=5.0)


def test_a_ref_names_its_slot_and_queues_into_its_mailbox() -> None:
    slot = _slot()
    ref = _ref(slot)
    answers: list[object] = []

    assert (ref.id, ref.kind, ref.key) == ("probe-1", "probe", "k")
    assert ref.cast("a") and ref.info("b") and ref.call_soon("c", answers.append)

    queued = slot.mailbox.close()
    assert [type(envelope) for envelope in queued] == [Cast, Info, Call]
    assert [envelope.message for envelope in queued] == ["a", "b", "c"]


def test_overflow_is_counted_on_the_slot_whatever_the_policy_does() -> None:
    slot = _slot(capacity=1)
    raising, dropping = _ref(slot), _ref(slot, Overflow.DROP)
    raising.cast("fills it")

    with pytest.raises(MailboxFull):
        raising.cast("one too many")
    assert not dropping.cast("dropped")
    assert not raising.call_soon("refused", lambda _: None)  # refused, not an overflow

    assert slot.dropped == 2
    assert slot.statistics().dropped == 2


async def test_kill_cancels_the_running_incarnation_only(autojump_clock: MockClock) -> None:
    slot = _slot()
    ref = _ref(slot)
    ref.kill("nothing runs")  # down: a no-op, not an error

    incarnation = slot.begin(lambda: {"state": "up"})
    assert ref.running
    with incarnation.scope:
        ref.kill("first")
        ref.kill("second")
        await trio.sleep_forever()
    slot.end(incarnation, RuntimeError("killed"))

    assert incarnation.scope.cancelled_caught
    assert incarnation.kill_reason == "first"
    assert not ref.running
    assert slot.statistics().last_error == repr(RuntimeError("killed"))


def test_statistics_count_restarts_and_describe_shows_the_incarnation() -> None:
    slot = _slot()
    ref = _ref(slot)

    first = slot.begin(lambda: {"n": 1})
    slot.end(first, None)
    second = slot.begin(lambda: {"n": 2})
    slot.processed += 3

    stats = ref.statistics()
    assert (stats.running, stats.restarts, stats.processed) == (True, 1, 3)
    assert ref.describe()["state"] == {"n": 2}

    slot.end(second, None)
    broken = slot.begin(lambda: {"n": 1 / 0})
    assert ref.describe()["state"] == {
        "describe_error": repr(ZeroDivisionError("division by zero"))
    }
    slot.end(broken, None)
    assert "state" not in ref.describe()


async def test_retire_fails_queued_calls_and_tells_monitors_once(
    autojump_clock: MockClock,
) -> None:
    slot = _slot()
    ref = _ref(slot)
    watcher_slot = _slot()
    watcher = _ref(watcher_slot)
    answers: list[object] = []
    waited = ReplySlot[str]()
    slot.mailbox.put_nowait(Call("waits", waited))
    ref.call_soon("soon", answers.append)
    ref.monitor(watcher, "down")

    slot.retire()
    slot.retire()  # ended already: nobody is told twice

    assert not ref.alive
    assert answers == [None]
    with pytest.raises(trio.EndOfChannel):
        await waited.wait()
    assert [envelope.message for envelope in watcher_slot.mailbox.close()] == ["down"]
    with pytest.raises(ActorUnavailable):
        ref.cast("gone")
    with pytest.raises(ActorUnavailable):
        ref.kill("gone")


def test_a_monitor_of_an_ended_slot_is_told_at_once_and_reopening_revives_the_slot() -> None:
    slot = _slot()
    ref = _ref(slot)
    watcher_slot = _slot()
    slot.retire()

    ref.monitor(_ref(watcher_slot), "already down")

    assert [envelope.message for envelope in watcher_slot.mailbox.close()] == ["already down"]
    assert slot.reopen()
    assert not slot.reopen()  # open already
    assert ref.alive and ref.cast("back")


def test_a_reply_callback_answers_the_call_soon_caller() -> None:
    answers: list[object] = []
    slot = _slot()
    _ref(slot).call_soon("question", answers.append)
    (call,) = slot.mailbox.close()

    assert isinstance(call, Call) and isinstance(call.reply_to, ReplyCallback)
    call.reply_to.send(Ok("answer"))
    call.reply_to.close()  # the runtime closes every call it is done with: a no-op now
    assert answers == [Ok("answer")]


def test_the_ref_has_no_method_that_drives_an_incarnation() -> None:
    private = {
        name
        for name, value in vars(ActorRef).items()
        if name.startswith("_") and not name.startswith("__") and callable(value)
    }

    # Its own helpers for casts, nothing the runtime calls (start, end, count, retire, reopen).
    assert private == {"_deliver", "_overflowed"}
