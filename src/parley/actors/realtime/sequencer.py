"""Per-conversation seq order across nodes: each topic gets a stream's messages in seq order,
once each, with gaps filled from PostgreSQL (DESIGN §8, "Order and gaps").

Every node can commit messages of one conversation (each runs its own conversation actor; the
seq comes from the database), and their envelopes reach a node over the bus in any order, or not
at all. So a node delivers an ordered broadcast only when it is the next seq of its (topic,
stream); one that arrives ahead waits `cluster.gap_wait_ms` for its predecessors, then the missing
ones are read from the messages table (`GapFiller`) and delivered first. Repeats are dropped.
Positions are kept only for topics with subscribers on this node, at most
`cluster.ordered_streams_max` of them. A new position (a topic's first message after someone
subscribed here, or after it was forgotten) does not know where its stream is: the first seq seen
may have overtaken earlier ones committed on other nodes a moment before. So unless it is seq 1,
it is held for `gap_wait_ms` like a gap, and the lowest seq that arrived meanwhile starts the
stream; older ones came before the subscriber (clients joining with `last_seq` recover those
from the database).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

log = logging.getLogger(__name__)

GapFiller = Callable[[str, int, int], Awaitable[list[tuple[int, Any]]]]
"""`(stream, after_seq, limit)` -> up to `limit` stored `(seq, payload)` after `after_seq`, in seq
order (the stream is a conversation id)."""

Deliver = Callable[[str, str, Any], int]
"""`(topic, event, payload)`: hand one broadcast to this node's subscribers of `topic`."""


@dataclass(slots=True)
class _Position:
    last: int
    """The last seq delivered on this (topic, stream)."""
    event: str
    pending: dict[int, Any] = field(default_factory=dict)
    """Arrived ahead of a missing seq: seq -> payload."""
    due: float | None = None
    """When the gap is filled from the database if its messages have not arrived by then."""
    opening: bool = False
    """New, with nothing delivered yet: a lower seq arriving now starts the stream lower."""


@dataclass
class SequencerStats:
    streams: int = 0
    delivered: int = 0
    duplicates: int = 0
    gaps: int = 0
    openings_held: int = 0
    gap_messages_filled: int = 0
    gap_messages_lost: int = 0
    fill_failures: int = 0


class Sequencer:
    """Orders the `ordered` broadcasts of this node, whichever node they came from."""

    def __init__(
        self,
        deliver: Deliver,
        has_subscribers: Callable[[str], bool],
        fill: GapFiller,
        *,
        gap_wait_seconds: float,
        max_streams: int,
    ) -> None:
        self._deliver = deliver
        self._has_subscribers = has_subscribers
        self._fill = fill
        self._gap_wait = gap_wait_seconds
        self._max_streams = max_streams
        self._positions: OrderedDict[tuple[str, str], _Position] = OrderedDict()
        self._waiting: dict[tuple[str, str], None] = {}
        self._wake = trio.Event()
        self.stats = SequencerStats()

    def offer(self, topic: str, event: str, payload: Any, stream: str, seq: int) -> int:
        """One ordered broadcast: delivered now if it is the next seq, held if it is ahead,
        dropped if it was delivered already; how many subscribers took it now."""
        if not self._has_subscribers(topic):
            return 0
        key = (topic, stream)
        position = self._positions.get(key)
        if position is None:
            position = self._positions[key] = _Position(seq - 1, event, opening=seq > 1)
            self._evict()
            if position.opening:
                self.stats.openings_held += 1
                self._hold(key, position, seq, payload)
                return 0
        else:
            self._positions.move_to_end(key)
        if position.opening and seq <= position.last:
            position.last = seq - 1  # it was committed earlier: the stream starts here
        if seq <= position.last or seq in position.pending:
            self.stats.duplicates += 1
            return 0
        if seq == position.last + 1:
            return self._deliver_next(topic, position, payload)
        if not position.pending:
            self.stats.gaps += 1
        self._hold(key, position, seq, payload)
        return 0

    def _hold(self, key: tuple[str, str], position: _Position, seq: int, payload: Any) -> None:
        """Keep `payload` until its predecessors arrive or the wait for them is over."""
        if not position.pending:
            position.due = trio.current_time() + self._gap_wait
            self._waiting[key] = None
            self._wake.set()
        position.pending[seq] = payload

    def describe(self) -> dict[str, int]:
        self.stats.streams = len(self._positions)
        return dict(vars(self.stats))

    async def run(self) -> None:
        """Fill the gaps whose wait is over, for as long as the node runs."""
        while True:
            while not self._waiting:
                self._wake = trio.Event()
                await self._wake.wait()
            due = min(self._due(key) for key in self._waiting)
            await trio.sleep_until(due)
            now = trio.current_time()
            by_stream: dict[str, list[tuple[str, str]]] = {}
            for key in list(self._waiting):
                if self._due(key) <= now:
                    del self._waiting[key]
                    by_stream.setdefault(key[1], []).append(key)
            for stream, keys in by_stream.items():
                await self._fill_stream(stream, keys)

    def _due(self, key: tuple[str, str]) -> float:
        position = self._positions.get(key)
        return -float("inf") if position is None or position.due is None else position.due

    async def _fill_stream(self, stream: str, keys: list[tuple[str, str]]) -> None:
        positions = [(key[0], p) for key in keys if (p := self._positions.get(key)) is not None]
        for topic, position in positions:
            if position.opening:  # the wait is over: the lowest seq that came starts the stream
                position.opening = False
                if position.last + 1 in position.pending:
                    self._deliver_next(topic, position, position.pending[position.last + 1])
        positions = [(topic, p) for topic, p in positions if p.pending]
        if not positions:
            return
        after = min(p.last for _, p in positions)
        upto = max(max(p.pending) for _, p in positions)
        try:
            rows = await self._fill(stream, after, upto - after)
        except Exception:
            # The database is away: what is held goes out anyway (clients recover the rest
            # with `last_seq` when they rejoin); holding it longer would stall the topic.
            log.warning("could not fill a gap of stream %s from the database", stream)
            self.stats.fill_failures += 1
            rows = []
        stored = dict(rows)
        for topic, position in positions:
            # Only up to what was asked for: what arrived ahead meanwhile waits its own turn.
            while position.last < upto:
                next_seq = position.last + 1
                if next_seq in position.pending:
                    self._deliver_next(topic, position, position.pending[next_seq])
                elif next_seq in stored:
                    self.stats.gap_messages_filled += 1
                    self._deliver_next(topic, position, stored[next_seq])
                else:
                    # Not stored (or not readable now): skip to the next one there is.
                    there = [s for s in (*position.pending, *stored) if next_seq < s <= upto]
                    if not there:
                        break
                    following = min(there)
                    self.stats.gap_messages_lost += following - next_seq
                    position.last = following - 1
            if position.pending:
                position.due = trio.current_time() + self._gap_wait
                self._waiting[(topic, stream)] = None
                self._wake.set()
            else:
                position.due = None

    def _deliver_next(self, topic: str, position: _Position, payload: Any) -> int:
        """Deliver `payload` as the next seq, then whatever was held right behind it; how many
        subscribers took `payload`."""
        position.opening = False
        delivered = -1
        while True:
            position.last += 1
            position.pending.pop(position.last, None)
            self.stats.delivered += 1
            count = self._deliver(topic, position.event, payload)
            delivered = count if delivered < 0 else delivered
            if position.last + 1 not in position.pending:
                break
            payload = position.pending[position.last + 1]
        if not position.pending:
            position.due = None
        return delivered

    def _evict(self) -> None:
        while len(self._positions) > self._max_streams:
            key, position = next(iter(self._positions.items()))
            del self._positions[key]
            self._waiting.pop(key, None)
            if position.pending:  # forgotten while waiting: what it held goes out now
                for seq in sorted(position.pending):
                    self._deliver(key[0], position.event, position.pending[seq])
