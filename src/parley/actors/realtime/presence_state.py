"""Phoenix Presence bookkeeping for one topic: pure, deterministic, no I/O.

PHOENIX_PROTOCOL.md §7. A topic maps each presence **key** (usually a user id) to a list of
**metas**, one per tracking connection (a channel instance on some socket, identified here by an
opaque hashable `conn`). Every meta carries a `phx_ref` unique within the topic; an update gives
the meta a new `phx_ref` and records the old one as `phx_ref_prev`.

`TopicPresence` produces the two payloads phoenix.js `Presence` consumes:

* `state()` → the `presence_state` snapshot `{key: {"metas": [meta, ...]}}`, pushed to a client
  after each of its joins (§7.3 obligation 1);
* every mutation returns a `PresenceDiff` whose `payload()` is the `presence_diff`
  `{"joins": {...}, "leaves": {...}}` (both keys always present), broadcast to the topic.

Meta order per key mirrors what phoenix.js builds from the diffs (`Presence.syncDiff` appends
joined metas after the ones it keeps), so a client that applied every diff holds exactly `state()`,
and a late joiner's snapshot lists metas in the same order as everybody else's view.
"""

from __future__ import annotations

import base64
import itertools
import secrets
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

Meta: TypeAlias = dict[str, Any]
"""One presence meta: the app's fields plus `phx_ref` (and `phx_ref_prev` after an update)."""

RefFactory: TypeAlias = Callable[[], str]
"""Produces a fresh `phx_ref` on every call; must never repeat within a topic."""


class PresenceError(ValueError):
    """A presence operation that breaks the one-meta-per-(connection, key) rule."""


class AlreadyTrackedError(PresenceError):
    """`track` of a (conn, key) pair that is already tracked (Phoenix: `already_tracked`)."""


class NotTrackedError(PresenceError):
    """`update` of a (conn, key) pair that is not tracked (Phoenix: `nopresence`)."""


def random_ref_factory() -> RefFactory:
    """Phoenix-shaped refs: URL-safe base64 (16 chars) of a random 6-byte prefix and a counter.

    The random prefix keeps refs unique across restarts of whatever owns the topic, so a client
    that still holds refs from before a restart never mistakes a new meta for an old one.
    """
    prefix = secrets.token_bytes(6)
    counter = itertools.count(1)

    def next_ref() -> str:
        return base64.urlsafe_b64encode(prefix + next(counter).to_bytes(6, "big")).decode()

    return next_ref


@dataclass(frozen=True, slots=True)
class PresenceDiff:
    """Metas that joined and left, by key; `payload()` is the `presence_diff` event payload."""

    joins: Mapping[str, tuple[Meta, ...]] = field(default_factory=dict)
    leaves: Mapping[str, tuple[Meta, ...]] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        """True when nothing joined or left (nothing to broadcast)."""
        return not self.joins and not self.leaves

    def payload(self) -> dict[str, dict[str, dict[str, list[Meta]]]]:
        """`{"joins": {key: {"metas": [...]}}, "leaves": {...}}`, fresh dicts each call."""
        return {"joins": _grouped(self.joins), "leaves": _grouped(self.leaves)}

    def merge(self, later: PresenceDiff, *, keep_transient: bool = False) -> PresenceDiff:
        """One diff equivalent to applying `self` then `later` (for batching broadcasts).

        A meta that joins and leaves within the batch is dropped from both sides, since refs are
        never reused: subscribers never saw it and need not hear of it. Unless `keep_transient`:
        someone was shown a snapshot holding it meanwhile, and must hear it leave.
        """
        joins = _concat(self.joins, later.joins)
        leaves = _concat(self.leaves, later.leaves)
        if keep_transient:
            return PresenceDiff(joins, leaves)
        joined = {meta["phx_ref"] for metas in joins.values() for meta in metas}
        left = {meta["phx_ref"] for metas in leaves.values() for meta in metas}
        transient = joined & left
        if transient:
            joins = _without(joins, transient)
            leaves = _without(leaves, transient)
        return PresenceDiff(joins, leaves)


class TopicPresence:
    """Who is present on one topic: key → {conn → meta}, with `phx_ref` bookkeeping.

    Not thread-safe and not async: the owning actor serializes calls. Returned metas are copies;
    the stored ones are never mutated, only replaced.
    """

    def __init__(self, topic: str, *, ref_factory: RefFactory | None = None) -> None:
        self.topic = topic
        self._next_ref = ref_factory if ref_factory is not None else random_ref_factory()
        # key -> conn -> meta; dict order is meta order (see module docstring).
        self._entries: dict[str, dict[Hashable, Meta]] = {}
        # conn -> its keys, in tracking order.
        self._by_conn: dict[Hashable, dict[str, None]] = {}

    def __repr__(self) -> str:
        return f"TopicPresence({self.topic!r}, keys={len(self._entries)}, metas={self.meta_count})"

    # -- queries ---------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of present keys."""
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    @property
    def is_empty(self) -> bool:
        """True when nobody is tracked (the owner may discard this object)."""
        return not self._entries

    @property
    def meta_count(self) -> int:
        """Number of tracked (conn, key) pairs."""
        return sum(len(metas) for metas in self._entries.values())

    def get(self, key: str) -> list[Meta]:
        """Copies of the metas of `key`, in order; empty if absent."""
        return [dict(meta) for meta in self._entries.get(key, {}).values()]

    def keys_of(self, conn: Hashable) -> list[str]:
        """The keys `conn` tracks, in tracking order."""
        return list(self._by_conn.get(conn, ()))

    def is_tracked(self, conn: Hashable, key: str) -> bool:
        """Whether `conn` currently tracks `key`."""
        return conn in self._entries.get(key, {})

    def state(self) -> dict[str, dict[str, list[Meta]]]:
        """The `presence_state` payload: `{key: {"metas": [meta, ...]}}` (fresh copies)."""
        return {
            key: {"metas": [dict(meta) for meta in metas.values()]}
            for key, metas in self._entries.items()
        }

    # -- mutations -------------------------------------------------------------------------

    def track(self, conn: Hashable, key: str, meta: Mapping[str, Any]) -> PresenceDiff:
        """Add `conn`'s meta under `key`; a diff with one join.

        Raises `AlreadyTrackedError` if `conn` already tracks `key` (use `update`). Any
        `phx_ref` / `phx_ref_prev` in `meta` is replaced by ours.
        """
        if self.is_tracked(conn, key):
            raise AlreadyTrackedError(f"{conn!r} already tracks {key!r} on {self.topic!r}")
        stored = self._stamp(meta, previous=None)
        self._entries.setdefault(key, {})[conn] = stored
        self._by_conn.setdefault(conn, {})[key] = None
        return PresenceDiff(joins={key: (dict(stored),)})

    def update(self, conn: Hashable, key: str, meta: Mapping[str, Any]) -> PresenceDiff:
        """Replace `conn`'s meta under `key`: a diff with a join (new `phx_ref`, `phx_ref_prev`
        = old) and a leave (the old meta) for the same key (§7.1, checklist item 30)."""
        metas = self._entries.get(key)
        if metas is None or conn not in metas:
            raise NotTrackedError(f"{conn!r} does not track {key!r} on {self.topic!r}")
        old = metas.pop(conn)
        stored = self._stamp(meta, previous=old["phx_ref"])
        metas[conn] = stored  # re-inserted last, as phoenix.js orders it
        return PresenceDiff(joins={key: (dict(stored),)}, leaves={key: (dict(old),)})

    def untrack(self, conn: Hashable, key: str | None = None) -> PresenceDiff:
        """Remove `conn`'s meta under `key`, or under every key it tracks when `key` is None
        (channel terminated: leave, crash, connection loss). Untracking nothing is an empty diff.
        """
        keys = self.keys_of(conn) if key is None else [key]
        leaves: dict[str, tuple[Meta, ...]] = {}
        for each in keys:
            metas = self._entries.get(each)
            if metas is None or conn not in metas:
                continue
            leaves[each] = (metas.pop(conn),)
            if not metas:
                del self._entries[each]
            conn_keys = self._by_conn[conn]
            del conn_keys[each]
            if not conn_keys:
                del self._by_conn[conn]
        return PresenceDiff(leaves=leaves)

    def _stamp(self, meta: Mapping[str, Any], *, previous: str | None) -> Meta:
        stored: Meta = {k: v for k, v in meta.items() if k not in ("phx_ref", "phx_ref_prev")}
        stored["phx_ref"] = self._next_ref()
        if previous is not None:
            stored["phx_ref_prev"] = previous
        return stored


def _grouped(by_key: Mapping[str, tuple[Meta, ...]]) -> dict[str, dict[str, list[Meta]]]:
    return {key: {"metas": [dict(meta) for meta in metas]} for key, metas in by_key.items()}


def _concat(
    first: Mapping[str, tuple[Meta, ...]], second: Mapping[str, tuple[Meta, ...]]
) -> dict[str, tuple[Meta, ...]]:
    merged = dict(first)
    for key, metas in second.items():
        merged[key] = merged.get(key, ()) + metas
    return merged


def _without(by_key: Mapping[str, tuple[Meta, ...]], refs: set[str]) -> dict[str, tuple[Meta, ...]]:
    kept: dict[str, tuple[Meta, ...]] = {}
    for key, metas in by_key.items():
        remaining = tuple(meta for meta in metas if meta["phx_ref"] not in refs)
        if remaining:
            kept[key] = remaining
    return kept
