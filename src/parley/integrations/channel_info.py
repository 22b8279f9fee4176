"""What Pusher's HTTP API tells about an application's channels (PUSHER_PROTOCOL.md §9): the
`info` of a trigger, `GET /channels`, `GET /channels/{name}` and `GET /channels/{name}/users`.

One view across both protocols: channel `C` of application `K` is topic `app:K:C`, so a Phoenix
socket joined to `app:K:C` and a Pusher socket subscribed to `C` are both its subscribers, and a
presence channel's users are the keys tracked on its topic (a phoenix.js end user's `sub`, a
pusher-js member's `user_id`).

* `subscription_count`: connections subscribed on this node (pubsub's local subscribers of the
  topic; in a cluster each node counts its own, docs/pusher.md "HTTP API").
* `user_count` (presence channels only): distinct users, cluster-wide (presence merges every
  node's entries).
* occupied: a subscriber here, or a user anywhere (presence).
* `GET /channels` lists the channels with a subscriber on this node, `filter_by_prefix`
  applied; `user_count` is only given with a `presence-` prefix (Pusher's rule, else 400).

Reads only: a few dictionary look-ups per channel, no await, so every answer is one consistent
moment of this node.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from parley.integrations import topics
from parley.integrations.triggers import TriggerError

if TYPE_CHECKING:
    from parley.actors.realtime.presence import Presence
    from parley.actors.realtime.pubsub import PubSub

USER_COUNT: Final = "user_count"
SUBSCRIPTION_COUNT: Final = "subscription_count"


def channel_name(topic: str) -> str | None:
    """The Pusher channel name of an application's topic (None: not a channel's)."""
    parsed = topics.parse(topic)
    if parsed is None or parsed.kind == "broadcast":
        return None
    if parsed.kind == "user":
        return topics.SERVER_TO_USER + parsed.name
    # `#` starts the application's own topics (the signed-in users'), never a channel.
    return None if parsed.name.startswith("#") else parsed.name


class ChannelInfo:
    """Counts of an application's channels on `pubsub` and `presence` (see the module doc)."""

    def __init__(self, pubsub: PubSub, presence: Presence) -> None:
        self._pubsub = pubsub
        self._presence = presence

    def attributes(self, topic: str, channel: str, wanted: Sequence[str]) -> dict[str, int]:
        """`wanted` of `channel` (whose topic is `topic`); `user_count` only where it applies
        (presence channels: a trigger's `info` leaves it out elsewhere, as Pusher does)."""
        found: dict[str, int] = {}
        for name in wanted:
            if name == USER_COUNT:
                if topics.is_presence(channel):
                    found[USER_COUNT] = len(self._presence.list(topic))
            elif name == SUBSCRIPTION_COUNT:
                found[SUBSCRIPTION_COUNT] = self._pubsub.subscriber_count(topic)
        return found

    def triggered(
        self, channels: Sequence[str], channel_topics: Sequence[str], wanted: Sequence[str]
    ) -> dict[str, dict[str, int]]:
        """A trigger's `info`: `wanted` of each channel it named (with its topic)."""
        return {
            channel: self.attributes(topic, channel, wanted)
            for channel, topic in zip(channels, channel_topics, strict=True)
        }

    def channel(self, topic: str, channel: str, wanted: Sequence[str]) -> dict[str, Any]:
        """`GET /channels/{channel}` (whose topic is `topic`): `occupied` and what `wanted`
        asks."""
        if USER_COUNT in wanted and not topics.is_presence(channel):
            raise TriggerError(400, "info", "user_count is only for presence channels")
        occupied = self._pubsub.subscriber_count(topic) > 0 or (
            topics.is_presence(channel) and bool(self._presence.list(topic))
        )
        return {"occupied": occupied, **self.attributes(topic, channel, wanted)}

    def channels(self, app_key: str, prefix: str, wanted: Sequence[str]) -> dict[str, Any]:
        """`GET /channels`: every channel of the application with a subscriber on this node
        whose name starts with `prefix`, each with what `wanted` asks."""
        if USER_COUNT in wanted and not prefix.startswith(topics.PRESENCE_PREFIX):
            raise TriggerError(
                400, "info", "user_count needs filter_by_prefix starting with presence-"
            )
        start = topics.channel_topic(app_key, prefix)
        found: dict[str, dict[str, int]] = {}
        for topic, count in self._pubsub.topics():
            if count < 1 or not topic.startswith(start):
                continue
            name = channel_name(topic)
            if name is None or name.startswith(topics.SERVER_TO_USER):
                continue
            found[name] = self.attributes(topic, name, wanted)
        return {"channels": found}

    def users(self, topic: str, channel: str) -> dict[str, Any]:
        """`GET /channels/{channel}/users` of a presence channel (topic `topic`): its users'
        ids."""
        if not topics.is_presence(channel):
            raise TriggerError(400, "channel", "users are listed for presence channels only")
        state = self._presence.list(topic)
        return {"users": [{"id": key} for key in state]}
