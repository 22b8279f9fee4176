"""Triggers: one event for the subscribers of an application's topics (DESIGN §4.2).

`parse_trigger` turns what `POST .../applications/{app_key}/event/{event}` received into a
`Trigger`, by ExPusherLite's rules and Pusher's limits, or raises `TriggerError` with the status
and the field that is wrong; `build_trigger` holds the rules every trigger obeys, shared with
Pusher's HTTP API (`integrations.pusher_events`). The event's data is the JSON body's `data`, or,
as in the seed, the query parameters (every one but `channel`, `uid`, `direct`, `socket_id` and
the signing parameters becomes a string field). No channel: the broadcast topic `app:{key}`;
`channel=C` (any number of times, or `channels` in the body): `app:{key}:C` (`#server-to-user-U`:
the end user's topic, as in Pusher's API); `direct=true&uid=U` (or `user_id` in the body):
`app:{key}:user:U`.

The payload every subscriber gets is a JSON object (what the Phoenix socket carries): an object
as given; a string holding a JSON object (Pusher's double encoding) as that object; anything else
as `{"data": value}`. Pusher sockets get the data as it was given (`AppBroadcast.data`).

`TriggerPublisher.publish` is the one way a trigger reaches its subscribers, whichever API it came
through (ExPusherLite's endpoint, Pusher's HTTP API): one `AppBroadcast` per topic, remembered by
the cache channels (`channel_cache`), and kept from the Pusher socket its `socket_id` names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import orjson

from parley.actors.realtime.pubsub import Broadcast
from parley.integrations import topics
from parley.integrations.signing import SIGNING_PARAMETERS

if TYPE_CHECKING:
    from parley.actors.realtime.pubsub import PubSub, Subscriber
    from parley.integrations.channel_cache import ChannelCache

ROUTING_PARAMETERS: Final = frozenset({"channel", "uid", "direct", "socket_id"})
BODY_FIELDS: Final = frozenset({"data", "channel", "channels", "user_id", "direct", "socket_id"})
RESERVED_EVENTS: Final = re.compile(r"(phx_|presence_|pusher:|pusher_internal:)")
"""Event names the Phoenix and Pusher protocols use themselves: a triggered `phx_close` would
close every subscriber's channel."""
MAX_EVENT_CHARS: Final = 200
_SOCKET_ID: Final = re.compile(r"\d{1,20}\.\d{1,20}")


class TriggerError(Exception):
    """A trigger that cannot be delivered: `status` (422 or 413; Pusher's HTTP API answers 400
    for 422, as Pusher does), the `field`, and why."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class TriggerLimits:
    max_data_bytes: int
    max_channels: int
    max_channel_chars: int
    max_subject_chars: int


@dataclass(frozen=True, slots=True)
class Trigger:
    event: str
    topics: tuple[str, ...]
    payload: dict[str, Any]
    socket_id: str | None
    """The Pusher socket to leave out (`socket_id`); the Phoenix socket has no such id."""
    data: Any = None
    """The data as it was given (Pusher sockets relay a string as it is); None: the payload."""


def parse_trigger(
    app_key: str,
    event: str,
    query: Sequence[tuple[str, str]],
    body: Mapping[str, Any] | None,
    limits: TriggerLimits,
) -> Trigger:
    """The trigger an ExPusherLite request describes (`body`: the JSON body, None when it sent
    none)."""
    fields = body or {}
    unknown = sorted(set(fields) - BODY_FIELDS)
    if unknown:
        raise TriggerError(422, unknown[0], f"unknown field; give {', '.join(sorted(BODY_FIELDS))}")
    channels = [value for key, value in query if key == "channel"]
    channels += _body_channels(fields)
    user_id = _direct_user(query, fields, limits)
    if user_id is not None and channels:
        raise TriggerError(422, "channel", "a direct event goes to one user, not to channels")
    data: Any
    if "data" in fields:
        data = fields["data"]
    else:
        excluded = ROUTING_PARAMETERS | SIGNING_PARAMETERS
        data = {key: value for key, value in query if key not in excluded}
    socket_ids: list[Any] = [value for key, value in query if key == "socket_id"]
    if "socket_id" in fields:
        socket_ids.append(fields["socket_id"])
    if len(socket_ids) > 1:
        raise TriggerError(422, "socket_id", "give one socket_id")
    socket_id = socket_ids[0] if socket_ids else None
    return build_trigger(app_key, event, channels, data, socket_id, limits, user_id=user_id)


def build_trigger(
    app_key: str,
    event: str,
    channels: Sequence[str],
    data: Any,
    socket_id: Any,
    limits: TriggerLimits,
    *,
    user_id: str | None = None,
) -> Trigger:
    """The rules every trigger obeys, whichever API it came through (ExPusherLite's endpoint,
    `parse_trigger`; Pusher's HTTP API, `integrations.pusher_events`): the event name, at most
    `max_channels` channels each a valid name (`#server-to-user-{id}` names that end user's
    topic), data of at most `max_data_bytes` encoded (413 past it), and a socket id that looks
    like one. No channel and no `user_id`: the application's broadcast topic."""
    check_event(event)
    if len(channels) > limits.max_channels:
        raise TriggerError(422, "channels", f"at most {limits.max_channels} channels")
    if user_id is not None:
        targets: tuple[str, ...] = (topics.user_topic(app_key, user_id),)
    elif channels:
        targets = tuple(dict.fromkeys(channel_target(app_key, c, limits) for c in channels))
    else:
        targets = (topics.namespace(app_key),)
    size = len(data.encode()) if isinstance(data, str) else len(orjson.dumps(data))
    if size > limits.max_data_bytes:
        raise TriggerError(413, "data", f"data is over {limits.max_data_bytes} bytes")
    if socket_id is not None and (
        not isinstance(socket_id, str) or _SOCKET_ID.fullmatch(socket_id) is None
    ):
        raise TriggerError(422, "socket_id", "a socket id looks like 1234.5678")
    return Trigger(event, targets, _payload(data), socket_id, data)


def channel_target(app_key: str, channel: str, limits: TriggerLimits) -> str:
    """The topic of channel `channel`: `app:{key}:{channel}`, or for `#server-to-user-{id}`
    the end user's `app:{key}:user:{id}`; `TriggerError` when it is no channel name."""
    if channel.startswith(topics.SERVER_TO_USER):
        user_id = channel[len(topics.SERVER_TO_USER) :]
        if not 1 <= len(user_id) <= limits.max_subject_chars:
            raise TriggerError(
                422, "channel", f"end-user ids have 1 to {limits.max_subject_chars} chars"
            )
        return topics.user_topic(app_key, user_id)
    problem = topics.channel_problem(channel, limits.max_channel_chars)
    if problem is not None:
        raise TriggerError(422, "channel", problem)
    return topics.channel_topic(app_key, channel)


def check_event(event: str) -> None:
    """An event name of 1 to `MAX_EVENT_CHARS` printable characters, not one of the protocols'."""
    if not 1 <= len(event) <= MAX_EVENT_CHARS or not event.isprintable():
        raise TriggerError(422, "event", f"event names have 1 to {MAX_EVENT_CHARS} characters")
    if RESERVED_EVENTS.match(event):
        raise TriggerError(422, "event", "phx_, presence_ and pusher: events are the protocols'")


def _body_channels(fields: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    if "channel" in fields:
        if not isinstance(fields["channel"], str):
            raise TriggerError(422, "channel", "must be a string")
        found.append(fields["channel"])
    if "channels" in fields:
        value = fields["channels"]
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            raise TriggerError(422, "channels", "must be a list of channel names")
        found += value
    return found


def _direct_user(
    query: Sequence[tuple[str, str]], fields: Mapping[str, Any], limits: TriggerLimits
) -> str | None:
    uids = [value for key, value in query if key == "uid"]
    direct = [value for key, value in query if key == "direct"]
    if "user_id" in fields:
        if not isinstance(fields["user_id"], str):
            raise TriggerError(422, "user_id", "must be a string")
        uids.append(fields["user_id"])
        direct.append("true")
    if len(uids) > 1 or len(direct) > 1:
        raise TriggerError(422, "uid", "give one uid (and direct=true once)")
    if direct and direct[0] not in ("true", "false"):
        raise TriggerError(422, "direct", "must be true or false")
    if direct == ["true"] and not uids:
        raise TriggerError(422, "uid", "direct=true needs the uid of the end user")
    if uids and direct != ["true"]:
        raise TriggerError(422, "direct", "uid sends to one end user: add direct=true")
    if not uids:
        return None
    if not 1 <= len(uids[0]) <= limits.max_subject_chars:
        raise TriggerError(422, "uid", f"end-user ids have 1 to {limits.max_subject_chars} chars")
    return uids[0]


def _payload(data: Any) -> dict[str, Any]:
    if isinstance(data, dict):
        return data
    if isinstance(data, str) and data.startswith("{"):
        try:
            decoded = orjson.loads(data)
        except orjson.JSONDecodeError:
            return {"data": data}
        if isinstance(decoded, dict):
            return decoded
    return {"data": data}


# -- delivering ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False, kw_only=True)
class AppBroadcast(Broadcast):
    """A broadcast on an application's topic with what the Pusher protocol relays beside the
    Phoenix payload: `data` as it was given (a string goes to Pusher sockets as it is, Pusher's
    double encoding; None: the payload), the sender's `socket_id`, and on a presence channel's
    client event the sender's `user_id`. Pubsub and the Phoenix serializers see a `Broadcast`.
    In a cluster, other nodes get the plain broadcast (docs/pusher.md, "What differs")."""

    data: Any = None
    socket_id: str | None = None
    user_id: str | None = None


ExcludeSocket = Callable[[str, str], "Subscriber | None"]
"""(socket_id, topic) -> that Pusher socket's subscriber of the topic, if it is on this node."""


class TriggerPublisher:
    """The one path of every trigger to its subscribers (see the module docstring)."""

    def __init__(
        self,
        pubsub: PubSub,
        cache: ChannelCache | None = None,
        exclude: ExcludeSocket | None = None,
    ) -> None:
        self._pubsub = pubsub
        self.cache = cache
        self.exclude = exclude
        """Set at the composition root once the Pusher sockets exist (`PusherSockets`)."""

    def publish(self, trigger: Trigger) -> int:
        """Deliver `trigger` on each of its topics; returns the local deliveries."""
        broadcast = self._pubsub.broadcast
        cache, exclude, socket_id = self.cache, self.exclude, trigger.socket_id
        delivered = 0
        for topic in trigger.topics:
            event = AppBroadcast(
                topic, trigger.event, trigger.payload, data=trigger.data, socket_id=socket_id
            )
            if cache is not None:
                cache.remember(topic, trigger.event, trigger.payload, trigger.data)
            skip = exclude(socket_id, topic) if exclude is not None and socket_id else None
            delivered += broadcast(event, exclude=skip)
        return delivered
