"""What the Pusher channels are given, the seam for webhooks, and the index of this node's Pusher
subscriptions by socket id.

* `PusherPorts`: the parts the channels use (the application directory, pubsub, presence, the
  cache channels, settings, hooks), built once at the composition root.
* `PusherHooks`: what a subscription reports beyond its socket (a client event, a cache miss),
  for webhooks to plug into; `NO_HOOKS` does nothing.
* `PusherSockets`: (socket id, topic) -> that subscription, so that a trigger naming a
  `socket_id` leaves that socket out (`integrations.triggers.TriggerPublisher.exclude`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    from parley.actors.realtime.presence import Presence
    from parley.actors.realtime.pubsub import PubSub, Subscriber
    from parley.config import IntegrationsSettings, PusherSettings
    from parley.integrations.channel_cache import ChannelCache
    from parley.integrations.directory import ApplicationDirectory


class PusherHooks(Protocol):
    """What Pusher subscriptions report for webhooks (`client_event`, `cache_miss`, §10).
    Called synchronously on the socket's path: an implementation must only queue. Applications
    are named by key, as in their topics (`parley.integrations.webhooks` keys everything so)."""

    def client_event(
        self,
        app_key: str,
        channel: str,
        event: str,
        data: Any,
        socket_id: str,
        user_id: str | None,
    ) -> None: ...

    def cache_miss(self, app_key: str, channel: str) -> None: ...


class _NoHooks:
    def client_event(
        self,
        app_key: str,
        channel: str,
        event: str,
        data: Any,
        socket_id: str,
        user_id: str | None,
    ) -> None:
        return None

    def cache_miss(self, app_key: str, channel: str) -> None:
        return None


NO_HOOKS: Final[PusherHooks] = _NoHooks()


class PusherSockets:
    """This node's Pusher subscriptions by (socket id, topic)."""

    def __init__(self) -> None:
        self._subscriptions: dict[tuple[str, str], Subscriber] = {}

    def __len__(self) -> int:
        return len(self._subscriptions)

    def add(self, socket_id: str, topic: str, subscriber: Subscriber) -> None:
        self._subscriptions[(socket_id, topic)] = subscriber

    def remove(self, socket_id: str, topic: str, subscriber: Subscriber) -> None:
        if self._subscriptions.get((socket_id, topic)) is subscriber:
            del self._subscriptions[(socket_id, topic)]

    def subscriber(self, socket_id: str, topic: str) -> Subscriber | None:
        """The subscription of socket `socket_id` to `topic` on this node, if any."""
        return self._subscriptions.get((socket_id, topic))


@dataclass(frozen=True, slots=True)
class PusherPorts:
    """Everything the Pusher channels are given."""

    directory: ApplicationDirectory
    pubsub: PubSub
    presence: Presence
    cache: ChannelCache
    sockets: PusherSockets
    settings: PusherSettings
    limits: IntegrationsSettings
    """Channel name length, user id length, user_info size, data size (shared with triggers)."""
    hooks: PusherHooks = NO_HOOKS
