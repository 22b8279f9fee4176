"""PubSub across nodes: `ClusterPubSub` puts a bus under this node's `LocalPubSub` and
`Presence` (DESIGN §8, docs/cluster.md).

Out: every broadcast is delivered here at once, as on one node, and queued as an envelope; a
flusher waits `cluster.flush_linger_ms` after the first envelope, then sends what was queued
meanwhile and while its previous send was in flight, packed into as few batches as fit
(`envelopes.pack`), so a busy node sends many envelopes per NOTIFY or PUBLISH. Broadcasts
happen after commit (chat publishes in the writer's `on_commit`), never inside a transaction.

In: one subscription per node; each batch's envelopes are fanned out to this node's subscribers
(the fastlane encodes each broadcast once, here as anywhere); a node skips its own batches, but
for its heartbeat, which is its probe of the bus. Ordered broadcasts (conversation messages)
pass the `Sequencer`, local ones included, so every topic sees a conversation in seq order once
each; presence deltas and states go to `RemotePresence`.

Liveness: a heartbeat every `cluster.heartbeat_seconds`; a node that does not hear its own for
`cluster.probe_timeout_seconds`, or whose bus fails, is degraded (`/health` says so) and
reconnects with back-off. After a reconnect it asks every node for its presence state, sends its
own, and runs the resync hooks (the socket layer rechecks its users' tokens). What was broadcast
while the bus was down is lost for the other nodes (at most once), but for conversation
messages: those gaps are filled from PostgreSQL at the next message, and clients recover the rest
with `last_seq` as after any reconnect.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from parley.actors.realtime.bus import Bus, BusOpener
from parley.actors.realtime.envelopes import (
    Batch,
    MalformedBatch,
    Reassembly,
    encode_envelope,
    pack,
    payload_of,
    unpack,
)
from parley.actors.realtime.presence import PRESENCE_DIFF, Presence
from parley.actors.realtime.pubsub import Broadcast, LocalPubSub, PubSub, PubSubStats, Subscriber
from parley.actors.realtime.remote_presence import RemotePresence
from parley.actors.realtime.sequencer import GapFiller, Sequencer
from parley.config import ClusterSettings

log = logging.getLogger(__name__)

ResyncHook = Callable[[], Awaitable[object]]

EVERY_NODE = "*"
"""The target of a state request to all nodes (after this node connects)."""


@dataclass
class _Peer:
    epoch: int
    heard_at: float
    reassembly: Reassembly


class BusStalled(Exception):
    """This node stopped hearing its own heartbeat: the bus is not delivering."""


class ClusterPubSub(PubSub):
    """This node's pubsub in a cluster: local delivery plus the bus (see the module doc)."""

    def __init__(
        self,
        local: LocalPubSub,
        presence: Presence,
        settings: ClusterSettings,
        *,
        node_name: str,
        open_bus: BusOpener,
        fill_gap: GapFiller,
    ) -> None:
        self.local = local
        self.node = node_name
        self.epoch = time.time_ns() // 1000
        """The boot epoch: microseconds since 1970 at start, so a restart's is newer."""
        self._settings = settings
        self._open_bus = open_bus
        self._presence = presence
        self.sequencer = Sequencer(
            self._deliver,
            local.has_subscribers,
            fill_gap,
            gap_wait_seconds=settings.gap_wait_ms / 1000,
            max_streams=settings.ordered_streams_max,
        )
        self.remote_presence = RemotePresence(self._presence_diff_here)
        presence.attach(self.remote_presence, self._presence_changed)
        self._presence_counter = 0
        self._queue: list[list[Any]] = []
        self._queued = trio.Event()
        self._up = False
        self.state = "connecting"
        """`connecting`, `up` (hearing its own heartbeat) or `degraded`."""
        self._probe_heard_at = 0.0
        self._peers: dict[str, _Peer] = {}
        self._state_asked_at: dict[str, float] = {}
        self._resync_hooks: list[ResyncHook] = []
        self._bus: Bus | None = None
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "envelopes_out",
                "batches_out",
                "bytes_out",
                "envelopes_in",
                "batches_in",
                "bytes_in",
                "dropped_while_down",
                "dropped_queue_full",
                "malformed",
                "connects",
                "resyncs",
                "probe_timeouts",
                "nodes_timed_out",
                "state_requests",
            ),
            0,
        )

    # -- the PubSub interface --------------------------------------------------------------

    def subscribe(self, topic: str, subscriber: Subscriber) -> None:
        self.local.subscribe(topic, subscriber)

    def unsubscribe(self, topic: str, subscriber: Subscriber) -> None:
        self.local.unsubscribe(topic, subscriber)

    def subscriber_count(self, topic: str) -> int:
        return self.local.subscriber_count(topic)

    def topics(self) -> list[tuple[str, int]]:
        return self.local.topics()

    def statistics(self) -> PubSubStats:
        return self.local.statistics()

    def publish(self, topic: str, event: str, payload: Any) -> int:
        delivered = self.local.publish(topic, event, payload)
        self._enqueue("p", topic, event, payload)
        return delivered

    def broadcast(self, broadcast: Broadcast, *, exclude: Subscriber | None = None) -> int:
        delivered = self.local.broadcast(broadcast, exclude=exclude)
        self._enqueue("p", broadcast.topic, broadcast.event, broadcast.payload)
        return delivered

    def publish_ordered(self, topic: str, event: str, payload: Any, stream: str, seq: int) -> int:
        delivered = self.sequencer.offer(topic, event, payload, stream, seq)
        self._enqueue("o", topic, event, payload, stream, seq)
        return delivered

    def publish_elsewhere(self, topic: str, event: str, payload: Any) -> None:
        """A broadcast for the other nodes' subscribers only (what this node did already, such
        as counting a failed login, that the others must do too)."""
        self._enqueue("p", topic, event, payload)

    def on_resync(self, hook: ResyncHook) -> None:
        """Run `hook` after every reconnect of the bus (not the first connect)."""
        self._resync_hooks.append(hook)

    # -- the operator's view ---------------------------------------------------------------

    @property
    def degraded(self) -> bool:
        return self.state != "up"

    def describe(self) -> dict[str, Any]:
        now = trio.current_time()
        presence = self.remote_presence.nodes()
        return {
            "adapter": self._settings.adapter,
            "node": self.node,
            "epoch": self.epoch,
            "bus": {
                "state": self.state,
                "heard_own_heartbeat_seconds_ago": round(now - self._probe_heard_at, 3)
                if self._probe_heard_at
                else None,
                "queued": len(self._queue),
                **(self._bus.describe() if self._bus is not None else {}),
            },
            "nodes": [
                {
                    "node": name,
                    "epoch": peer.epoch,
                    "heard_seconds_ago": round(now - peer.heard_at, 3),
                    "presence": presence.get(name, {}),
                }
                for name, peer in sorted(self._peers.items())
            ],
            "counters": dict(self.counters),
            "order": self.sequencer.describe(),
            "presence": {
                "states_applied": self.remote_presence.states_applied,
                "deltas_applied": self.remote_presence.deltas_applied,
                "gaps": self.remote_presence.gaps,
            },
        }

    # -- its life --------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[PubSub] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, serve, and reconnect with back-off whenever the bus fails."""
        settings = self._settings
        task_status.started(self)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.sequencer.run)
            nursery.start_soon(self._watch_peers)
            backoff = settings.reconnect_min_seconds
            while True:
                try:
                    async with self._open_bus() as bus:
                        backoff = settings.reconnect_min_seconds
                        await self._serve(bus)
                except Exception as exc:  # any failure of the bus: report, back off, reconnect
                    log.warning("cluster bus lost (%s: %s); reconnecting", type(exc).__name__, exc)
                finally:
                    self._bus = None
                    self._up = False
                    self.state = "degraded"
                    self._queue.clear()
                await trio.sleep(backoff)
                backoff = min(backoff * 2, settings.reconnect_max_seconds)

    async def _serve(self, bus: Bus) -> None:
        reconnect = self.counters["connects"] > 0
        self.counters["connects"] += 1
        self._bus = bus
        self._probe_heard_at = trio.current_time()
        self._up = True
        # What the others must know after this node (re)joins: its entries, and theirs.
        self._send_state()
        self._enqueue_control(["q", EVERY_NODE])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._receive, bus)
            nursery.start_soon(self._flush, bus)
            await self._heartbeat(reconnect)

    async def _heartbeat(self, reconnect: bool) -> None:
        settings = self._settings
        resynced = not reconnect
        while True:
            self._enqueue_control(["h", self._presence_counter])
            await trio.sleep(settings.heartbeat_seconds)
            silent = trio.current_time() - self._probe_heard_at
            if silent > settings.probe_timeout_seconds:
                self.counters["probe_timeouts"] += 1
                raise BusStalled(f"own heartbeat not heard for {silent:.1f} s")
            if self.state == "up" and not resynced:
                resynced = await self._resync()

    async def _resync(self) -> bool:
        """Run the resync hooks; False if one failed (they run again at the next heartbeat)."""
        try:
            for hook in self._resync_hooks:
                await hook()
        except Exception:  # e.g. the database is not back yet: the bus itself is fine
            log.warning("resync after the bus reconnect failed; trying again", exc_info=True)
            return False
        self.counters["resyncs"] += 1
        return True

    async def _flush(self, bus: Bus) -> None:
        settings = self._settings
        linger = settings.flush_linger_ms / 1000
        while True:
            while not self._queue:
                self._queued = trio.Event()
                await self._queued.wait()
            if linger:
                # The envelopes queued in the next moment join this send: at a few thousand
                # messages/s a node would otherwise send 3-4 per NOTIFY, at ~100 µs each.
                await trio.sleep(linger)
            queued, self._queue = self._queue, []
            encoded = [encode_envelope(envelope) for envelope in queued]
            batches = list(pack(self.node, self.epoch, encoded, settings.envelope_batch_max_bytes))
            with trio.fail_after(settings.probe_timeout_seconds):
                await bus.publish(batches)
            self.counters["envelopes_out"] += len(queued)
            self.counters["batches_out"] += len(batches)
            self.counters["bytes_out"] += sum(len(batch) for batch in batches)

    async def _receive(self, bus: Bus) -> None:
        while True:
            message = await bus.receive()
            try:
                batch = unpack(message)
            except MalformedBatch:
                self.counters["malformed"] += 1
                continue
            self.counters["batches_in"] += 1
            self.counters["bytes_in"] += len(message)
            self._take(batch)

    async def _watch_peers(self) -> None:
        """Forget nodes silent past `cluster.node_timeout_seconds` (their presences leave)."""
        timeout = self._settings.node_timeout_seconds
        while True:
            await trio.sleep(min(self._settings.heartbeat_seconds, timeout / 4))
            horizon = trio.current_time() - timeout
            for name in [n for n, peer in self._peers.items() if peer.heard_at < horizon]:
                log.warning("cluster node %s silent for %g s: its presences leave", name, timeout)
                self.counters["nodes_timed_out"] += 1
                del self._peers[name]
                self.remote_presence.forget(name)

    # -- in --------------------------------------------------------------------------------

    def _take(self, batch: Batch) -> None:
        now = trio.current_time()
        if batch.node == self.node:
            if batch.epoch == self.epoch:
                if any(envelope[0] == "h" for envelope in batch.envelopes):
                    self._probe_heard_at = now
                    if self._up:
                        self.state = "up"
            else:
                log.error("another node is also named %r: node names must differ", self.node)
            return
        peer = self._peers.get(batch.node)
        if peer is None or peer.epoch != batch.epoch:
            if peer is not None and peer.epoch > batch.epoch:
                return  # a late batch of a previous life
            peer = self._peers[batch.node] = _Peer(batch.epoch, now, Reassembly())
        peer.heard_at = now
        for envelope in batch.envelopes:
            self.counters["envelopes_in"] += 1
            if envelope[0] == "f":
                whole = peer.reassembly.add(envelope)
                if whole is None:
                    continue
                envelope = whole
            try:
                self._apply(batch.node, batch.epoch, envelope)
            except (ValueError, TypeError, KeyError, IndexError, AttributeError):
                self.counters["malformed"] += 1
                log.debug("malformed envelope from %s: %.200r", batch.node, envelope)

    def _apply(self, node: str, epoch: int, envelope: list[Any]) -> None:
        kind = envelope[0]
        if kind == "p":
            _, topics, event, payload = envelope
            payload = payload_of(payload)
            for topic in topics:
                self.local.publish(topic, event, payload)
        elif kind == "o":
            _, topics, event, payload, stream, seq = envelope
            for topic in topics:
                self.sequencer.offer(topic, event, payload, stream, seq)
        elif kind == "h":
            if self.remote_presence.heard(node, epoch, envelope[1]):
                self._ask_state(node)
        elif kind == "d":
            if self.remote_presence.delta(node, epoch, envelope):
                self._ask_state(node)
        elif kind == "s":
            self.remote_presence.replace(node, epoch, envelope)
        elif kind == "q":
            if envelope[1] in (self.node, EVERY_NODE):
                self._send_state()
        else:
            raise ValueError(f"unknown envelope kind {kind!r}")

    def _ask_state(self, node: str) -> None:
        """Ask `node` for its presence state, at most once per heartbeat period."""
        now = trio.current_time()
        if now - self._state_asked_at.get(node, -float("inf")) < self._settings.heartbeat_seconds:
            return
        self._state_asked_at[node] = now
        self.counters["state_requests"] += 1
        self._enqueue_control(["q", node])

    def _deliver(self, topic: str, event: str, payload: Any) -> int:
        return self.local.publish(topic, event, payload)

    def _presence_diff_here(self, topic: str, payload: dict[str, Any]) -> None:
        self.local.publish(topic, PRESENCE_DIFF, payload)

    # -- out -------------------------------------------------------------------------------

    def _presence_changed(self, topic: str, payload: dict[str, Any]) -> None:
        self._presence_counter += 1
        self._enqueue_control(
            ["d", self._presence_counter, topic, payload["joins"], payload["leaves"]]
        )

    def _send_state(self) -> None:
        self._enqueue_control(["s", self._presence_counter, self._presence.local_state()])

    def _enqueue(self, kind: str, topic: str, event: str, payload: Any, *order: Any) -> None:
        """Queue a broadcast; one published to several topics in a row (a message to every
        member's `user:` topic) is one envelope with all of them."""
        queue = self._queue
        if queue:
            last = queue[-1]
            if last[0] == kind and last[3] is payload and last[2] == event:
                last[1].append(topic)
                return
        self._enqueue_control([kind, [topic], event, payload, *order])

    def _enqueue_control(self, envelope: list[Any]) -> None:
        if not self._up:
            self.counters["dropped_while_down"] += 1
            return
        if len(self._queue) >= self._settings.outgoing_max_envelopes:
            self.counters["dropped_queue_full"] += 1
            return
        self._queue.append(envelope)
        self._queued.set()
