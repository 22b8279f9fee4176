"""The monitor: samples on its period, and garbage-collector pauses timed while it runs."""

from __future__ import annotations

import gc

import trio
import trio.testing

from parley.actors.tree import Runtime
from parley.api.operator.drain import NodeDrain
from parley.api.operator.metrics import NodeMetrics
from parley.api.operator.monitor import Monitor, resident_bytes
from parley.api.operator.node import Node
from parley.config import DebugSettings, Settings
from parley.store import Database
from tests.socket.channel_case import channel_case


def _state(metrics: NodeMetrics) -> tuple[float, float]:
    count = total = 0.0
    for metric in metrics.gc_pause_seconds.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                count += sample.value
            elif sample.name.endswith("_sum"):
                total += sample.value
    return count, total


async def test_the_monitor_samples_each_period_and_times_gc_pauses(
    autojump_clock: trio.testing.MockClock,
) -> None:
    settings = Settings()
    # A runtime that is never started: the monitor and metrics only read its counters.
    runtime = Runtime(settings, Database("postgresql://unused", min_size=1, max_size=1,
                                         command_timeout=1))  # fmt: skip
    debug = DebugSettings(sample_seconds=1.0, loop_lag_probe_seconds=0.25, history_samples=3)
    callbacks = len(gc.callbacks)
    async with channel_case(settings) as case:
        drain = NodeDrain(case.hub, period_seconds=0, grace_seconds=1)
        metrics = NodeMetrics(Node("test-node"), runtime, case.hub, drain)
        monitor = Monitor(debug, metrics, case.hub)
        async with trio.open_nursery() as nursery:
            await nursery.start(monitor.run)
            assert len(gc.callbacks) == callbacks + 1
            before = _state(metrics)
            gc.collect()
            count, total = _state(metrics)
            assert count == before[0] + 1 and total > before[1]
            await case.connect()
            await trio.sleep(5.1)
            assert len(monitor.samples) == 3  # the last `history_samples` only
            sample = monitor.samples[-1]
            assert sample["connections"] == 1 and sample["loop_lag_ms_max"] == 0
            assert sample["commit_ms_mean"] is None  # nothing was committed
            nursery.cancel_scope.cancel()
    assert len(gc.callbacks) == callbacks
    resident = resident_bytes()
    assert resident is None or resident > 0
