"""What the runtime shows operators of one actor, and ending an idle one on request."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from parley.actors import ActorCrashed, ActorSystem, ExitKind
from parley.config import ActorSettings
from parley.supervision import DynamicSupervisor, Restart

from .recorder import Add, Fail, Journal, Ping, Wait, start_recorder

MockClock = trio.testing.MockClock


async def test_an_actor_keeps_its_last_errors_with_their_times_and_no_more(
    autojump_clock: MockClock, supervisor: DynamicSupervisor
) -> None:
    system = ActorSystem(ActorSettings(recent_errors=2))
    ref = await start_recorder(system, supervisor, Journal())
    for _ in range(3):
        with pytest.raises(ActorCrashed):
            await ref.call(Fail())
        await trio.testing.wait_all_tasks_blocked()
    ref.kill("by hand")
    await trio.testing.wait_all_tasks_blocked()

    errors = ref.describe()["recent_errors"]
    assert isinstance(errors, list) and len(errors) == 2
    assert "ValueError" in errors[0]["error"] and "by hand" in errors[1]["error"]
    assert errors[0]["at"] <= errors[1]["at"]
    assert ref.statistics().last_error == errors[1]["error"]


async def test_the_queued_messages_are_named_by_kind_and_type_not_content(
    autojump_clock: MockClock, system: ActorSystem, supervisor: DynamicSupervisor
) -> None:
    ref = await start_recorder(system, supervisor, Journal())
    gate = trio.Event()
    ref.cast(Wait(gate))
    await trio.testing.wait_all_tasks_blocked()  # busy in Wait: the rest queue
    ref.cast(Add(41))
    ref.info("tick")
    assert ref.call_soon(Ping("secret"), lambda _: None)

    assert ref.queued(10) == [
        {"envelope": "cast", "message": "Add"},
        {"envelope": "info", "message": "str"},
        {"envelope": "call", "message": "Ping"},
    ]
    assert ref.queued(1) == [{"envelope": "cast", "message": "Add"}]
    assert "secret" not in repr(ref.queued(10))
    gate.set()


async def test_an_idle_actor_ends_on_request_and_a_busy_one_does_not(
    autojump_clock: MockClock, system: ActorSystem, supervisor: DynamicSupervisor
) -> None:
    journal = Journal()
    ref = await start_recorder(
        system, supervisor, journal, restart=Restart.TRANSIENT, idle_timeout=300.0
    )
    gate = trio.Event()
    ref.cast(Wait(gate))
    await trio.testing.wait_all_tasks_blocked()
    assert ref.idle_timeout == 300.0
    assert not ref.end_if_idle()  # busy
    gate.set()
    await trio.testing.wait_all_tasks_blocked()

    assert ref.end_if_idle()
    await trio.testing.wait_all_tasks_blocked()
    assert not ref.alive
    assert [reason.kind for reason in journal.exits] == [ExitKind.IDLE]
    assert system.directory.get(ref.id) is None  # transient: it stays down
    assert not ref.end_if_idle()


async def test_an_actor_without_an_idle_timeout_never_ends_as_idle(
    autojump_clock: MockClock, system: ActorSystem, supervisor: DynamicSupervisor
) -> None:
    ref = await start_recorder(system, supervisor, Journal())
    await trio.testing.wait_all_tasks_blocked()

    assert ref.idle_timeout is None and not ref.end_if_idle()
    assert ref.alive and ref.running


async def test_the_directory_sums_kinds_and_ranks_actors_from_their_counters(
    autojump_clock: MockClock, system: ActorSystem, supervisor: DynamicSupervisor
) -> None:
    quiet = await start_recorder(system, supervisor, Journal(), key="quiet")
    busy = await start_recorder(system, supervisor, Journal(), key="busy")
    for n in range(3):
        busy.cast(Add(n))
    quiet.cast(Add(1))
    await trio.testing.wait_all_tasks_blocked()
    busy.kill("once")
    await trio.testing.wait_all_tasks_blocked()

    (totals,) = system.directory.totals_by_kind().values()
    assert (totals.actors, totals.processed, totals.restarts, totals.dropped) == (2, 4, 1, 0)
    refs = system.directory.refs()
    by_processed = system.directory.ranked(refs, "processed", descending=True)
    assert [ref.key for ref in by_processed] == ["busy", "quiet"]
    assert [r.key for r in system.directory.ranked(refs, "restarts", descending=False)] == [
        "quiet",
        "busy",
    ]
