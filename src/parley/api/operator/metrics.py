"""`GET /metrics`: this node's Prometheus exposition, made by `prometheus_client` (DESIGN §6).

Two kinds of figure:

* **Histograms** the running parts report into as things happen, through callbacks handed to them
  at run time (the writer's `WriterObserver`, the app's request hooks, the monitor's lag probe and
  GC callback): commit latency, batch sizes, delivery latency, request duration, event-loop lag,
  GC pauses.
* **Values read at scrape time** from the parts that keep them (`_LiveValues`): connections,
  joins, messages in and out, deliveries, actors and mailboxes, the writer's totals, the drain
  state. Nothing is counted twice: the socket hub, pubsub, the actor slots and the writer keep
  their own counters, and a scrape reads them.

Plus `prometheus_client`'s own process, platform and GC collectors (RSS, CPU, open files, GC
collections). Each node serves its own figures; Prometheus's `instance` label tells the nodes
apart, and `parley_node_info` names this one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)

from parley.actors.writer import WriterObserver
from parley.integrations.webhooks.events import NAMES as WEBHOOK_EVENTS

if TYPE_CHECKING:
    from parley.actors.tree import Runtime
    from parley.api.operator.drain import NodeDrain
    from parley.api.operator.node import Node
    from parley.api.socket.core.hub import SocketHub
    from parley.integrations.webhooks.node import Webhooks

LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
)  # fmt: skip
"""Seconds, for commits, deliveries and event-loop lag: sub-millisecond to seconds."""
REQUEST_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
GC_BUCKETS: Final = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0)
BATCH_BUCKETS: Final = tuple(float(2**n) for n in range(11))
"""Messages per committed batch: 1, 2, 4, ... 1024 (`writer.batch_max_rows` is 500 by default)."""
TRANSPORTS: Final = (("websocket", "phoenix"), ("longpoll", "phoenix"))
"""Connection kinds always exposed, at 0 when none is open."""
SOCKET_COUNTERS_OF_THEIR_OWN: Final = frozenset({"connections_opened", "joins"})
"""Hub counters with a family of their own; every other one is `parley_socket_events_total`."""


class NodeMetrics:
    """This node's registry, the histograms the running parts report into, and the exposition."""

    def __init__(
        self,
        node: Node,
        runtime: Runtime,
        hub: SocketHub,
        drain: NodeDrain,
        webhooks: Webhooks | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        registry = self.registry
        self.commit_seconds = Histogram(
            "parley_writer_commit_seconds",
            "Time from a batch's statement being sent to PostgreSQL to its commit.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "parley_writer_batch_size",
            "Messages per committed batch (group commit).",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.delivery_seconds = Histogram(
            "parley_delivery_seconds",
            "Time from a message reaching the server to its broadcast being handed to every "
            "local subscriber (commit included).",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.request_seconds = Histogram(
            "parley_http_request_duration_seconds",
            "HTTP requests served by the app, by route template, method and status.",
            ("method", "route", "status"),
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.loop_lag_seconds = Histogram(
            "parley_event_loop_lag_seconds",
            "How late the event loop woke a sleeping task (the lag probe).",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.gc_pause_seconds = Histogram(
            "parley_gc_pause_seconds",
            "Garbage-collector pauses, by generation.",
            ("generation",),
            buckets=GC_BUCKETS,
            registry=registry,
        )
        registry.register(_LiveValues(node, runtime, hub, drain))
        if webhooks is not None:
            registry.register(_WebhookValues(webhooks))

    def writer_observer(self) -> WriterObserver:
        def committed(rows: int, seconds: float) -> None:
            self.commit_seconds.observe(seconds)
            self.batch_size.observe(rows)

        return WriterObserver(committed=committed, published=self.delivery_seconds.observe)

    def observe_request(self, method: str, route: str, status: int, started: float) -> None:
        """One request, `started` at this `time.perf_counter()`."""
        self.request_seconds.labels(method, route, str(status)).observe(
            time.perf_counter() - started
        )

    def exposition(self) -> bytes:
        """The text format (read on trio's thread: the live values are trio-owned state)."""
        return generate_latest(self.registry)


class _LiveValues:
    """The figures read from the running parts at each scrape (a `prometheus_client` collector)."""

    def __init__(self, node: Node, runtime: Runtime, hub: SocketHub, drain: NodeDrain) -> None:
        self._node = node
        self._runtime = runtime
        self._hub = hub
        self._drain = drain

    def collect(self) -> Iterable[Metric]:
        yield InfoMetricFamily(
            "parley_node",
            "This node.",
            value={"node": self._node.name, "version": self._node.version},
        )
        yield from self._sockets()
        yield from self._pubsub()
        yield from self._actors()
        yield from self._writer()
        draining = GaugeMetricFamily(
            "parley_node_accepting_sockets",
            "1 while the node takes new sockets, 0 while it drains or is drained.",
        )
        draining.add_metric([], 1.0 if self._hub.accepting else 0.0)
        yield draining

    def _sockets(self) -> Iterable[Metric]:
        hub = self._hub
        connections = GaugeMetricFamily(
            "parley_connections",
            "Open sockets, by transport and wire protocol.",
            labels=("transport", "protocol"),
        )
        kinds = dict.fromkeys(TRANSPORTS, 0) | dict(hub.open_by_kind)
        for (transport, protocol), count in sorted(kinds.items()):
            connections.add_metric([transport, protocol], float(count))
        yield connections
        counters = hub.counters
        yield _counter(
            "parley_connections_opened",
            "Sockets accepted.",
            counters.get("connections_opened", 0),
        )
        yield _counter("parley_joins", "Channel joins accepted.", counters.get("joins", 0))
        frames_in, frames_out = hub.frame_totals()
        yield _counter("parley_messages_in", "Frames received from clients.", frames_in)
        yield _counter("parley_messages_out", "Frames written to clients.", frames_out)
        events = CounterMetricFamily(
            "parley_socket_events",
            "Other socket events (refusals, rate limits, slow consumers, bad frames, ...).",
            labels=("event",),
        )
        for name, value in sorted(counters.items()):
            if name not in SOCKET_COUNTERS_OF_THEIR_OWN:
                events.add_metric([name], float(value))
        yield events

    def _pubsub(self) -> Iterable[Metric]:
        pubsub = self._runtime.pubsub.statistics()
        presence = self._runtime.presence.statistics()
        yield _counter("parley_deliveries", "Broadcasts handed to subscribers.", pubsub.deliveries)
        yield _counter("parley_broadcasts", "Broadcasts published.", pubsub.broadcasts)
        yield _gauge("parley_pubsub_topics", "Topics with a local subscriber.", pubsub.topics)
        yield _gauge("parley_pubsub_subscriptions", "Topic subscriptions.", pubsub.subscriptions)
        yield _gauge("parley_presence_topics", "Topics with presence.", presence.topics)
        yield _gauge("parley_presence_metas", "Presence entries.", presence.metas)

    def _actors(self) -> Iterable[Metric]:
        by_kind = self._runtime.system.directory.totals_by_kind()
        gauges = [
            ("parley_actors", "Live actors, by kind.", "actors"),
            ("parley_mailbox_depth", "Messages waiting in mailboxes, by kind.", "mailbox_depth"),
            ("parley_mailbox_depth_max", "The deepest mailbox of each kind.", "mailbox_depth_max"),
        ]
        counters = [
            ("parley_actor_messages", "Messages handled, by kind.", "processed"),
            ("parley_actor_restarts", "Actor restarts, by kind.", "restarts"),
            ("parley_mailbox_overflows", "Casts refused by a full mailbox.", "dropped"),
        ]
        for name, documentation, field in gauges:
            gauge = GaugeMetricFamily(name, documentation, labels=("kind",))
            for kind, totals in sorted(by_kind.items()):
                gauge.add_metric([kind], float(getattr(totals, field)))
            yield gauge
        for name, documentation, field in counters:
            counter = CounterMetricFamily(name, documentation, labels=("kind",))
            for kind, totals in sorted(by_kind.items()):
                counter.add_metric([kind], float(getattr(totals, field)))
            yield counter

    def _writer(self) -> Iterable[Metric]:
        writer = self._runtime.writer.statistics()
        yield _counter("parley_writer_messages", "Messages stored by the writer.", writer.messages)
        yield _counter(
            "parley_writer_failed_messages", "Messages the writer failed.", writer.failed_messages
        )
        yield _gauge(
            "parley_writer_queued", "Write requests waiting for the writer.", writer.queued
        )


class _WebhookValues:
    """Pusher webhooks, read from the recorder and the deliverer at each scrape."""

    def __init__(self, webhooks: Webhooks) -> None:
        self._webhooks = webhooks

    def collect(self) -> Iterable[Metric]:
        recorder = self._webhooks.recorder.statistics()
        deliverer = self._webhooks.deliverer.statistics()
        recorded = CounterMetricFamily(
            "parley_webhook_events_recorded",
            "Webhook events written to the outbox, by event name.",
            labels=("event",),
        )
        cancelled = CounterMetricFamily(
            "parley_webhook_events_cancelled",
            "channel_vacated / member_removed dropped because the channel or user was back "
            "within the hold.",
            labels=("event",),
        )
        for name in WEBHOOK_EVENTS:
            recorded.add_metric([name], float(recorder.recorded.get(name, 0)))
        for name in ("channel_vacated", "member_removed"):
            cancelled.add_metric([name], float(recorder.cancelled.get(name, 0)))
        yield recorded
        yield cancelled
        yield _counter(
            "parley_webhook_events_dropped",
            "Webhook events dropped because webhooks.record_max_pending were waiting.",
            recorder.dropped,
        )
        yield _gauge("parley_webhook_events_held", "Events in their hold now.", recorder.held)
        yield _counter(
            "parley_webhook_events_delivered",
            "Webhook events delivered (2xx).",
            deliverer.delivered,
        )
        yield _counter("parley_webhook_requests", "Webhook requests made.", deliverer.requests)
        yield _counter(
            "parley_webhook_request_failures",
            "Webhook requests that failed (non-2xx, timeout, no connection).",
            deliverer.failed_requests,
        )
        yield _counter(
            "parley_webhook_retries",
            "Webhook events scheduled for another attempt.",
            deliverer.retries,
        )
        yield _counter(
            "parley_webhook_events_given_up",
            "Webhook events given up (webhooks.give_up_seconds after they were recorded).",
            deliverer.given_up,
        )


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=float(value))


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))
