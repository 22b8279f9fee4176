"""The webhook recorder: one supervised actor per node that turns what happens to applications'
channels into Pusher webhook events and writes them to the outbox in batches.

What it is told, all synchronously and on the path of whatever caused it (so each call only
takes note; the writing happens in `run`):

* `count(topic, n)`: pubsub's subscriber count of an `app:K:C` topic changed (the
  `LocalPubSub.watch` hook). A Phoenix end user on `app:K:C` and a pusher-js subscriber of `C`
  are subscribers of one topic, so occupancy is one view across both protocols:
  `channel_occupied` when the first arrives, `channel_vacated` when the last leaves, and
  `subscription_count` (non-presence channels) as the count moves.
* `presence(topic, diff)`: a presence diff of `app:K:presence-*` (the `Presence.watch` hook).
  Whether each user named in it is still there is read from presence itself after the change,
  so `member_added` comes with a user's first connection (of either protocol) and
  `member_removed` with their last, once per user, whatever the diffs were merged into.
* `client_event(...)`, `cache_miss(...)`: the Pusher socket's hooks (`PusherHooks`).

`channel_vacated` and `member_removed` are held for `webhooks.hold_seconds`; a channel occupied
again, or a user back, within the hold drops the held event and sends no new
`channel_occupied` / `member_added` either: to the application nothing happened (a pusher-js
reconnect). Events are written `webhooks.record_flush_ms` after the first of a batch, at most
`record_batch_max` per write; at most `record_max_pending` wait or are held, past that new ones
are dropped and counted (a database that stays away must not eat the node's memory). A write
that fails because the database is unavailable is retried; any other error crashes the actor and
its supervisor restarts `run` on the same object, which keeps what it had noted.

In a cluster, each node reports the subscribers and presence entries of its own sockets.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from parley.integrations import topics
from parley.integrations.webhooks import events
from parley.integrations.webhooks.events import Noted
from parley.store.database import database_unavailable

if TYPE_CHECKING:
    from parley.config import WebhookSettings

log = logging.getLogger(__name__)

Write = Callable[[list[Noted]], Awaitable[Sequence[Noted]]]
"""Writes a batch; returns what it wrote (events of applications that want them)."""
Wants = Callable[[str], bool]
"""Whether the application with this key may want webhooks (False: surely not, skip it)."""
MembersOf = Callable[[str, str], int]
"""`(topic, user id)` -> how many presence entries that user has on the topic now."""


@dataclass(frozen=True, slots=True)
class RecorderStats:
    recorded: dict[str, int]
    """Events written to the outbox, by name."""
    cancelled: dict[str, int]
    """Held events dropped because the channel or the user was back in time, by name."""
    dropped: int
    """Events dropped because `record_max_pending` were waiting."""
    write_errors: int
    waiting: int
    held: int


def channel_of(topic: str) -> tuple[str, str] | None:
    """(app key, channel) of an application's channel topic; None for any other topic (the
    broadcast topic, a user's topic, the server's own `#` topics)."""
    parsed = topics.parse(topic)
    if parsed is None or parsed.kind != "channel" or parsed.name.startswith("#"):
        return None
    return parsed.app_key, parsed.name


class WebhookRecorder:
    """Notes channel, member and socket events; `run` writes them (see the module docstring)."""

    def __init__(
        self,
        settings: WebhookSettings,
        members_of: MembersOf,
        write: Write,
        wants: Wants = lambda app_key: True,
    ) -> None:
        self._settings = settings
        self._members_of = members_of
        self._write = write
        self._wants = wants
        self._ready: list[Noted] = []
        self._ready_since = math.inf
        self._occupied: set[str] = set()
        self._members: dict[str, set[str]] = {}
        self._counts: dict[str, int] = {}
        # What is held: key -> (deadline, the event); the heap orders the deadlines, and an
        # entry no longer in `_held` (or held again later) is skipped when it comes up.
        self._held: dict[tuple[str, str], tuple[float, Noted]] = {}
        self._deadlines: list[tuple[float, tuple[str, str]]] = []
        self._changed = trio.Event()
        self._recorded: Counter[str] = Counter()
        self._cancelled: Counter[str] = Counter()
        self._dropped = 0
        self._write_errors = 0
        self.shutdown_seconds = 1.0
        """How long stopping may take to write what is left (the composition root sets it to
        part of the child's shutdown grace)."""

    # -- what it is told (synchronous) ----------------------------------------------------------

    def count(self, topic: str, subscribers: int) -> None:
        found = channel_of(topic)
        if found is None:
            return
        app_key, channel = found
        if not topics.is_presence(channel) and self._wants(app_key):
            self._pending_starts(trio.current_time())
            self._counts[topic] = subscribers
            self._changed.set()
        if subscribers > 0 and topic not in self._occupied:
            self._occupied.add(topic)
            if not self._unhold((topic, ""), events.CHANNEL_VACATED):
                self._note(Noted(app_key, events.channel_event(events.CHANNEL_OCCUPIED, channel)))
        elif subscribers == 0 and topic in self._occupied:
            self._occupied.discard(topic)
            self._hold(
                (topic, ""), Noted(app_key, events.channel_event(events.CHANNEL_VACATED, channel))
            )

    def presence(self, topic: str, diff: dict[str, Any]) -> None:
        found = channel_of(topic)
        if found is None or not topics.is_presence(found[1]):
            return
        app_key, channel = found
        known = self._members.setdefault(topic, set())
        for part in ("joins", "leaves"):
            named = diff.get(part)
            for user_id in named if isinstance(named, dict) else ():
                user_id = str(user_id)
                here = self._members_of(topic, user_id) > 0
                if here and user_id not in known:
                    known.add(user_id)
                    if not self._unhold((topic, user_id), events.MEMBER_REMOVED):
                        event = events.member_event(events.MEMBER_ADDED, channel, user_id)
                        self._note(Noted(app_key, event))
                elif not here and user_id in known:
                    known.discard(user_id)
                    event = events.member_event(events.MEMBER_REMOVED, channel, user_id)
                    self._hold((topic, user_id), Noted(app_key, event))
        if not known:
            del self._members[topic]

    def client_event(
        self,
        app_key: str,
        channel: str,
        event: str,
        data: Any,
        socket_id: str,
        user_id: str | None,
    ) -> None:
        if self._wants(app_key):  # before encoding the data: most applications have no URL
            self._note(
                Noted(app_key, events.client_event(channel, event, data, socket_id, user_id))
            )

    def cache_miss(self, app_key: str, channel: str) -> None:
        self._note(Noted(app_key, events.channel_event(events.CACHE_MISS, channel)))

    # -- holding --------------------------------------------------------------------------------

    def _room(self) -> bool:
        if len(self._ready) + len(self._held) < self._settings.record_max_pending:
            return True
        self._dropped += 1
        return False

    def _pending_starts(self, now: float) -> None:
        """Before something is added to write: the batch's flush time starts with its first."""
        if not self._ready and not self._counts:
            self._ready_since = now

    def _note(self, noted: Noted) -> None:
        if not self._wants(noted.app_key) or not self._room():
            return
        self._pending_starts(trio.current_time())
        self._ready.append(noted)
        self._changed.set()

    def _hold(self, key: tuple[str, str], noted: Noted) -> None:
        if not self._wants(noted.app_key) or not self._room():
            return
        deadline = trio.current_time() + self._settings.hold_seconds
        self._held[key] = (deadline, noted)
        heapq.heappush(self._deadlines, (deadline, key))
        self._changed.set()

    def _unhold(self, key: tuple[str, str], name: str) -> bool:
        """Drop the held event at `key`; whether there was one."""
        held = self._held.pop(key, None)
        if held is None:
            return False
        self._cancelled[name] += 1
        return True

    def _release_due(self, now: float) -> None:
        """Held events whose hold is over become ready (member_removed before channel_vacated,
        as they were held in that order or together)."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            deadline, key = heapq.heappop(deadlines)
            held = self._held.get(key)
            if held is None or held[0] != deadline:
                continue  # cancelled, or held again since
            del self._held[key]
            self._pending_starts(now)
            self._ready.append(held[1])

    def _next_deadline(self) -> float:
        waiting = self._ready_since + self._settings.record_flush_ms / 1000
        if not self._ready and not self._counts:
            waiting = math.inf
        while self._deadlines and self._deadlines[0][1] not in self._held:
            heapq.heappop(self._deadlines)  # cancelled: not worth waking for
        held = self._deadlines[0][0] if self._deadlines else math.inf
        return min(waiting, held)

    # -- the actor ------------------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[WebhookRecorder] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started(self)
        try:
            while True:
                now = trio.current_time()
                self._release_due(now)
                full = len(self._ready) >= self._settings.record_batch_max
                if full or self._next_deadline() <= now:
                    await self.flush()
                    continue
                self._changed = trio.Event()
                with trio.move_on_at(self._next_deadline()):
                    await self._changed.wait()
        except trio.Cancelled:
            # Stopping (the node shuts down): what is held goes out now, so applications do not
            # believe the node's channels occupied for ever; bounded by `shutdown_seconds`.
            with trio.CancelScope(shield=True), trio.move_on_after(self.shutdown_seconds):
                self._release_due(math.inf)
                while self._ready or self._counts:
                    await self.flush()
            raise

    async def flush(self) -> None:
        """Write what is ready (at most `record_batch_max`); on a database that cannot answer,
        keep it and try again after `record_flush_ms`."""
        batch = self._ready[: self._settings.record_batch_max]
        counts = self._counts
        if len(batch) < self._settings.record_batch_max:
            self._counts = {}
            for topic, count in counts.items():
                found = channel_of(topic)
                if found is not None:
                    batch.append(Noted(found[0], events.subscription_count(found[1], count)))
        else:
            counts = {}
        taken = len(self._ready[: self._settings.record_batch_max])
        try:
            written = await self._write(batch)
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            self._write_errors += 1
            self._counts = counts | self._counts
            self._ready_since = trio.current_time()
            log.warning("webhooks: cannot record %d event(s) (%r); retrying", len(batch), exc)
            await trio.sleep(self._settings.record_flush_ms / 1000)
            return
        del self._ready[:taken]
        self._ready_since = trio.current_time() if self._ready or self._counts else math.inf
        self._recorded.update(noted.name for noted in written)

    def statistics(self) -> RecorderStats:
        return RecorderStats(
            recorded=dict(self._recorded),
            cancelled=dict(self._cancelled),
            dropped=self._dropped,
            write_errors=self._write_errors,
            waiting=len(self._ready) + len(self._counts),
            held=len(self._held),
        )

    def describe(self) -> dict[str, Any]:
        stats = self.statistics()
        return {
            "recorded": stats.recorded,
            "cancelled_by_hold": stats.cancelled,
            "dropped": stats.dropped,
            "write_errors": stats.write_errors,
            "waiting": stats.waiting,
            "held": stats.held,
            "occupied_channels": len(self._occupied),
            "presence_channels": len(self._members),
        }
