"""Supervisor: start order, restart types, the three strategies, intensity, ordered bounded stop."""

from __future__ import annotations

import json
import math

import pytest
import trio
import trio.testing

from parley.supervision import (
    ChildSpec,
    ChildStatus,
    Restart,
    Strategy,
    Supervisor,
    SupervisorEscalation,
)

from .scripted import CrashError, Event, ScriptedChild, StartupError


def three_children(log: list[Event], **options: Restart) -> list[ScriptedChild]:
    return [
        ScriptedChild(name, log, restart=options.get(name, Restart.PERMANENT)) for name in "abc"
    ]


def supervisor(
    children: list[ScriptedChild],
    strategy: Strategy = Strategy.ONE_FOR_ONE,
    *,
    max_restarts: int = 3,
    window_seconds: float = 5.0,
    backoff_seconds: float = 0.0,
) -> Supervisor:
    return Supervisor(
        "test",
        [child.spec() for child in children],
        strategy=strategy,
        max_restarts=max_restarts,
        window_seconds=window_seconds,
        backoff_seconds=backoff_seconds,
    )


async def test_children_start_in_order_before_the_supervisor_reports_started(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    log: list[Event] = []
    children = three_children(log)
    sup = supervisor(children)

    started = await nursery.start(sup.run)

    assert started is sup
    assert log == [("start", "a"), ("start", "b"), ("start", "c")]
    assert [child.status for child in sup.statistics().children] == [ChildStatus.RUNNING] * 3


async def test_one_for_one_restarts_only_the_crashed_child(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    log: list[Event] = []
    a, b, c = children = three_children(log)
    await nursery.start(supervisor(children, Strategy.ONE_FOR_ONE).run)
    log.clear()

    b.crash()
    await trio.testing.wait_all_tasks_blocked()

    assert log == [("crash", "b"), ("start", "b")]
    assert (a.starts, b.starts, c.starts) == (1, 2, 1)


async def test_one_for_all_stops_the_others_in_reverse_order_then_restarts_all_in_order(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    log: list[Event] = []
    children = three_children(log)
    await nursery.start(supervisor(children, Strategy.ONE_FOR_ALL).run)
    log.clear()

    children[1].crash()
    await trio.testing.wait_all_tasks_blocked()

    assert log == [
        ("crash", "b"),
        ("stop", "c"),
        ("stop", "a"),
        ("start", "a"),
        ("start", "b"),
        ("start", "c"),
    ]


async def test_rest_for_one_restarts_the_crashed_child_and_those_started_after_it(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    log: list[Event] = []
    a, b, _ = children = three_children(log)
    await nursery.start(supervisor(children, Strategy.REST_FOR_ONE).run)
    log.clear()

    b.crash()
    await trio.testing.wait_all_tasks_blocked()

    assert log == [("crash", "b"), ("stop", "c"), ("start", "b"), ("start", "c")]
    assert a.starts == 1


async def test_a_temporary_sibling_taken_down_by_one_for_all_is_not_restarted(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    log: list[Event] = []
    children = three_children(log, c=Restart.TEMPORARY)
    sup = supervisor(children, Strategy.ONE_FOR_ALL)
    await nursery.start(sup.run)
    log.clear()

    children[0].crash()
    await trio.testing.wait_all_tasks_blocked()

    assert log == [("crash", "a"), ("stop", "c"), ("stop", "b"), ("start", "a"), ("start", "b")]
    assert sup.statistics().children[2].status is ChildStatus.STOPPED


async def test_a_crash_under_one_for_one_never_cancels_a_busy_sibling(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    log: list[Event] = []
    crashing = ScriptedChild("crashing", log)
    finished_work = trio.Event()

    async def busy(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        await trio.sleep(10)  # in the middle of its work when the sibling crashes
        finished_work.set()
        await trio.sleep_forever()

    sup = Supervisor("test", [ChildSpec("busy", busy), crashing.spec()], backoff_seconds=0.0)
    await nursery.start(sup.run)

    crashing.crash()
    await trio.testing.wait_all_tasks_blocked()
    with trio.fail_after(20):
        await finished_work.wait()

    busy_stats = sup.statistics().children[0]
    assert (busy_stats.status, busy_stats.restarts) == (ChildStatus.RUNNING, 0)


@pytest.mark.parametrize(
    ("restart", "crash", "restarted"),
    [
        (Restart.PERMANENT, True, True),
        (Restart.PERMANENT, False, True),
        (Restart.TRANSIENT, True, True),
        (Restart.TRANSIENT, False, False),
        (Restart.TEMPORARY, True, False),
        (Restart.TEMPORARY, False, False),
    ],
    ids=[
        "permanent-restarted-after-crash",
        "permanent-restarted-after-return",
        "transient-restarted-after-crash",
        "transient-not-restarted-after-return",
        "temporary-not-restarted-after-crash",
        "temporary-not-restarted-after-return",
    ],
)
async def test_the_restart_type_decides_whether_a_stopped_child_starts_again(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    restart: Restart,
    crash: bool,
    restarted: bool,
) -> None:
    log: list[Event] = []
    child = ScriptedChild("child", log, restart=restart)
    sup = Supervisor("test", [child.spec()], backoff_seconds=0.0)
    await nursery.start(sup.run)

    if crash:
        child.crash()
    else:
        child.finish()
    await trio.testing.wait_all_tasks_blocked()

    stats = sup.statistics().children[0]
    assert child.starts == (2 if restarted else 1)
    assert stats.status is (ChildStatus.RUNNING if restarted else ChildStatus.STOPPED)
    assert stats.restarts == (1 if restarted else 0)
    assert (stats.last_error == repr(CrashError("child"))) is crash


async def test_a_restart_waits_for_the_backoff(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    log: list[Event] = []
    child = ScriptedChild("child", log)
    await nursery.start(supervisor([child], backoff_seconds=2.0).run)
    await trio.sleep(1.0)
    crashed_at = trio.current_time()

    child.crash()
    await trio.testing.wait_all_tasks_blocked()
    assert child.starts == 1
    await trio.sleep(2.5)

    assert child.starts == 2
    assert child.start_times[1] - crashed_at == pytest.approx(2.0)


async def test_more_restarts_than_the_intensity_allows_escalate_to_the_parent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[Event] = []
    a, b = ScriptedChild("a", log), ScriptedChild("b", log)
    sup = supervisor([a, b], max_restarts=3, window_seconds=5.0)

    with pytest.RaisesGroup(
        pytest.RaisesExc(
            SupervisorEscalation, check=lambda exc: isinstance(exc.__cause__, CrashError)
        )
    ):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            for _ in range(4):  # three restarts are allowed; the fourth crash escalates
                b.crash()
                await trio.testing.wait_all_tasks_blocked()

    assert b.starts == 4
    assert log[-2:] == [("crash", "b"), ("stop", "a")]
    assert not sup.running


async def test_crashes_spaced_beyond_the_window_never_escalate(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    log: list[Event] = []
    child = ScriptedChild("child", log)
    sup = supervisor([child], max_restarts=1, window_seconds=5.0)
    await nursery.start(sup.run)

    for _ in range(10):
        child.crash()
        await trio.testing.wait_all_tasks_blocked()
        await trio.sleep(5.0)

    assert child.starts == 11
    assert sup.statistics().children[0].restarts == 10


async def test_a_child_that_keeps_failing_to_restart_escalates(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[Event] = []
    child = ScriptedChild("child", log)
    sup = supervisor([child], max_restarts=2)

    with pytest.RaisesGroup(
        pytest.RaisesExc(
            SupervisorEscalation, check=lambda exc: isinstance(exc.__cause__, StartupError)
        )
    ):
        async with trio.open_nursery() as nursery:
            await nursery.start(sup.run)
            child.failing_starts = 10
            child.crash()

    assert child.starts == 3  # the first start and two failed restarts; the third restart escalates


async def test_a_startup_crash_comes_out_of_start_after_stopping_the_started_children(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    log: list[Event] = []
    a, b, c = three_children(log)
    b.failing_starts = 1
    sup = supervisor([a, b, c])

    with pytest.raises(StartupError):
        await nursery.start(sup.run)

    assert log == [("start", "a"), ("stop", "a")]
    assert c.starts == 0
    assert not sup.running


async def test_shutdown_stops_children_in_reverse_start_order(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    log: list[Event] = []
    sup = supervisor(three_children(log))
    await nursery.start(sup.run)
    log.clear()

    await sup.shutdown()

    assert log == [("stop", "c"), ("stop", "b"), ("stop", "a")]
    assert [child.status for child in sup.statistics().children] == [ChildStatus.STOPPED] * 3


async def test_cancelling_run_stops_children_in_reverse_start_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[Event] = []
    sup = supervisor(three_children(log))
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        log.clear()
        nursery.cancel_scope.cancel()

    assert log == [("stop", "c"), ("stop", "b"), ("stop", "a")]


async def test_a_child_ignoring_cancellation_is_abandoned_after_its_shutdown_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stops: list[tuple[str, float]] = []
    stubborn_done = trio.Event()

    def polite(name: str) -> ChildSpec:
        async def run(*, task_status: trio.TaskStatus[None]) -> None:
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                stops.append((name, trio.current_time()))

        return ChildSpec(name, run, shutdown_timeout=1.0)

    async def stubborn(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(100)  # cleanup far longer than its grace
            stubborn_done.set()

    sup = Supervisor(
        "test", [polite("a"), ChildSpec("stubborn", stubborn, shutdown_timeout=1.0), polite("c")]
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        t0 = trio.current_time()
        await sup.shutdown()
        shutdown_took = trio.current_time() - t0
        statuses = [child.status for child in sup.statistics().children]

    assert shutdown_took == pytest.approx(1.0)
    assert [name for name, _ in stops] == ["c", "a"]
    assert [at - t0 for _, at in stops] == pytest.approx([0.0, 1.0])
    assert statuses == [ChildStatus.STOPPED, ChildStatus.ABANDONED, ChildStatus.STOPPED]
    # Structured concurrency still holds: run() ended only once the straggler did.
    assert stubborn_done.is_set()


async def test_a_nested_supervisor_that_escalates_is_restarted_by_its_parent(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    log: list[Event] = []
    leaf = ScriptedChild("leaf", log)
    inner = Supervisor("inner", [leaf.spec()], max_restarts=0)
    outer = Supervisor("outer", [inner.child_spec()], backoff_seconds=0.0)
    await nursery.start(outer.run)

    leaf.crash()
    await trio.testing.wait_all_tasks_blocked()

    assert leaf.starts == 2
    inner_stats = outer.statistics().children[0]
    assert inner_stats.restarts == 1
    assert inner_stats.last_error is not None
    assert "SupervisorEscalation" in inner_stats.last_error


async def test_describe_is_json_and_includes_nested_supervisors(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    log: list[Event] = []
    leaf = ScriptedChild("leaf", log, restart=Restart.TRANSIENT)
    inner = Supervisor("inner", [leaf.spec()], strategy=Strategy.REST_FOR_ONE, backoff_seconds=0.0)
    outer = Supervisor("outer", [inner.child_spec()], max_restarts=7, window_seconds=9.0)
    await nursery.start(outer.run)
    leaf.crash()
    await trio.testing.wait_all_tasks_blocked()

    tree = json.loads(json.dumps(outer.describe()))

    assert tree["name"] == "outer"
    assert tree["strategy"] == "one_for_one"
    assert tree["intensity"] == {"max_restarts": 7, "window_seconds": 9.0, "recent_restarts": 0}
    [inner_entry] = tree["children"]
    assert inner_entry["status"] == "running"
    assert inner_entry["restart"] == "permanent"
    [leaf_entry] = inner_entry["details"]["children"]
    assert leaf_entry["name"] == "leaf"
    assert leaf_entry["restart"] == "transient"
    assert leaf_entry["restarts"] == 1
    assert leaf_entry["status"] == "running"
    assert leaf_entry["last_error"] == "CrashError('leaf')"
    assert leaf_entry["started_at"] is not None


async def test_on_terminated_runs_once_when_the_slot_ends_for_good(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    log: list[Event] = []
    ended: list[str] = []
    child = ScriptedChild("child", log, restart=Restart.TRANSIENT)
    spec = ChildSpec(
        "child", child.run, restart=Restart.TRANSIENT, on_terminated=lambda: ended.append("child")
    )
    sup = Supervisor("test", [spec], backoff_seconds=0.0)
    await nursery.start(sup.run)

    child.crash()  # restarted: the slot lives on
    await trio.testing.wait_all_tasks_blocked()
    assert ended == []
    child.finish()  # a transient child returning ends its slot
    await trio.testing.wait_all_tasks_blocked()
    await sup.shutdown()

    assert ended == ["child"]


def test_duplicate_child_names_are_rejected() -> None:
    log: list[Event] = []
    with pytest.raises(ValueError, match="duplicate"):
        supervisor([ScriptedChild("a", log), ScriptedChild("a", log)])


async def test_a_supervisor_runs_again_after_it_stopped(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    log: list[Event] = []
    child = ScriptedChild("child", log)
    sup = supervisor([child])
    await nursery.start(sup.run)
    await sup.shutdown()
    await trio.testing.wait_all_tasks_blocked()  # run() itself returns once its tasks are gone

    await nursery.start(sup.run)

    assert child.starts == 2
    assert sup.running
    assert math.isinf(sup.child_spec().shutdown_timeout)
