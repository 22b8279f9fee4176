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

**Snapshots and diffs agree.** A subscriber that shows a snapshot and then applies diffs must
never hear of a change twice (a `member_added` for a user its `subscription_succeeded` listed,
a `presence_diff` join of a meta its `presence_state` held) nor of a change it never saw. Two
things make it so. The subscriber hears no diff broadcast *before* its snapshot: the channel
instance drops its topic's diffs until the channel takes it (`parley.api.socket.core.instance`).
And with a broadcast period the state runs ahead of the diffs: a snapshot (`snapshot`) holds the
changes still pending, which the next batch of the topic will announce together with later
ones, so the snapshot remembers them and its holder gets that batch without them
(`PresenceSnapshot.trimmed`); diffs carry their batch number (`PresenceBroadcast`) for that,
and a batch shown in a snapshot keeps a meta that joined and left within it (the holder saw it).
`announced` counts a key's metas as subscribers have heard of them, for the Pusher per-user
events, which compare a diff with the state it leads to.
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
from parley.actors.realtime.pubsub import Broadcast, PubSub

if TYPE_CHECKING:
    from parley.actors.realtime.remote_presence import RemotePresence

DiffHook = Callable[[str, dict[str, Any]], object]
"""`(topic, presence_diff payload)` of a change of this node's own entries."""

log = logging.getLogger(__name__)

PRESENCE_DIFF: Final = "presence_diff"
PRESENCE_STATE: Final = "presence_state"


@dataclass(frozen=True, slots=True, eq=False)
class PresenceBroadcast(Broadcast):
    """A `presence_diff` broadcast with the number of the batch it announces (0: unbatched)."""

    batch: int = 0


@dataclass(frozen=True, slots=True)
class PresenceSnapshot:
    """What one subscriber is shown of a topic (`Presence.snapshot`): `state`, the
    `presence_state` payload; and, when the topic had changes pending (not yet broadcast),
    `pending`, those changes, which batch `batch` will announce with whatever follows them."""

    state: dict[str, dict[str, builtins.list[Meta]]]
    batch: int = 0
    pending: PresenceDiff | None = None

    def trimmed(self, diff: Broadcast) -> Broadcast | None:
        """`diff` as this snapshot's holder must hear it. Batch `batch` leads from the state as
        broadcast before it to the state after it; the holder's `state` already holds the
        `pending` part, so its copy has the joins of `pending` taken out, the leaves of
        `pending` taken out (it never held those metas), and a leave added for each meta
        `pending` joined that the batch no longer has (it left after the snapshot, and the merge
        dropped it from both sides). None if nothing is left; any other diff as it is."""
        pending = self.pending
        if pending is None or not isinstance(diff, PresenceBroadcast) or diff.batch != self.batch:
            return diff
        payload = diff.payload if isinstance(diff.payload, dict) else {}
        held = {
            meta["phx_ref"]: (key, meta) for key, metas in pending.joins.items() for meta in metas
        }
        gone = {meta["phx_ref"] for metas in pending.leaves.values() for meta in metas}
        joined: set[Any] = set()
        joins = _kept(payload.get("joins"), held, joined)
        leaves = _kept(payload.get("leaves"), gone, set())
        for ref, (key, meta) in held.items():
            if ref not in joined:
                leaves.setdefault(key, {"metas": []})["metas"].append(dict(meta))
        if not joins and not leaves:
            return None
        return PresenceBroadcast(diff.topic, diff.event, {"joins": joins, "leaves": leaves})


def _kept(
    side: object, without: Mapping[Any, object] | set[Any], seen: set[Any]
) -> dict[str, dict[str, builtins.list[Meta]]]:
    """One side of a diff payload without the metas whose refs are in `without` (every ref
    met is added to `seen`)."""
    kept: dict[str, dict[str, builtins.list[Meta]]] = {}
    if not isinstance(side, dict):
        return kept
    for key, entry in side.items():
        metas = entry.get("metas", []) if isinstance(entry, dict) else []
        refs = [meta.get("phx_ref") for meta in metas]
        seen.update(refs)
        remaining = [meta for meta, ref in zip(metas, refs, strict=True) if ref not in without]
        if remaining:
            kept[key] = {"metas": remaining}
    return kept


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
        self._pending: dict[str, tuple[int, PresenceDiff, bool]] = {}
        """topic -> (its batch number, the changes merged since its last broadcast, whether a
        snapshot was taken since: then a meta that joins and leaves within it is announced)."""
        self._batches = 0
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

    def snapshot(self, topic: str) -> PresenceSnapshot:
        """What a new subscriber is shown of `topic` before it follows the diffs: the state
        now, with the pending changes it holds (see the module docstring)."""
        state = self.list(topic)
        pending = self._pending.get(topic)
        if pending is None:
            return PresenceSnapshot(state)
        batch, diff, _ = self._pending[topic] = (pending[0], pending[1], True)
        return PresenceSnapshot(state, batch, diff)

    def announced(self, topic: str, key: str) -> int:
        """How many metas of `key` on `topic` subscribers have heard of (this node's pending
        changes not counted): what a diff being delivered leads to."""
        presence = self._topics.get(topic)
        count = len(presence.get(key)) if presence is not None else 0
        if self._remote is not None:
            count += len(self._remote.state(topic).get(key, ()))
        pending = self._pending.get(topic)
        if pending is not None:
            diff = pending[1]
            count += len(diff.leaves.get(key, ())) - len(diff.joins.get(key, ()))
        return count

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
        for topic, (batch, diff, _) in pending.items():
            if not diff.is_empty:
                self._broadcast(topic, diff, batch)

    def _publish(self, topic: str, diff: PresenceDiff) -> None:
        if diff.is_empty:
            return
        if self._broadcast_period <= 0:
            self._broadcast(topic, diff, 0)
            return
        pending = self._pending.get(topic)
        if pending is None:
            self._batches += 1
            self._pending[topic] = (self._batches, diff, False)
        else:
            batch, merged, shown = pending
            self._pending[topic] = (batch, merged.merge(diff, keep_transient=shown), shown)
        self._pending_set.set()

    def _broadcast(self, topic: str, diff: PresenceDiff, batch: int) -> None:
        self._diffs += 1
        payload = diff.payload()
        self._pubsub.broadcast(PresenceBroadcast(topic, PRESENCE_DIFF, payload, batch))
        if self._on_diff is not None:
            self._on_diff(topic, payload)
        if self._watch is not None:
            self._watch(topic, payload)


__all__ = [
    "PRESENCE_DIFF",
    "PRESENCE_STATE",
    "Presence",
    "PresenceBroadcast",
    "PresenceSnapshot",
    "PresenceStats",
]
