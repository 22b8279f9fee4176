"""Registry: synchronous look-ups, start-once under concurrency, entries that vanish on exit."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from parley.actors import ActorChild, ActorSystem, AlreadyRegistered, Registry
from parley.supervision import DuplicateChildError, DynamicSupervisor, Restart

from .recorder import (
    Add,
    Journal,
    Ping,
    Recorder,
    RecorderCall,
    RecorderCast,
    RecorderReply,
    StopNow,
    Total,
    start_recorder,
)

MockClock = trio.testing.MockClock
RecorderChild = ActorChild[RecorderCall, RecorderReply, RecorderCast]


@pytest.fixture
async def registry(system: ActorSystem, nursery: trio.Nursery) -> Registry:
    registry = Registry(system)
    parent = DynamicSupervisor("root", backoff_seconds=0.0)
    await nursery.start(parent.run)
    await parent.start_child(registry.child_spec())
    return registry


def recorder_child(
    system: ActorSystem,
    key: str,
    journal: Journal,
    *,
    restart: Restart = Restart.TRANSIENT,
    created: list[str] | None = None,
) -> RecorderChild:
    if created is not None:
        created.append(key)
    return system.child(
        Recorder,
        lambda: Recorder(journal),
        capacity=8,
        key=key,
        restart=restart,
        name=f"recorder:{key}",
    )


async def test_lookup_of_an_unknown_key_is_none(
    autojump_clock: MockClock, registry: Registry
) -> None:
    assert registry.lookup("conversation:nobody") is None


async def test_a_hundred_concurrent_ensure_started_start_exactly_one_actor(
    autojump_clock: MockClock,
    system: ActorSystem,
    supervisor: DynamicSupervisor,
    registry: Registry,
) -> None:
    journal = Journal()
    created: list[str] = []
    refs: list[object] = []

    async def ensure() -> None:
        ref = await registry.ensure_started(
            "conversation:1",
            lambda: recorder_child(system, "conversation:1", journal, created=created),
            supervisor,
        )
        refs.append(ref)

    async with trio.open_nursery() as nursery:
        for _ in range(100):
            nursery.start_soon(ensure)

    assert len(refs) == 100
    assert len({id(ref) for ref in refs}) == 1
    assert created == ["conversation:1"]
    assert journal.inits == 1
    assert len(supervisor) == 1
    assert registry.lookup("conversation:1") is refs[0]


async def test_ensure_started_returns_a_typed_ref_that_works(
    autojump_clock: MockClock,
    system: ActorSystem,
    supervisor: DynamicSupervisor,
    registry: Registry,
) -> None:
    ref = await registry.ensure_started(
        "conversation:2", lambda: recorder_child(system, "conversation:2", Journal()), supervisor
    )

    assert await ref.call(Ping("hi")) == "pong hi"


async def test_the_entry_vanishes_when_the_actor_exits_for_good(
    autojump_clock: MockClock,
    system: ActorSystem,
    supervisor: DynamicSupervisor,
    registry: Registry,
) -> None:
    ref = await registry.ensure_started(
        "conversation:3", lambda: recorder_child(system, "conversation:3", Journal()), supervisor
    )

    await ref.call(StopNow())  # a transient actor returning normally ends its slot
    await trio.testing.wait_all_tasks_blocked()

    assert registry.lookup("conversation:3") is None
    assert len(registry) == 0
    assert registry.ref.describe()["state"] == {"entries": 0}  # the exit notice was processed


async def test_the_entry_survives_a_restart_of_its_actor(
    autojump_clock: MockClock,
    system: ActorSystem,
    supervisor: DynamicSupervisor,
    registry: Registry,
) -> None:
    ref = await registry.ensure_started(
        "conversation:4", lambda: recorder_child(system, "conversation:4", Journal()), supervisor
    )

    ref.kill("test")
    await trio.testing.wait_all_tasks_blocked()

    assert registry.lookup("conversation:4") is ref
    assert ref.statistics().restarts == 1


async def test_ensure_started_after_the_actor_ended_starts_a_new_one(
    autojump_clock: MockClock,
    system: ActorSystem,
    supervisor: DynamicSupervisor,
    registry: Registry,
) -> None:
    first = await registry.ensure_started(
        "conversation:5", lambda: recorder_child(system, "conversation:5", Journal()), supervisor
    )
    await first.call(StopNow())
    await trio.testing.wait_all_tasks_blocked()

    second = await registry.ensure_started(
        "conversation:5", lambda: recorder_child(system, "conversation:5", Journal()), supervisor
    )

    assert second is not first
    assert second.alive
    assert registry.lookup("conversation:5") is second


async def test_a_startup_error_reaches_the_caller_and_registers_nothing(
    autojump_clock: MockClock,
    system: ActorSystem,
    supervisor: DynamicSupervisor,
    registry: Registry,
) -> None:
    journal = Journal(failing_inits=1)

    with pytest.raises(RuntimeError, match="init failed"):
        await registry.ensure_started(
            "conversation:6", lambda: recorder_child(system, "conversation:6", journal), supervisor
        )

    assert registry.lookup("conversation:6") is None
    assert registry.ref.statistics().restarts == 0  # the registry itself did not crash


async def test_a_supervisor_refusal_reaches_the_caller(
    autojump_clock: MockClock,
    system: ActorSystem,
    supervisor: DynamicSupervisor,
    registry: Registry,
) -> None:
    squatter = await start_recorder(system, supervisor, Journal())

    with pytest.raises(DuplicateChildError):
        await registry.ensure_started(
            "conversation:7",
            lambda: system.child(
                Recorder, lambda: Recorder(Journal()), capacity=8, name=squatter.id
            ),
            supervisor,
        )


async def test_register_refuses_a_second_live_actor_for_a_key(
    autojump_clock: MockClock,
    system: ActorSystem,
    supervisor: DynamicSupervisor,
    registry: Registry,
) -> None:
    first = await start_recorder(system, supervisor, Journal())
    second = await start_recorder(system, supervisor, Journal())
    await registry.register("session:1", first)
    await registry.register("session:1", first)  # the same ref again is fine

    with pytest.raises(AlreadyRegistered) as refused:
        await registry.register("session:1", second)

    assert refused.value.actor_id == first.id
    assert registry.lookup("session:1") is first


async def test_a_registered_actor_is_forgotten_when_it_is_terminated(
    autojump_clock: MockClock,
    system: ActorSystem,
    supervisor: DynamicSupervisor,
    registry: Registry,
) -> None:
    session = await start_recorder(system, supervisor, Journal(), restart=Restart.TEMPORARY)
    await registry.register("session:2", session)

    await supervisor.terminate_child(session.id)

    assert registry.lookup("session:2") is None


async def test_unregister_removes_only_the_given_ref(
    autojump_clock: MockClock,
    system: ActorSystem,
    supervisor: DynamicSupervisor,
    registry: Registry,
) -> None:
    first = await start_recorder(system, supervisor, Journal())
    other = await start_recorder(system, supervisor, Journal())
    await registry.register("session:3", first)

    await registry.unregister("session:3", other)
    assert registry.lookup("session:3") is first

    await registry.unregister("session:3")
    assert registry.lookup("session:3") is None


async def test_entries_survive_a_crash_of_the_registry_actor(
    autojump_clock: MockClock,
    system: ActorSystem,
    supervisor: DynamicSupervisor,
    registry: Registry,
) -> None:
    ref = await registry.ensure_started(
        "conversation:8", lambda: recorder_child(system, "conversation:8", Journal()), supervisor
    )
    ref.cast(Add(3))

    registry.ref.kill("test")
    await trio.testing.wait_all_tasks_blocked()

    assert registry.ref.statistics().restarts == 1
    assert registry.lookup("conversation:8") is ref
    same = await registry.ensure_started(
        "conversation:8", lambda: recorder_child(system, "conversation:8", Journal()), supervisor
    )
    assert same is ref
    assert await ref.call(Total()) == 3
