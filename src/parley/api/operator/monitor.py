"""The overview's live figures: the event-loop lag probe, GC pause timing and a rolling history.

`Monitor.run` is a supervised child. Every `debug.loop_lag_probe_seconds` it sleeps and measures
how late it woke up: the event-loop lag, i.e. how long something held trio's one thread (a
blocking call, a long stretch of work without a checkpoint, a GC pause). While it runs, a
`gc.callbacks` hook times every garbage collection. Every `debug.sample_seconds` it turns the
node's counters into one sample (rates over the period, latencies, lag, GC, memory) and keeps the
last `debug.history_samples` of them, so a console that opens draws the last minutes at once.
"""

from __future__ import annotations

import gc
import math
import os
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio
from prometheus_client import Histogram

if TYPE_CHECKING:
    from parley.api.operator.metrics import NodeMetrics
    from parley.api.socket.core.hub import SocketHub
    from parley.config import DebugSettings


@dataclass(frozen=True, slots=True)
class _HistogramState:
    count: float
    total: float
    buckets: tuple[tuple[float, float], ...]
    """(upper bound, cumulative count), ascending, +Inf last."""


def _state(histogram: Histogram) -> _HistogramState:
    count = total = 0.0
    buckets: dict[float, float] = {}
    for metric in histogram.collect():
        for sample in metric.samples:
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif sample.name.endswith("_count"):
                count += sample.value
            elif sample.name.endswith("_sum"):
                total += sample.value
    return _HistogramState(count, total, tuple(sorted(buckets.items())))


def _quantile(before: _HistogramState, after: _HistogramState, q: float) -> float | None:
    """The `q` quantile of what was observed between two states (an upper bucket bound)."""
    observed = after.count - before.count
    if observed <= 0:
        return None
    earlier = dict(before.buckets)
    wanted = q * observed
    for bound, cumulative in after.buckets:
        if cumulative - earlier.get(bound, 0.0) >= wanted:
            return bound if math.isfinite(bound) else None
    return None


def _mean(before: _HistogramState, after: _HistogramState) -> float | None:
    observed = after.count - before.count
    return (after.total - before.total) / observed if observed > 0 else None


def resident_bytes() -> int | None:
    """This process's resident memory (Linux `/proc/self/statm`), None elsewhere."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class _Totals:
    at: float
    joins: int
    frames_in: int
    frames_out: int
    deliveries: int
    commits: _HistogramState
    batches: _HistogramState
    delivery: _HistogramState
    gc: _HistogramState


class Monitor:
    """Lag probe, GC timing and the sample history (see the module docstring)."""

    def __init__(self, settings: DebugSettings, metrics: NodeMetrics, hub: SocketHub) -> None:
        self._settings = settings
        self._metrics = metrics
        self._hub = hub
        self.samples: deque[dict[str, Any]] = deque(maxlen=settings.history_samples)
        self._lag_max = 0.0
        self._gc_started: float | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        probe = self._settings.loop_lag_probe_seconds
        period = self._settings.sample_seconds
        with self._timing_gc():
            previous = self._totals()
            next_sample = trio.current_time() + period
            task_status.started()
            while True:
                before = trio.current_time()
                await trio.sleep(probe)
                lag = max(0.0, trio.current_time() - before - probe)
                self._metrics.loop_lag_seconds.observe(lag)
                self._lag_max = max(self._lag_max, lag)
                if trio.current_time() >= next_sample:
                    current = self._totals()
                    self.samples.append(self._sample(previous, current))
                    previous = current
                    self._lag_max = 0.0
                    next_sample = trio.current_time() + period

    @contextmanager
    def _timing_gc(self) -> Iterator[None]:
        # Garbage collections never nest and each runs whole under the GIL, whichever thread
        # triggers it, so one start time is enough.
        def on_gc(phase: str, info: dict[str, Any]) -> None:
            if phase == "start":
                self._gc_started = time.perf_counter()
            elif self._gc_started is not None:
                pause = time.perf_counter() - self._gc_started
                self._gc_started = None
                self._metrics.gc_pause_seconds.labels(str(info["generation"])).observe(pause)

        gc.callbacks.append(on_gc)
        try:
            yield
        finally:
            gc.callbacks.remove(on_gc)

    def _totals(self) -> _Totals:
        hub = self._hub
        metrics = self._metrics
        frames_in, frames_out = hub.frame_totals()
        return _Totals(
            at=trio.current_time(),
            joins=hub.counters.get("joins", 0),
            frames_in=frames_in,
            frames_out=frames_out,
            deliveries=hub.pubsub.statistics().deliveries,
            commits=_state(metrics.commit_seconds),
            batches=_state(metrics.batch_size),
            delivery=_state(metrics.delivery_seconds),
            gc=_state(metrics.gc_pause_seconds),
        )

    def _sample(self, before: _Totals, after: _Totals) -> dict[str, Any]:
        elapsed = max(after.at - before.at, 1e-9)

        def per_second(earlier: float, later: float) -> float:
            return round((later - earlier) / elapsed, 2)

        def milliseconds(seconds: float | None) -> float | None:
            return None if seconds is None else round(seconds * 1000, 3)

        return {
            "at": round(time.time(), 3),
            "connections": self._hub.connection_count,
            "joins_per_second": per_second(before.joins, after.joins),
            "messages_in_per_second": per_second(before.frames_in, after.frames_in),
            "messages_out_per_second": per_second(before.frames_out, after.frames_out),
            "deliveries_per_second": per_second(before.deliveries, after.deliveries),
            "commits_per_second": per_second(before.commits.count, after.commits.count),
            "batch_size_mean": _rounded(_mean(before.batches, after.batches)),
            "commit_ms_mean": milliseconds(_mean(before.commits, after.commits)),
            "commit_ms_p99": milliseconds(_quantile(before.commits, after.commits, 0.99)),
            "delivery_ms_p99": milliseconds(_quantile(before.delivery, after.delivery, 0.99)),
            "loop_lag_ms_max": milliseconds(self._lag_max),
            "gc_pause_ms": milliseconds(after.gc.total - before.gc.total),
            "rss_bytes": resident_bytes(),
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
