"""The cluster flusher's linger (`cluster.flush_linger_ms`): the envelopes a node queues in the
moment after its first one share one bus send (mock clock; the bus is an in-memory engine that
hands every published message to its one subscriber, as NOTIFY and PUBLISH do)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from parley.actors.realtime.bus import Bus
from parley.actors.realtime.cluster import ClusterPubSub
from parley.actors.realtime.envelopes import unpack
from parley.actors.realtime.presence import Presence
from parley.actors.realtime.pubsub import LocalPubSub
from parley.config.sections import ClusterSettings

pytestmark = pytest.mark.trio


class MemoryBus:
    """One subscriber's view of a pub/sub engine: every published message comes back to it."""

    def __init__(self) -> None:
        self.sends: list[tuple[float, list[list[Any]]]] = []
        """Each publish call: when, and the envelopes of its batches."""
        self._send, self._receive = trio.open_memory_channel[bytes](1000)

    async def publish(self, messages: Sequence[bytes]) -> None:
        envelopes = [envelope for message in messages for envelope in unpack(message).envelopes]
        self.sends.append((trio.current_time(), envelopes))
        for message in messages:
            await self._send.send(message)

    async def receive(self) -> bytes:
        return await self._receive.receive()

    def describe(self) -> dict[str, object]:
        return {"engine": "memory"}


async def started(nursery: trio.Nursery, linger_ms: float) -> tuple[ClusterPubSub, MemoryBus]:
    """A node with a long heartbeat (none during the test) whose start-up sends are done."""
    bus = MemoryBus()

    @asynccontextmanager
    async def open_bus() -> AsyncIterator[Bus]:
        yield bus

    async def no_gaps(stream: str, after: int, limit: int) -> list[tuple[int, object]]:
        return []

    local = LocalPubSub()
    settings = ClusterSettings(
        adapter="postgres",
        flush_linger_ms=linger_ms,
        heartbeat_seconds=3600,
        probe_timeout_seconds=7200,
    )
    cluster = ClusterPubSub(
        local, Presence(local), settings, node_name="a", open_bus=open_bus, fill_gap=no_gaps
    )
    await nursery.start(cluster.run)
    return cluster, bus


def published(bus: MemoryBus) -> list[list[str]]:
    """The payloads of the `p` envelopes of each send after start-up (state, ask, heartbeat)."""
    return [
        [envelope[3] for envelope in envelopes if envelope[0] == "p"]
        for _, envelopes in bus.sends
        if any(envelope[0] == "p" for envelope in envelopes)
    ]


async def test_envelopes_within_the_linger_share_one_send(
    mock_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    cluster, bus = await started(nursery, linger_ms=2.0)
    mock_clock.jump(0.002)
    await trio.testing.wait_all_tasks_blocked()
    start_up_sends = len(bus.sends)
    assert start_up_sends == 1  # the state, the ask and the first heartbeat, lingered together

    for n in range(3):
        cluster.publish("room:1", "new_msg", f"m{n}")
    await trio.testing.wait_all_tasks_blocked()
    assert published(bus) == []  # still lingering
    mock_clock.jump(0.001)
    cluster.publish("room:1", "new_msg", "m3")
    await trio.testing.wait_all_tasks_blocked()
    assert published(bus) == []
    mock_clock.jump(0.001)
    await trio.testing.wait_all_tasks_blocked()
    assert published(bus) == [["m0", "m1", "m2", "m3"]]
    assert bus.sends[-1][0] == pytest.approx(0.004)  # 2 ms after the first of them, no later


async def test_without_linger_each_turn_sends_at_once(
    mock_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    cluster, bus = await started(nursery, linger_ms=0.0)
    await trio.testing.wait_all_tasks_blocked()
    for n in range(3):
        cluster.publish("room:1", "new_msg", f"m{n}")
    await trio.testing.wait_all_tasks_blocked()
    cluster.publish("room:1", "new_msg", "m3")
    await trio.testing.wait_all_tasks_blocked()
    assert published(bus) == [["m0", "m1", "m2"], ["m3"]]
    assert trio.current_time() == 0.0
