"""Pusher frames as the channel core's messages: the Pusher serializer (PUSHER_PROTOCOL.md §1-8).

A Pusher frame is a JSON object `{"event", "channel"?, "data"?}`; server frames carry `data` as a
JSON string (Pusher's double encoding). The core speaks in Phoenix's five fields, so each client
frame becomes a `Message` whose `ref` says what it was (`REF_*`, echoed by the core in its
reply), which is how a reply finds its Pusher form again:

| client frame | message |
| --- | --- |
| `pusher:ping` / `pusher:pong` | the core's heartbeat (answered `pusher:pong` / nothing) |
| `pusher:subscribe {channel, auth?, channel_data?}` | `phx_join` of the channel's topic |
| `pusher:unsubscribe {channel}` | `phx_leave` (its reply is sent as nothing) |
| `pusher:signin {auth, user_data}` | `phx_join` of the application's users topic (`signin`) |
| `client-*` on a channel | a push to the channel's topic |
| anything else | a push nobody handles, answered `pusher:error` |

Channel `C` of application `K` is topic `app:K:C`, `#server-to-user-U` is `app:K:user:U`
(`parley.integrations.topics`), so a broadcast's frame depends on its topic alone: one encode per
broadcast for every Pusher socket (`fastlane`, cache key `CACHE_KEY`). A name that cannot be a
channel (a `:` in it) maps to a topic no route serves, so it can never reach another topic.

Close codes: the core's codes become Pusher's (`close_mapping`): a restart or drain 4200
(reconnect now, never 4009), a crash or slow consumer 4100 (back off), and each close carries a
`pusher:error` frame with the code, as §3 asks.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

import orjson

from parley.api.socket.core import message as m
from parley.api.socket.core.channel import UNAUTHORIZED
from parley.api.socket.core.close_codes import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL_ERROR,
    CLOSE_SERVICE_RESTART,
    CLOSE_TRY_AGAIN_LATER,
)
from parley.api.socket.core.message import Broadcast, Frame, Message, Reply
from parley.api.socket.core.serializer import FrameError
from parley.integrations import topics
from parley.integrations.topics import SERVER_TO_USER
from parley.integrations.triggers import AppBroadcast

if TYPE_CHECKING:
    from collections.abc import Hashable

SOCKET_ID: Final = re.compile(r"\d+\.\d+")
"""What a socket id looks like (the SDKs refuse anything else before signing, §1)."""
VSN: Final = "pusher-7"
CACHE_KEY: Final = "pusher"
PROTOCOL_VERSION: Final = 7

REF_PING: Final = "ping"
REF_PONG: Final = "pong"
REF_SUBSCRIBE: Final = "subscribe"
REF_UNSUBSCRIBE: Final = "unsubscribe"
REF_SIGNIN: Final = "signin"
REF_CLIENT: Final = "client"
REF_ERROR: Final = "error:"
"""A frame that is well-formed but means nothing: `error:` + what to tell the client."""

NO_CHANNEL_TOPIC: Final = "pusher"
"""The topic of frames that name no channel (never routed: answered `pusher:error`)."""
INVALID_PREFIX: Final = "pusher_invalid:"
USERS_CHANNEL: Final = "#users"
"""`app:{key}:#users`: the signed-in users of an application (sign-in, watchlist); no channel
name may start with `#`, so no client can subscribe to it or trigger on it."""

ERROR: Final = "pusher:error"
PONG: Final = "pusher:pong"
CONNECTION_ESTABLISHED: Final = "pusher:connection_established"
SUBSCRIPTION_SUCCEEDED: Final = "pusher_internal:subscription_succeeded"
SUBSCRIPTION_ERROR: Final = "pusher:subscription_error"
SIGNIN_SUCCESS: Final = "pusher:signin_success"
CACHE_MISS: Final = "pusher:cache_miss"
MEMBER_ADDED: Final = "pusher_internal:member_added"
MEMBER_REMOVED: Final = "pusher_internal:member_removed"
WATCHLIST_EVENTS: Final = "pusher_internal:watchlist_events"

# Pusher's close codes (§3).
CLOSE_NO_APP: Final = 4001
CLOSE_APP_DISABLED: Final = 4003
CLOSE_OVER_QUOTA: Final = 4004
CLOSE_PATH_NOT_FOUND: Final = 4005
CLOSE_UNSUPPORTED_PROTOCOL: Final = 4007
CLOSE_NO_PROTOCOL: Final = 4008
CLOSE_UNAUTHORIZED: Final = 4009
CLOSE_OVER_CAPACITY: Final = 4100
CLOSE_RECONNECT: Final = 4200
CLOSE_NO_PONG: Final = 4201
CODE_CLIENT_EVENT_REJECTED: Final = 4301
CODE_WATCHLIST_TOO_BIG: Final = 4302

_CORE_TO_PUSHER: Final = {
    CLOSE_SERVICE_RESTART: CLOSE_RECONNECT,
    CLOSE_GOING_AWAY: CLOSE_RECONNECT,
    CLOSE_INTERNAL_ERROR: CLOSE_OVER_CAPACITY,
    CLOSE_TRY_AGAIN_LATER: CLOSE_OVER_CAPACITY,
}
"""The core's closes that Pusher has codes for; the others (4xxx of ours, 1007 bad data, 1009
too big) are sent as they are."""


def users_topic(app_key: str) -> str:
    return topics.channel_topic(app_key, USERS_CHANNEL)


def topic_for(app_key: str, channel: str) -> str:
    """The topic of Pusher channel `channel` of application `app_key` (see the module doc)."""
    if channel.startswith(SERVER_TO_USER):
        return topics.user_topic(app_key, channel[len(SERVER_TO_USER) :])
    if not channel or ":" in channel or channel.startswith("#"):
        return INVALID_PREFIX + channel
    return topics.channel_topic(app_key, channel)


def channel_of(topic: str) -> str | None:
    """The Pusher channel name of `topic` (None: a topic with no channel, such as the users')."""
    if topic.startswith(INVALID_PREFIX):
        return topic[len(INVALID_PREFIX) :]
    parsed = topics.parse(topic)
    if parsed is None or parsed.kind == "broadcast" or parsed.name == USERS_CHANNEL:
        return None
    if parsed.kind == "user":
        return SERVER_TO_USER + parsed.name
    return parsed.name


def frame(event: str, channel: str | None = None, data: Any = None, **extra: Any) -> Frame:
    """One server frame; `data` goes as a JSON string (a string as it is), None: no `data`."""
    body: dict[str, Any] = {"event": event}
    if channel is not None:
        body["channel"] = channel
    if data is not None:
        body["data"] = data if isinstance(data, str) else orjson.dumps(data).decode()
    body.update(extra)
    return Frame(orjson.dumps(body))


def error_frame(code: int | None, message: str, channel: str | None = None) -> Frame:
    """`pusher:error {"code", "message"}` (data as an object, as Pusher sends it)."""
    body: dict[str, Any] = {"event": ERROR, "data": {"code": code, "message": message}}
    if channel is not None:
        body["channel"] = channel
    return Frame(orjson.dumps(body))


def close_mapping(code: int, reason: str) -> tuple[int, str, Frame | None]:
    """The core's close -> Pusher's code, with its `pusher:error` frame (`Wire.closing`)."""
    pusher_code = _CORE_TO_PUSHER.get(code, code)
    return pusher_code, reason, error_frame(pusher_code, reason)


class PusherSerializer:
    """Pusher frames for one connection of application `app_key` (see the module docstring)."""

    vsn = VSN
    cache_key: Hashable = CACHE_KEY
    supports_binary = False

    def __init__(self, app_key: str) -> None:
        self.app_key = app_key

    # -- client frames ----------------------------------------------------------------------

    def decode_text(self, data: str | bytes) -> Message:
        try:
            decoded = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise FrameError("invalid_json", "a Pusher frame is a JSON object") from None
        if not isinstance(decoded, dict) or not isinstance(decoded.get("event"), str):
            raise FrameError("bad_shape", "a Pusher frame is a JSON object with an event")
        event: str = decoded["event"]
        payload = decoded.get("data")
        if isinstance(payload, str) and event.startswith("pusher:"):
            try:  # some clients send the data of their pusher: events encoded, too
                payload = orjson.loads(payload)
            except orjson.JSONDecodeError:
                return _answer_error("data is not JSON")
        if event in ("pusher:ping", "pusher:pong"):
            ref = REF_PING if event == "pusher:ping" else REF_PONG
            return Message(None, ref, m.PHOENIX_TOPIC, m.HEARTBEAT, {})
        if event.startswith("client-"):
            channel = decoded.get("channel")
            if not isinstance(channel, str):
                return _answer_error("client events name their channel")
            return Message(None, REF_CLIENT, topic_for(self.app_key, channel), event, payload)
        if event == "pusher:signin":
            if not isinstance(payload, dict):
                return _answer_error("pusher:signin needs data {auth, user_data}")
            return Message(None, REF_SIGNIN, users_topic(self.app_key), m.PHX_JOIN, payload)
        if event in ("pusher:subscribe", "pusher:unsubscribe"):
            channel = payload.get("channel") if isinstance(payload, dict) else None
            if not isinstance(channel, str):
                return _answer_error(f"{event} needs data {{channel}}")
            topic = topic_for(self.app_key, channel)
            if event == "pusher:subscribe":
                return Message(None, REF_SUBSCRIBE, topic, m.PHX_JOIN, payload)
            return Message(None, REF_UNSUBSCRIBE, topic, m.PHX_LEAVE, {})
        return _answer_error(f"unknown event {event[:64]!r}")

    def decode_binary(self, data: bytes | bytearray | memoryview) -> Message:
        raise FrameError("binary_unsupported", "the Pusher protocol has text frames only")

    # -- server frames ----------------------------------------------------------------------

    def encode_reply(self, reply: Reply) -> Frame | None:
        ref, response, ok = reply.ref, reply.response, reply.status == "ok"
        if ref == REF_PING:
            return frame(PONG, data={})
        if ref == REF_SUBSCRIBE:
            channel = channel_of(reply.topic)
            if ok:
                return frame(SUBSCRIPTION_SUCCEEDED, channel, response or {})
            return frame(SUBSCRIPTION_ERROR, channel, _subscription_error(response))
        if ref == REF_SIGNIN:
            if ok:
                return frame(SIGNIN_SUCCESS, data=response)
            return error_frame(CLOSE_UNAUTHORIZED, _reason(response))
        if ref == REF_CLIENT and not ok:
            code = response.get("code") if isinstance(response, dict) else None
            reason = _reason(response)
            if reason == m.REASON_UNMATCHED_TOPIC:
                reason = "client events need a subscription to the channel"
            return error_frame(code, reason, channel_of(reply.topic))
        if isinstance(ref, str) and ref.startswith(REF_ERROR):
            return error_frame(None, ref[len(REF_ERROR) :])
        return None  # a pong's, an unsubscribe's, a relayed client event's: nothing

    def encode_push(self, message: Message) -> Frame | None:
        event = message.event
        if event == m.PHX_CLOSE or event == m.PRESENCE_STATE:
            return None
        channel = channel_of(message.topic)
        if event == ERROR:
            payload = message.payload if isinstance(message.payload, dict) else {}
            return error_frame(payload.get("code"), str(payload.get("message", "")), channel)
        if event == m.PHX_ERROR:
            error = {"type": "ServerError", "error": "the subscription failed", "status": 500}
            return frame(SUBSCRIPTION_ERROR, channel, error)
        return frame(event, channel, message.payload)

    def encode_broadcast(self, broadcast: Broadcast) -> Frame | None:
        event = broadcast.event
        if event.startswith(("phx_", "presence_")):
            return None  # the Phoenix protocol's own (presence diffs go through `members`)
        extra: dict[str, Any] = {}
        data: Any = broadcast.payload
        if isinstance(broadcast, AppBroadcast):
            if broadcast.data is not None:
                data = broadcast.data
            if broadcast.user_id is not None:
                extra["user_id"] = broadcast.user_id
        if data is None:
            data = {}
        return frame(event, channel_of(broadcast.topic), data, **extra)

    def fastlane(self, broadcast: Broadcast) -> Frame | None:
        cached = broadcast.cached_frame(CACHE_KEY)
        if cached is None:
            cached = broadcast.cache_frame(CACHE_KEY, self.encode_broadcast(broadcast) or False)
        return cached or None

    def encode(self, item: Message | Reply | Broadcast) -> Frame | None:
        if isinstance(item, Reply):
            return self.encode_reply(item)
        if isinstance(item, Broadcast):
            return self.fastlane(item)
        return self.encode_push(item)


def _answer_error(message: str) -> Message:
    """A frame the core will answer as not joined: `encode_reply` makes it `pusher:error`."""
    return Message(None, REF_ERROR + message, NO_CHANNEL_TOPIC, ERROR, {})


def _reason(response: Any) -> str:
    if isinstance(response, dict):
        for key in ("error", "reason", "message"):
            if isinstance(response.get(key), str):
                return str(response[key])
    return "refused"


def _subscription_error(response: Any) -> dict[str, Any]:
    """Pusher's `{type, error, status}`; the core's own refusals (an unrouted name, too many
    channels, a crash, the rate limit) get a type and status of their own."""
    if isinstance(response, dict) and "type" in response:
        return response
    reason = _reason(response)
    if reason in (m.REASON_UNMATCHED_TOPIC, UNAUTHORIZED):  # a name no route serves
        return {"type": "InvalidChannel", "error": "not a channel name", "status": 400}
    if reason in (m.REASON_TOO_MANY_CHANNELS, "rate_limited"):
        return {"type": "LimitReached", "error": reason, "status": 429}
    return {"type": "ServerError", "error": reason, "status": 500}
