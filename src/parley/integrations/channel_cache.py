"""Cache channels (PUSHER_PROTOCOL.md §4): the last event triggered on each `cache-*` channel.

Pusher's cache channels (`cache-`, `private-cache-`, `private-encrypted-cache-`,
`presence-cache-`) remember the last event triggered on them, for `pusher.cache_seconds` (30
minutes), so that a client subscribing later gets it right after `subscription_succeeded`
(without one: `pusher:cache_miss`). `ChannelCache.remember` is called on the one path every
trigger takes (`integrations.triggers.TriggerPublisher`), `last` by the Pusher socket at
subscribe.

Bounded: at most `pusher.cache_max_channels` channels per node; past it the least recently
written one goes first (a dict keeps insertion order, and a write moves its key to the end).
Expired entries go when they are read, or when they reach the front. The cache is this node's: in
a cluster a trigger fills the cache of the node that received it (docs/pusher.md, "What differs").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from parley.integrations import topics

CACHE_KINDS: Final = ("cache-", "private-cache-", "private-encrypted-cache-", "presence-cache-")


def is_cache_channel(channel: str) -> bool:
    """Whether `channel` is one of Pusher's cache channels."""
    return channel.startswith(CACHE_KINDS)


@dataclass(frozen=True, slots=True)
class CachedEvent:
    """The last event of a cache channel: its name, the Phoenix payload and Pusher's `data`."""

    event: str
    payload: Any
    data: Any
    expires: float


class ChannelCache:
    """Topic of a cache channel -> its last triggered event, bounded in time and count."""

    def __init__(
        self,
        *,
        ttl_seconds: float,
        max_channels: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_channels < 1:
            raise ValueError("max_channels must be >= 1")
        self._ttl = ttl_seconds
        self._max = max_channels
        self._clock = clock
        self._entries: dict[str, CachedEvent] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, topic: str, event: str, payload: Any, data: Any) -> bool:
        """Keep `event` as the last of `topic` if `topic` is a cache channel's; True if kept."""
        parsed = topics.parse(topic)
        if parsed is None or parsed.kind != "channel" or not is_cache_channel(parsed.name):
            return False
        entries = self._entries
        entries.pop(topic, None)
        now = self._clock()
        while entries and len(entries) >= self._max:
            del entries[next(iter(entries))]
        entries[topic] = CachedEvent(event, payload, data, now + self._ttl)
        self._drop_expired(now)
        return True

    def last(self, topic: str) -> CachedEvent | None:
        """The last event of `topic` while it is fresh, else None."""
        entry = self._entries.get(topic)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            del self._entries[topic]
            return None
        return entry

    def _drop_expired(self, now: float) -> None:
        """Oldest writes first: stop at the first one still fresh (all later ones are too)."""
        entries = self._entries
        while entries:
            topic = next(iter(entries))
            if entries[topic].expires > now:
                return
            del entries[topic]
