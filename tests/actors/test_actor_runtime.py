"""The actor runtime: call/cast/info/send, crashes and kills, overflow, idle stop, stats."""

from __future__ import annotations

import json
import math

import pytest
import trio
import trio.testing

from parley.actors import (
    Actor,
    ActorCrashed,
    ActorKilled,
    ActorSystem,
    ActorUnavailable,
    CallTimeout,
    ExitKind,
    MailboxFull,
)
from parley.actors.mailbox import Failed, Ok
from parley.supervision import DynamicSupervisor, Restart, Supervisor

from .recorder import (
    Add,
    DroppingRecorder,
    Fail,
    Hang,
    Journal,
    KilledOnOverflowRecorder,
    Ping,
    Recorder,
    RecorderRef,
    StopNow,
    Total,
    Wait,
    start_recorder,
)

MockClock = trio.testing.MockClock


async def test_call_returns_the_handlers_reply(
    autojump_clock: MockClock, system: ActorSystem, supervisor: DynamicSupervisor
) -> None:
    ref = await start_recorder(system, supervisor, Journal())

    assert await ref.call(Ping("hello")) == "pong hello"


async def test_a_call_without_a_reply_in_time_raises_call_timeout_naming_actor_and_message(
    autojump_clock: MockClock, system: ActorSystem, supervisor: DynamicSupervisor
) -> None:
    ref = await start_recorder(system, supervisor, Journal())

    with pytest.raises(CallTimeout, match=rf"{ref.id}: no reply to Hang within 2s") as caught:
        await ref.call(Hang(), timeout=2.0)

    assert (caught.value.actor_id, caught.value.message_type) == (ref.id, "Hang")


async def test_the_default_call_timeout_comes_from_settings(
    autojump_clock: MockClock, system: ActorSystem, supervisor: DynamicSupervisor
) -> None:
    ref = await start_recorder(system, supervisor, Journal())
    t0 = trio.current_time()

    with pytest.raises(CallTimeout):
        await ref.call(Hang())

    assert trio.current_time() - t0 == pytest.approx(system.settings.call_timeout_seconds)


async def test_a_call_that_crashes_the_actor_fails_the_caller_and_the_actor_restarts_with_its_queue(
    autojump_clock: MockClock,
    system: ActorSystem,
    supervisor: DynamicSupervisor,
    nursery: trio.Nursery,
) -> None:
    journal = Journal()
    ref = await start_recorder(system, supervisor, journal)
    gate = trio.Event()
    ref.cast(Wait(gate))  # keeps the actor busy while the queue builds up
    outcome: list[BaseException] = []

    async def failing_call() -> None:
        try:
            await ref.call(Fail())
        except ActorCrashed as exc:
            outcome.append(exc)

    nursery.start_soon(failing_call)
    await trio.testing.wait_all_tasks_blocked()
    ref.cast(Add(5))  # queued behind the call that will crash the actor
    gate.set()
    await trio.testing.wait_all_tasks_blocked()

    [crashed] = outcome
    assert isinstance(crashed.__cause__, ValueError)
    assert await ref.call(Total()) == 5  # the new incarnation handled the queued Add
    stats = ref.statistics()
    assert stats.restarts == 1
    assert stats.last_error == repr(ValueError("asked to fail"))
    assert journal.inits == 2
    assert [reason.kind for reason in journal.exits] == [ExitKind.CRASHED]


async def test_call_soon_answers_through_its_callback_or_refuses_when_full(
    autojump_clock: MockClock, system: ActorSystem, supervisor: DynamicSupervisor
) -> None:
    ref = await start_recorder(system, supervisor, Journal())
    gate = trio.Event()
    ref.cast(Wait(gate))  # busy: what follows queues
    replies: list[object] = []
    assert ref.call_soon(Ping("soon"), replies.append)
    assert ref.call_soon(Fail(), replies.append)
    while ref.call_soon(Ping("filler"), replies.append):
        pass  # until the mailbox is full: then nothing is queued and False says so
    depth = ref.statistics().mailbox_depth
    assert depth == ref.statistics().mailbox_capacity
    gate.set()
    await trio.testing.wait_all_tasks_blocked()

    assert replies[0] == Ok("pong soon")
    assert isinstance(replies[1], Failed) and isinstance(replies[1].error, ActorCrashed)
    # The crash lost only the message being handled; the fillers were answered after the restart.
    assert replies[2:] == [Ok("pong filler")] * (depth - 2)


async def test_call_soon_answers_none_when_the_slot_ends_first(
    autojump_clock: MockClock, system: ActorSystem, supervisor: DynamicSupervisor
) -> None:
    ref = await start_recorder(system, supervisor, Journal(), restart=Restart.TEMPORARY)
    gate = trio.Event()
    ref.cast(Wait(gate))
    replies: list[object] = []
    assert ref.call_soon(Ping("never"), replies.append)
    ref.kill("test")  # temporary: not restarted, so the queued call is never handled
    await trio.testing.wait_all_tasks_blocked()

    assert replies == [None]
    assert not ref.call_soon(Ping("gone"), replies.append)


async def test_state_is_rebuilt_by_the_factory_on_restart(
    autojump_clock: MockClock, system: ActorSystem, supervisor: DynamicSupervisor
) -> None:
    journal = Journal()
    ref = await start_recorder(system, supervisor, journal)
    ref.cast(Add(7))
    assert await ref.call(Total()) == 7

    ref.kill("test")
    await trio.testing.wait_all_tasks_blocked()

    assert await ref.call(Total()) == 0
    assert journal.inits == 2


async def test_kill_restarts_the_actor_and_bumps_its_restart_count(
    autojump_clock: MockClock, system: ActorSystem, supervisor: DynamicSupervisor
) -> None:
    journal = Journal()
    ref = await start_recorder(system, supervisor, journal)

    ref.kill("operator asked")
    await trio.testing.wait_all_tasks_blocked()

    stats = ref.statistics()
    assert stats.restarts == 1
    assert stats.running
    assert stats.last_error is not None
    assert "operator asked" in stats.last_error
    [exit_reason] = journal.exits
    assert exit_reason.kind is ExitKind.KILLED
    assert isinstance(exit_reason.error, ActorKilled)


async def test_kill_fails_the_call_in_progress_with_actor_unavailable(
    autojump_clock: MockClock,
    system: ActorSystem,
    supervisor: DynamicSupervisor,
    nursery: trio.Nursery,
) -> None:
    ref = await start_recorder(system, supervisor, Journal())
    outcome: list[BaseException] = []

    async def hanging_call() -> None:
        try:
            await ref.call(Hang(), timeout=math.inf)
        except ActorUnavailable as exc:
            outcome.append(exc)

    nursery.start_soon(hanging_call)
    await trio.testing.wait_all_tasks_blocked()
    ref.kill("stuck")
    await trio.testing.wait_all_tasks_blocked()

    [error] = outcome
    assert not isinstance(error, ActorCrashed)
    assert "went down before replying to Hang" in str(error)
    assert await ref.call(Ping("again")) == "pong again"


async def test_queued_calls_fail_with_actor_unavailable_when_the_slot_ends(
    autojump_clock: MockClock,
    system: ActorSystem,
    supervisor: DynamicSupervisor,
    nursery: trio.Nursery,
) -> None:
    ref = await start_recorder(system, supervisor, Journal())
    ref.cast(Wait(trio.Event()))  # busy for good
    failures: list[BaseException] = []

    async def queued_call(text: str) -> None:
        try:
            await ref.call(Ping(text), timeout=math.inf)
        except ActorUnavailable as exc:
            failures.append(exc)

    for text in ("one", "two"):
        nursery.start_soon(queued_call, text)
    await trio.testing.wait_all_tasks_blocked()
    await supervisor.terminate_child(ref.id)
    await trio.testing.wait_all_tasks_blocked()

    assert len(failures) == 2
    assert not ref.alive
    with pytest.raises(ActorUnavailable):
        await ref.call(Ping("late"))
    with pytest.raises(ActorUnavailable):
        ref.cast(Add(1))


async def test_a_cast_overflow_under_drop_is_dropped_and_counted(
    autojump_clock: MockClock, system: ActorSystem, supervisor: DynamicSupervisor
) -> None:
    ref = await start_recorder(
        system, supervisor, Journal(), actor_class=DroppingRecorder, capacity=2
    )
    gate = trio.Event()
    ref.cast(Wait(gate))
    await trio.testing.wait_all_tasks_blocked()

    delivered = [ref.cast(Add(n)) for n in (1, 2, 4)]
    gate.set()

    assert delivered == [True, True, False]
    assert await ref.call(Total()) == 3
    assert ref.statistics().dropped == 1
    assert ref.statistics().restarts == 0


async def test_a_cast_overflow_under_raise_raises_mailbox_full_and_is_counted(
    autojump_clock: MockClock, system: ActorSystem, supervisor: DynamicSupervisor
) -> None:
    ref = await start_recorder(system, supervisor, Journal(), capacity=2)
    gate = trio.Event()
    ref.cast(Wait(gate))
    await trio.testing.wait_all_tasks_blocked()
    ref.cast(Add(1))
    ref.cast(Add(2))

    with pytest.raises(MailboxFull, match="mailbox full"):
        ref.cast(Add(4))

    gate.set()
    assert await ref.call(Total()) == 3
    assert ref.statistics().dropped == 1


async def test_a_cast_overflow_under_kill_kills_the_actor_and_is_counted(
    autojump_clock: MockClock, system: ActorSystem, supervisor: DynamicSupervisor
) -> None:
    journal = Journal()
    ref = await start_recorder(
        system, supervisor, journal, actor_class=KilledOnOverflowRecorder, capacity=2
    )
    ref.cast(Wait(trio.Event()))  # never released: only the kill gets it out
    await trio.testing.wait_all_tasks_blocked()
    ref.cast(Add(1))
    ref.cast(Add(2))

    assert ref.cast(Add(4)) is False
    await trio.testing.wait_all_tasks_blocked()

    stats = ref.statistics()
    assert (stats.dropped, stats.restarts) == (1, 1)
    assert [reason.kind for reason in journal.exits] == [ExitKind.KILLED]
    assert await ref.call(Total()) == 3  # the queued casts survived the kill


async def test_send_waits_for_mailbox_space(
    autojump_clock: MockClock,
    system: ActorSystem,
    supervisor: DynamicSupervisor,
    nursery: trio.Nursery,
) -> None:
    ref = await start_recorder(system, supervisor, Journal(), capacity=1)
    gate = trio.Event()
    ref.cast(Wait(gate))
    await trio.testing.wait_all_tasks_blocked()
    ref.cast(Add(1))
    sent = trio.Event()

    async def send() -> None:
        await ref.send(Add(2))
        sent.set()

    nursery.start_soon(send)
    await trio.testing.wait_all_tasks_blocked()
    assert not sent.is_set()

    gate.set()
    await trio.testing.wait_all_tasks_blocked()
    assert sent.is_set()
    assert await ref.call(Total()) == 3
    assert ref.statistics().dropped == 0


async def test_info_messages_reach_handle_info(
    autojump_clock: MockClock, system: ActorSystem, supervisor: DynamicSupervisor
) -> None:
    journal = Journal()
    ref = await start_recorder(system, supervisor, journal)

    assert ref.info("tick") is True
    await trio.testing.wait_all_tasks_blocked()

    assert journal.infos == ["tick"]


async def test_an_idle_transient_actor_returns_normally_and_stays_down(
    autojump_clock: MockClock,
    system: ActorSystem,
    supervisor: DynamicSupervisor,
    nursery: trio.Nursery,
) -> None:
    await nursery.start(system.idle_watch.run)  # checks every second (the settings' default)
    journal = Journal()
    ref = await start_recorder(
        system, supervisor, journal, restart=Restart.TRANSIENT, idle_timeout=10.0
    )
    await trio.sleep(6)
    ref.cast(Add(1))  # resets the idle timer
    await trio.sleep(6)
    assert ref.alive
    gate = trio.Event()
    ref.cast(Wait(gate))  # a handler busy past the timeout is not idle
    await trio.sleep(15)
    assert ref.alive
    gate.set()
    await trio.sleep(9.5)  # idle from the end of the handler on, not from its start
    assert ref.alive
    await trio.sleep(1)  # past the timeout: stopped at the next check

    assert not ref.alive
    assert [reason.kind for reason in journal.exits] == [ExitKind.IDLE]
    assert journal.inits == 1
    assert ref.id not in supervisor
    assert system.directory.get(ref.id) is None


async def test_an_actor_that_calls_stop_returns_normally(
    autojump_clock: MockClock, system: ActorSystem, supervisor: DynamicSupervisor
) -> None:
    journal = Journal()
    ref = await start_recorder(system, supervisor, journal, restart=Restart.TRANSIENT)

    assert await ref.call(StopNow()) is None
    await trio.testing.wait_all_tasks_blocked()

    assert not ref.alive
    assert [reason.kind for reason in journal.exits] == [ExitKind.NORMAL]


async def test_an_init_failure_comes_out_of_start_and_leaves_nothing_behind(
    autojump_clock: MockClock, system: ActorSystem, supervisor: DynamicSupervisor
) -> None:
    journal = Journal(failing_inits=1)

    with pytest.raises(RuntimeError, match="init failed"):
        await start_recorder(system, supervisor, journal)

    assert len(supervisor) == 0
    assert len(system.directory) == 0
    assert journal.exits == []  # terminate() is not called when init() failed


async def test_a_supervisor_stop_tells_terminate_it_is_a_shutdown(
    autojump_clock: MockClock, system: ActorSystem, supervisor: DynamicSupervisor
) -> None:
    journal = Journal()
    await start_recorder(system, supervisor, journal)

    await supervisor.shutdown()

    assert [reason.kind for reason in journal.exits] == [ExitKind.SHUTDOWN]


async def test_the_directory_lists_live_actors_and_forgets_ended_ones(
    autojump_clock: MockClock, system: ActorSystem, supervisor: DynamicSupervisor
) -> None:
    first = await start_recorder(system, supervisor, Journal(), key="first")
    second = await start_recorder(system, supervisor, Journal(), key="second")

    assert [stats.key for stats in system.directory.all()] == ["first", "second"]
    assert system.directory.get(first.id) is first

    await supervisor.terminate_child(first.id)

    assert [stats.id for stats in system.directory.all()] == [second.id]
    assert system.directory.get(first.id) is None


async def test_statistics_and_describe_give_the_operator_view(
    autojump_clock: MockClock, system: ActorSystem, supervisor: DynamicSupervisor
) -> None:
    ref: RecorderRef = await start_recorder(system, supervisor, Journal(), capacity=8, key="k")
    gate = trio.Event()
    ref.cast(Wait(gate))
    ref.cast(Add(2))
    await trio.testing.wait_all_tasks_blocked()

    busy = ref.statistics()
    gate.set()
    await trio.testing.wait_all_tasks_blocked()
    description = json.loads(json.dumps(ref.describe()))

    assert busy.id == ref.id
    assert ref.id.startswith("recorder-")
    assert (busy.kind, busy.key, busy.mailbox_capacity) == ("recorder", "k", 8)
    assert (busy.mailbox_depth, busy.processed) == (1, 0)
    assert busy.started_at is not None
    assert busy.started_at.tzinfo is not None
    assert description["processed"] == 2
    assert description["mailbox_depth"] == 0
    assert description["state"] == {"total": 2}


async def test_a_ref_stays_valid_when_its_parent_supervisor_starts_it_again(
    autojump_clock: MockClock, system: ActorSystem, nursery: trio.Nursery
) -> None:
    journal = Journal()
    child = system.child(Recorder, lambda: Recorder(journal), capacity=4, shutdown_timeout=1.0)
    inner = Supervisor("inner", [child.spec], max_restarts=0, backoff_seconds=0.0)
    outer = Supervisor("outer", [inner.child_spec()], backoff_seconds=0.0)
    await nursery.start(outer.run)

    with pytest.raises(ActorCrashed):
        await child.ref.call(Fail())  # inner escalates at once; outer runs it again
    await trio.testing.wait_all_tasks_blocked()

    assert await child.ref.call(Ping("back")) == "pong back"
    assert system.directory.get(child.ref.id) is child.ref
    assert journal.inits == 2


def test_an_actor_class_without_a_kind_is_rejected(system: ActorSystem) -> None:
    class Nameless(Actor[int, int, int]):
        pass

    with pytest.raises(TypeError, match="kind"):
        system.child(Nameless, Nameless, capacity=1)
