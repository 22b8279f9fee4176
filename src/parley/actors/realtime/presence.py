"""Presence: who is on which topic, as Phoenix Presence reports it (PHOENIX_PROTOCOL.md §7).

One `Presence` tracker per node owns a `TopicPresence` per topic (the pure bookkeeping of
`parley.actors.realtime.presence_state`). A tracked entry belongs to an owner (`conn`: one channel
instance on one socket) and lives until that owner untracks it or ends (leave, crash, socket
closed). Every change is broadcast through pubsub on the topic itself as `presence_diff`
(`{"joins": {...}, "leaves": {...}}`), so every subscriber, the changed socket included, gets it
exactly once through the same fastlane as any broadcast; `list(topic)` is the `presence_state`
snapshot the socket layer pushes to a joining client only.

Why a synchronous object and not a mailbox actor: every operation is a few dictionary updates
and one non-blocking pubsub broadcast, with no await anywhere. trio runs all tasks on one
thread and switches only at awaits, so each call is atomic, exactly as if one actor handled the
calls one at a time, without paying a mailbox round trip per join on the hot path (the same
reasoning as the registry's synchronous reads). The state is still owned by this one object; the
socket layer only calls its methods. In a cluster (DESIGN §8, `parley.actors.realtime.cluster`)
the tracker keeps this interface: `attach` hands it the other nodes' entries (merged into `list`
and `get`) and a hook that sends each of this node's diffs to them, and its own `pubsub` is then
this node's local one, so a diff reaches each client once, from the node it is connected to.

`phx_ref`s come from one factory per tracker (a random prefix and a counter), so they are unique
across all topics of this node and across restarts.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import trio

from parley.actors.realtime.presence_state import (
    Meta,
    PresenceDiff,
    RefFactory,
    TopicPresence,
    random_ref_factory,
)
from parley.actors.realtime.pubsub import PubSub

if TYPE_CHECKING:
    from parley.actors.realtime.remote_presence import RemotePresence

DiffHook = Callable[[str, dict[str, Any]], object]
"""`(topic, presence_diff payload)` of a change of this node's own entries."""

log = logging.getLogger(__name__)

PRESENCE_DIFF: Final = "presence_diff"
PRESENCE_STATE: Final = "presence_state"


@dataclass(frozen=True, slots=True)
class PresenceStats:
    topics: int
    metas: int
    diffs_broadcast: int


class Presence:
    """Per-topic presence of this node; diffs go out through `pubsub`.

    With a `broadcast_period` (seconds), the changes of each topic are merged and broadcast once
    per period by `run`, as Phoenix.Tracker does (its broadcast_period): when 2,000 members join a
    room, each existing subscriber gets a few merged diffs instead of one diff per join, which
    would be O(members²) frames. phoenix.js applies joins and leaves by `phx_ref`, so a diff that
    repeats what a late joiner's `presence_state` already holds changes nothing for it. Without a
    period (0), every change is broadcast at once.
    """

    def __init__(
        self,
        pubsub: PubSub,
        *,
        broadcast_period: float = 0.0,
        ref_factory: RefFactory | None = None,
    ) -> None:
        self._pubsub = pubsub
        self._broadcast_period = broadcast_period
        self._pending: dict[str, PresenceDiff] = {}
        self._pending_set = trio.Event()
        self._next_ref = ref_factory if ref_factory is not None else random_ref_factory()
        self._topics: dict[str, TopicPresence] = {}
        # owner -> the topics it tracks something on (for untrack_all on socket close).
        self._owners: dict[Hashable, dict[str, None]] = {}
        self._diffs = 0
        self._remote: RemotePresence | None = None
        self._on_diff: DiffHook | None = None
        self._watch: DiffHook | None = None

    def attach(self, remote: RemotePresence, on_diff: DiffHook) -> None:
        """Join a cluster: `remote` holds the other nodes' entries, `on_diff` sends ours."""
        self._remote, self._on_diff = remote, on_diff

    def watch(self, on_diff: DiffHook) -> None:
        """Tell `on_diff` of every diff of this node's entries as it is broadcast (Pusher
        webhooks' member events, derived from the state after it). Called synchronously: it
        must only take note."""
        self._watch = on_diff

    def __repr__(self) -> str:
        return f"Presence(topics={len(self._topics)})"

    # -- queries ---------------------------------------------------------------------------

    def list(self, topic: str) -> dict[str, dict[str, builtins.list[Meta]]]:
        """The `presence_state` payload of `topic`: `{key: {"metas": [...]}}` (fresh copies)."""
        presence = self._topics.get(topic)
        state = presence.state() if presence is not None else {}
        if self._remote is not None:
            for key, metas in self._remote.state(topic).items():
                state.setdefault(key, {"metas": []})["metas"].extend(metas)
        return state

    def local_state(self) -> dict[str, dict[str, dict[str, builtins.list[Meta]]]]:
        """This node's own entries on every topic (what it sends a node that asks)."""
        return {topic: presence.state() for topic, presence in self._topics.items()}

    def get(self, topic: str, key: str) -> builtins.list[Meta]:
        """The metas of `key` on `topic` (copies), empty if absent."""
        presence = self._topics.get(topic)
        metas = presence.get(key) if presence is not None else []
        if self._remote is not None:
            metas.extend(self._remote.state(topic).get(key, ()))
        return metas

    def counts(self, topic: str) -> tuple[int, int]:
        """(keys, metas) present on `topic`, without copying its state."""
        presence = self._topics.get(topic)
        return (0, 0) if presence is None else (len(presence), presence.meta_count)

    def statistics(self) -> PresenceStats:
        return PresenceStats(
            topics=len(self._topics),
            metas=sum(p.meta_count for p in self._topics.values()),
            diffs_broadcast=self._diffs,
        )

    # -- mutations (each broadcasts its diff) ------------------------------------------------

    def track(self, topic: str, conn: Hashable, key: str, meta: Mapping[str, Any]) -> str:
        """Add `conn`'s meta under `key` on `topic`; returns the meta's `phx_ref`.

        Raises `AlreadyTrackedError` when `conn` already tracks `key` there (use `update`).
        """
        presence = self._topics.get(topic)
        if presence is None:
            presence = self._topics[topic] = TopicPresence(topic, ref_factory=self._next_ref)
        diff = presence.track(conn, key, meta)
        self._owners.setdefault(conn, {})[topic] = None
        self._publish(topic, diff)
        return str(diff.joins[key][0]["phx_ref"])

    def update(self, topic: str, conn: Hashable, key: str, meta: Mapping[str, Any]) -> str:
        """Replace `conn`'s meta under `key`: one diff with the new meta joining (with
        `phx_ref_prev`) and the old one leaving. Raises `NotTrackedError` if not tracked."""
        presence = self._topics.get(topic)
        if presence is None:
            presence = TopicPresence(topic, ref_factory=self._next_ref)  # raises NotTracked below
        diff = presence.update(conn, key, meta)
        self._publish(topic, diff)
        return str(diff.joins[key][0]["phx_ref"])

    def untrack(self, topic: str, conn: Hashable, key: str | None = None) -> None:
        """Remove `conn`'s meta under `key` (or all of its keys) on `topic`; no-op if none."""
        presence = self._topics.get(topic)
        if presence is None:
            return
        diff = presence.untrack(conn, key)
        if not presence.keys_of(conn):
            topics = self._owners.get(conn)
            if topics is not None:
                topics.pop(topic, None)
                if not topics:
                    del self._owners[conn]
        if presence.is_empty:
            del self._topics[topic]
        self._publish(topic, diff)

    def untrack_all(self, conn: Hashable) -> None:
        """Everything `conn` tracks, on every topic, leaves (its channel or socket ended)."""
        for topic in list(self._owners.get(conn, ())):
            self.untrack(topic, conn)

    async def run(
        self, *, task_status: trio.TaskStatus[Presence] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Its life as a supervised child: broadcast the merged diffs once per period."""
        task_status.started(self)
        if self._broadcast_period <= 0:
            await trio.sleep_forever()
        try:
            while True:
                await self._pending_set.wait()
                await trio.sleep(self._broadcast_period)
                self._pending_set = trio.Event()
                self.flush()
        finally:
            # Whatever was pending goes out now, so a restart or shutdown loses no leave.
            self.flush()

    def flush(self) -> None:
        """Broadcast every pending merged diff now."""
        pending, self._pending = self._pending, {}
        for topic, diff in pending.items():
            if not diff.is_empty:
                self._broadcast(topic, diff)

    def _publish(self, topic: str, diff: PresenceDiff) -> None:
        if diff.is_empty:
            return
        if self._broadcast_period <= 0:
            self._broadcast(topic, diff)
            return
        pending = self._pending.get(topic)
        self._pending[topic] = diff if pending is None else pending.merge(diff)
        self._pending_set.set()

    def _broadcast(self, topic: str, diff: PresenceDiff) -> None:
        self._diffs += 1
        payload = diff.payload()
        self._pubsub.publish(topic, PRESENCE_DIFF, payload)
        if self._on_diff is not None:
            self._on_diff(topic, payload)
        if self._watch is not None:
            self._watch(topic, payload)


__all__ = ["PRESENCE_DIFF", "PRESENCE_STATE", "Presence", "PresenceStats"]
