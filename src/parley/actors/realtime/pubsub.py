"""PubSub: topic -> local subscribers, behind a small adapter interface (Phoenix.PubSub's shape).

A broadcast is one `Broadcast` object handed to every subscriber of its topic. PubSub knows no frame
format: the socket layer encodes a broadcast at most once per serializer and caches the frame on the
object, so every recipient writes the same bytes (Phoenix's fastlane).

Delivery never blocks the publisher. `Subscriber.deliver` must return at once; a subscriber that
cannot keep up (a slow socket) applies its own overflow policy, so one slow consumer never slows a
conversation.

The subscription table is owned by the adapter and touched only from trio's single thread, which
makes reads and writes atomic with respect to each other (the same reasoning as the registry's
look-ups, and as Phoenix's ETS-backed Registry). The cluster adapter
(`parley.actors.realtime.cluster.ClusterPubSub`, over PostgreSQL LISTEN/NOTIFY or Redis)
implements the same interface around a `LocalPubSub`, and also sends every broadcast to the other
nodes; with `cluster.adapter = "none"` the `LocalPubSub` is all there is.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, eq=False)
class Broadcast:
    """One event for every subscriber of `topic`: `[null, null, topic, event, payload]` on the wire.

    `payload` must not be mutated after publishing (it is encoded lazily, at first delivery). The
    frame cache is keyed by serializer and excluded from repr; identity equality keeps it hashable.
    """

    topic: str
    event: str
    payload: Any
    _frames: dict[Hashable, Any] = field(default_factory=dict, init=False, repr=False)

    @property
    def is_binary(self) -> bool:
        return isinstance(self.payload, bytes)

    def cached_frame(self, key: Hashable) -> Any:
        """The encoding already made for serializer `key`, or None."""
        return self._frames.get(key)

    def cache_frame(self, key: Hashable, frame: Any) -> Any:
        self._frames[key] = frame
        return frame


class Subscriber(Protocol):
    """Anything that takes broadcasts; `deliver` must not block or raise."""

    def deliver(self, broadcast: Broadcast) -> None: ...


@dataclass(frozen=True)
class PubSubStats:
    topics: int
    subscriptions: int
    broadcasts: int
    deliveries: int
    delivery_errors: int


class PubSub(abc.ABC):
    """The adapter interface every PubSub backend implements."""

    @abc.abstractmethod
    def subscribe(self, topic: str, subscriber: Subscriber) -> None:
        """Deliver broadcasts on `topic` to `subscriber` (idempotent)."""

    @abc.abstractmethod
    def unsubscribe(self, topic: str, subscriber: Subscriber) -> None:
        """Stop delivering `topic` to `subscriber` (idempotent)."""

    @abc.abstractmethod
    def broadcast(self, broadcast: Broadcast, *, exclude: Subscriber | None = None) -> int:
        """Hand `broadcast` to every subscriber of its topic but `exclude`; returns how many."""

    def publish(self, topic: str, event: str, payload: Any) -> int:
        return self.broadcast(Broadcast(topic, event, payload))

    def publish_ordered(self, topic: str, event: str, payload: Any, stream: str, seq: int) -> int:
        """`publish` of the `seq`th message of `stream` (a conversation): in a cluster, every
        node delivers a topic's stream in seq order, once each (DESIGN §8). Called in seq order
        on any one node (after each commit)."""
        return self.publish(topic, event, payload)

    def publish_from(self, sender: Subscriber, topic: str, event: str, payload: Any) -> int:
        """Phoenix's broadcast_from: everyone on the topic except `sender`."""
        return self.broadcast(Broadcast(topic, event, payload), exclude=sender)

    @abc.abstractmethod
    def subscriber_count(self, topic: str) -> int: ...

    @abc.abstractmethod
    def topics(self) -> list[tuple[str, int]]:
        """Every topic with a local subscriber, with how many (for operators)."""

    @abc.abstractmethod
    def statistics(self) -> PubSubStats: ...

    async def run(self, *, task_status: trio.TaskStatus[PubSub] = trio.TASK_STATUS_IGNORED) -> None:
        """The adapter's life as a supervised child; the local adapter has nothing to listen to."""
        task_status.started(self)
        await trio.sleep_forever()


CountWatch = Callable[[str, int], object]
"""`(topic, subscribers now)`, called after a subscription count of a watched topic changed."""


class LocalPubSub(PubSub):
    """Subscriptions of this process only."""

    def __init__(self) -> None:
        # topic -> subscribers in subscription order (a dict as an ordered set).
        self._topics: dict[str, dict[Subscriber, None]] = {}
        self._broadcasts = 0
        self._deliveries = 0
        self._delivery_errors = 0
        self._watch_prefix = ""
        self._watch: CountWatch | None = None

    def watch(self, prefix: str, on_count: CountWatch) -> None:
        """Tell `on_count` of every change of a subscription count of a topic that starts with
        `prefix` (Pusher webhooks' occupancy, whichever protocol the subscriber speaks). It is
        called synchronously on the subscriber's path, so it must only take note."""
        self._watch_prefix, self._watch = prefix, on_count

    def subscribe(self, topic: str, subscriber: Subscriber) -> None:
        subscribers = self._topics.setdefault(topic, {})
        if subscriber in subscribers:
            return
        subscribers[subscriber] = None
        if self._watch is not None and topic.startswith(self._watch_prefix):
            self._watch(topic, len(subscribers))

    def unsubscribe(self, topic: str, subscriber: Subscriber) -> None:
        subscribers = self._topics.get(topic)
        if subscribers is None or subscriber not in subscribers:
            return
        del subscribers[subscriber]
        if not subscribers:
            del self._topics[topic]
        if self._watch is not None and topic.startswith(self._watch_prefix):
            self._watch(topic, len(subscribers))

    def publish(self, topic: str, event: str, payload: Any) -> int:
        # Most topics a message is published on have nobody on them (a member's `user:` topic
        # while they are offline): no Broadcast is made for those.
        if topic not in self._topics:
            self._broadcasts += 1
            return 0
        return self.broadcast(Broadcast(topic, event, payload))

    def publish_ordered(self, topic: str, event: str, payload: Any, stream: str, seq: int) -> int:
        # One node delivers in commit order already: nothing to order.
        return self.publish(topic, event, payload)

    def has_subscribers(self, topic: str) -> bool:
        return topic in self._topics

    def broadcast(self, broadcast: Broadcast, *, exclude: Subscriber | None = None) -> int:
        subscribers = self._topics.get(broadcast.topic)
        self._broadcasts += 1
        if not subscribers:
            return 0
        delivered = 0
        # A copy: delivering may unsubscribe (a slow consumer is disconnected on overflow).
        for subscriber in tuple(subscribers):
            if subscriber is exclude:
                continue
            try:
                subscriber.deliver(broadcast)
            except Exception:
                # A subscriber bug must not stop the fan-out to everyone else.
                self._delivery_errors += 1
                log.exception("subscriber %r failed to take a broadcast", subscriber)
                continue
            delivered += 1
        self._deliveries += delivered
        return delivered

    def subscriber_count(self, topic: str) -> int:
        return len(self._topics.get(topic, ()))

    def topics(self) -> list[tuple[str, int]]:
        return [(topic, len(subscribers)) for topic, subscribers in self._topics.items()]

    def statistics(self) -> PubSubStats:
        return PubSubStats(
            topics=len(self._topics),
            subscriptions=sum(len(s) for s in self._topics.values()),
            broadcasts=self._broadcasts,
            deliveries=self._deliveries,
            delivery_errors=self._delivery_errors,
        )
