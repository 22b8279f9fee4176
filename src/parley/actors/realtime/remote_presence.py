"""The presence entries of the other nodes, kept from their deltas and states (DESIGN §8).

Each node owns its own entries and sends deltas numbered by a counter within its boot epoch
(`["d", counter, topic, joins, leaves]`). A receiver applies a delta only when it is the next
number of that node's epoch; anything else (a lost delta, a node it has not heard before, a new
epoch after a restart) makes it ask for that node's whole state, and drop its deltas until the
state arrives (the bus keeps one sender's order, so every delta after the state is newer). A
node's heartbeat carries its counter too, so even a lost last delta is noticed. A node silent for
`cluster.node_timeout_seconds` is removed with leave diffs for all it had.

Every change is turned into a `presence_diff` of exactly what changed here (joins of refs not yet
held, leaves of refs held), broadcast to this node's subscribers only: each node tells its own
clients, so every client hears each change once, and a user on two nodes is one key with two
metas.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from parley.actors.realtime.presence_state import Meta

TopicMetas = dict[str, dict[str, Meta]]
"""key -> phx_ref -> meta, of one node on one topic."""

PublishDiff = Callable[[str, dict[str, Any]], object]
"""`(topic, presence_diff payload)` to this node's subscribers."""


@dataclass
class _Node:
    epoch: int
    counter: int | None = None
    """The last delta applied; None until its state arrives."""
    topics: dict[str, TopicMetas] = field(default_factory=dict)


class RemotePresence:
    """What the other nodes track, merged per topic."""

    def __init__(self, publish_diff: PublishDiff) -> None:
        self._publish_diff = publish_diff
        self._nodes: dict[str, _Node] = {}
        self.states_applied = 0
        self.deltas_applied = 0
        self.gaps = 0

    def state(self, topic: str) -> dict[str, list[Meta]]:
        """key -> the other nodes' metas on `topic` (copies)."""
        merged: dict[str, list[Meta]] = {}
        for node in self._nodes.values():
            for key, metas in node.topics.get(topic, {}).items():
                merged.setdefault(key, []).extend(dict(meta) for meta in metas.values())
        return merged

    def nodes(self) -> dict[str, dict[str, Any]]:
        return {
            name: {
                "epoch": node.epoch,
                "synced": node.counter is not None,
                "topics": len(node.topics),
                "metas": sum(len(m) for metas in node.topics.values() for m in metas.values()),
            }
            for name, node in self._nodes.items()
        }

    def heard(self, name: str, epoch: int, counter: int) -> bool:
        """A heartbeat of `name`; True if its state must be asked for."""
        node = self._current(name, epoch)
        if node is None:
            return False
        if node.counter is None:
            return True
        if counter > node.counter:
            self.gaps += 1
            node.counter = None
            return True
        return False

    def delta(self, name: str, epoch: int, envelope: list[Any]) -> bool:
        """Apply a delta envelope of `name`; True if its state must be asked for."""
        node = self._current(name, epoch)
        if node is None:
            return False
        _, counter, topic, joins, leaves = envelope
        if node.counter is None:
            return True
        if counter <= node.counter:
            return False
        if counter != node.counter + 1:
            self.gaps += 1
            node.counter = None
            return True
        node.counter = counter
        self.deltas_applied += 1
        metas = node.topics.setdefault(topic, {})
        joined: dict[str, dict[str, list[Meta]]] = {}
        left: dict[str, dict[str, list[Meta]]] = {}
        for key, entry in leaves.items():
            held = metas.get(key, {})
            for meta in entry.get("metas", ()):
                gone = held.pop(meta.get("phx_ref"), None)
                if gone is not None:
                    left.setdefault(key, {"metas": []})["metas"].append(gone)
            if not held:
                metas.pop(key, None)
        for key, entry in joins.items():
            held = metas.setdefault(key, {})
            for meta in entry.get("metas", ()):
                ref = meta.get("phx_ref")
                if ref not in held:
                    held[ref] = meta
                    joined.setdefault(key, {"metas": []})["metas"].append(meta)
        if not metas:
            node.topics.pop(topic, None)
        if joined or left:
            self._publish_diff(topic, {"joins": joined, "leaves": left})
        return False

    def replace(self, name: str, epoch: int, envelope: list[Any]) -> None:
        """Apply a whole-state envelope of `name`: diffs for what differs from what was held."""
        node = self._current(name, epoch)
        if node is None:
            return
        _, counter, state = envelope
        fresh: dict[str, TopicMetas] = {
            topic: {
                key: {meta["phx_ref"]: meta for meta in entry.get("metas", ())}
                for key, entry in keys.items()
            }
            for topic, keys in state.items()
        }
        old = node.topics
        node.topics, node.counter = fresh, counter
        self.states_applied += 1
        for topic in old.keys() | fresh.keys():
            self._publish_changes(topic, old.get(topic, {}), fresh.get(topic, {}))

    def forget(self, name: str) -> None:
        """`name` is gone (silent past the timeout, or restarted): all it had leaves."""
        node = self._nodes.pop(name, None)
        if node is not None:
            for topic, metas in node.topics.items():
                self._publish_changes(topic, metas, {})

    def _current(self, name: str, epoch: int) -> _Node | None:
        """The node's record for `epoch` (a newer epoch replaces an older one); None for an
        envelope of an epoch already replaced."""
        node = self._nodes.get(name)
        if node is not None and node.epoch == epoch:
            return node
        if node is not None and node.epoch > epoch:
            return None
        self.forget(name)
        node = self._nodes[name] = _Node(epoch)
        return node

    def _publish_changes(self, topic: str, before: TopicMetas, after: TopicMetas) -> None:
        joined: dict[str, dict[str, list[Meta]]] = {}
        left: dict[str, dict[str, list[Meta]]] = {}
        for key in before.keys() | after.keys():
            was, now = before.get(key, {}), after.get(key, {})
            gone = [meta for ref, meta in was.items() if ref not in now]
            new = [meta for ref, meta in now.items() if ref not in was]
            if gone:
                left[key] = {"metas": gone}
            if new:
                joined[key] = {"metas": new}
        if joined or left:
            self._publish_diff(topic, {"joins": joined, "leaves": left})
