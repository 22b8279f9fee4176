"""A supervisor's description for operators: bounded in children, counting the rest."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from parley.supervision import ChildSpec, DynamicSupervisor


async def _serve(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    task_status.started()
    await trio.sleep_forever()


async def test_a_dynamic_supervisor_describes_its_first_children_and_counts_all(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    supervisor = DynamicSupervisor("many", describe_max_children=2)
    await nursery.start(supervisor.run)
    for n in range(5):
        await supervisor.start_child(ChildSpec(f"child-{n}", _serve))

    described = supervisor.describe()
    assert described["children_total"] == 5
    assert [child["name"] for child in described["children"]] == ["child-0", "child-1"]  # type: ignore[attr-defined]
    assert len(supervisor.statistics().children) == 5  # statistics are whole


def test_the_bound_cannot_be_negative() -> None:
    with pytest.raises(ValueError, match="describe_max_children"):
        DynamicSupervisor("bad", describe_max_children=-1)
