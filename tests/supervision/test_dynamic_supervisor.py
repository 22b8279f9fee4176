"""DynamicSupervisor: children started and terminated at run time, restarted one by one."""

from __future__ import annotations

import dataclasses

import pytest
import trio
import trio.testing

from parley.supervision import (
    ChildSpec,
    ChildStatus,
    ChildStoppedError,
    DuplicateChildError,
    DynamicSupervisor,
    Restart,
    SupervisorEscalation,
    SupervisorNotRunningError,
    TooManyChildrenError,
    UnknownChildError,
)

from .scripted import CrashError, Event, ScriptedChild, StartupError


def dynamic(*, max_restarts: int = 3, max_children: int | None = None) -> DynamicSupervisor:
    return DynamicSupervisor(
        "dynamic",
        max_restarts=max_restarts,
        window_seconds=5.0,
        backoff_seconds=0.0,
        max_children=max_children,
    )


async def test_start_child_returns_the_value_the_child_started_with(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    sup = await nursery.start(dynamic().run)

    value = await sup.start_child(ScriptedChild("a", []).spec())

    assert value == "a#1"
    assert "a" in sup
    assert len(sup) == 1


async def test_start_child_raises_the_startup_error_and_keeps_nothing(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    sup = await nursery.start(dynamic().run)
    ended: list[str] = []
    child = ScriptedChild("a", [], failing_starts=1)
    spec = dataclasses.replace(child.spec(), on_terminated=lambda: ended.append("a"))

    with pytest.raises(StartupError):
        await sup.start_child(spec)

    assert len(sup) == 0
    assert ended == ["a"]
    assert await sup.start_child(child.spec()) == "a#2"  # the name is free again


async def test_a_duplicate_child_name_is_rejected(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    sup = await nursery.start(dynamic().run)
    await sup.start_child(ScriptedChild("a", []).spec())

    with pytest.raises(DuplicateChildError):
        await sup.start_child(ScriptedChild("a", []).spec())


async def test_max_children_is_enforced(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    sup = await nursery.start(dynamic(max_children=2).run)
    await sup.start_child(ScriptedChild("a", []).spec())
    await sup.start_child(ScriptedChild("b", []).spec())

    with pytest.raises(TooManyChildrenError):
        await sup.start_child(ScriptedChild("c", []).spec())


async def test_terminate_child_stops_it_for_good_and_frees_its_name(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    log: list[Event] = []
    sup = await nursery.start(dynamic().run)
    child = ScriptedChild("a", log)
    await sup.start_child(child.spec())

    await sup.terminate_child("a")
    await trio.testing.wait_all_tasks_blocked()

    assert log == [("start", "a"), ("stop", "a")]
    assert "a" not in sup
    with pytest.raises(UnknownChildError):
        await sup.terminate_child("a")


async def test_a_crashed_permanent_child_is_restarted_alone(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    log: list[Event] = []
    sup = await nursery.start(dynamic().run)
    a, b = ScriptedChild("a", log), ScriptedChild("b", log)
    await sup.start_child(a.spec())
    await sup.start_child(b.spec())
    log.clear()

    a.crash()
    await trio.testing.wait_all_tasks_blocked()

    assert log == [("crash", "a"), ("start", "a")]
    [a_stats, b_stats] = sup.statistics().children
    assert (a_stats.restarts, a_stats.status) == (1, ChildStatus.RUNNING)
    assert b_stats.restarts == 0


@pytest.mark.parametrize("restart", [Restart.TRANSIENT, Restart.TEMPORARY])
async def test_a_child_that_returns_normally_and_is_not_permanent_is_forgotten(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, restart: Restart
) -> None:
    sup = await nursery.start(dynamic().run)
    child = ScriptedChild("a", [], restart=restart)
    await sup.start_child(child.spec())

    child.finish()
    await trio.testing.wait_all_tasks_blocked()

    assert "a" not in sup
    assert child.starts == 1


async def test_too_many_restarts_end_the_dynamic_supervisor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[Event] = []
    sup = dynamic(max_restarts=1)
    bystander, crasher = ScriptedChild("bystander", log), ScriptedChild("crasher", log)

    with pytest.RaisesGroup(
        pytest.RaisesExc(
            SupervisorEscalation, check=lambda exc: isinstance(exc.__cause__, CrashError)
        )
    ):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            await sup.start_child(bystander.spec())
            await sup.start_child(crasher.spec())
            for _ in range(2):
                crasher.crash()
                await trio.testing.wait_all_tasks_blocked()

    assert log[-2:] == [("crash", "crasher"), ("stop", "bystander")]
    assert not sup.running
    with pytest.raises(SupervisorNotRunningError):
        await sup.start_child(ScriptedChild("late", log).spec())


async def test_with_intensity_per_child_only_the_child_past_it_is_given_up(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    log: list[Event] = []
    sup = DynamicSupervisor(
        "dynamic", max_restarts=2, window_seconds=5.0, backoff_seconds=0.0, intensity_per_child=True
    )
    await nursery.start(sup.run)
    bystanders = [ScriptedChild(f"b{n}", log) for n in range(3)]
    crasher = ScriptedChild("crasher", log)
    for child in [*bystanders, crasher]:
        await sup.start_child(child.spec())
    # Each bystander crashes as often as the intensity allows: none of them is given up.
    for _ in range(2):
        for child in bystanders:
            child.crash()
        await trio.testing.wait_all_tasks_blocked()
    for _ in range(3):
        crasher.crash()
        await trio.testing.wait_all_tasks_blocked()

    assert crasher.starts == 3  # started, then restarted exactly twice
    assert "crasher" not in sup
    assert sup.given_up == 1
    assert sup.running
    assert all(child.name in sup and child.starts == 3 for child in bystanders)
    await sup.start_child(ScriptedChild("crasher", log).spec())  # its name is free again


async def test_shutdown_stops_children_in_reverse_start_order(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    log: list[Event] = []
    sup = await nursery.start(dynamic().run)
    for name in "abc":
        await sup.start_child(ScriptedChild(name, log).spec())
    log.clear()

    await sup.shutdown()

    assert log == [("stop", "c"), ("stop", "b"), ("stop", "a")]
    assert len(sup) == 0


async def test_terminating_a_child_while_it_starts_fails_that_start(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    sup = await nursery.start(dynamic().run)
    entered = trio.Event()

    async def slow_start(*, task_status: trio.TaskStatus[None]) -> None:
        entered.set()
        await trio.sleep_forever()

    async def terminate_once_starting() -> None:
        await entered.wait()
        await sup.terminate_child("slow")

    nursery.start_soon(terminate_once_starting)
    with pytest.raises(ChildStoppedError):
        await sup.start_child(ChildSpec("slow", slow_start))

    assert "slow" not in sup
