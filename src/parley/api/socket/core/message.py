"""The Phoenix Channels message model: what travels over a socket, independent of its encoding.

Three frozen records mirror Phoenix's `Phoenix.Socket.{Message, Reply, Broadcast}`
(PHOENIX_PROTOCOL.md §1, §2.7):

* `Message` is any frame with the five logical fields `join_ref, ref, topic, event, payload`:
  every client-to-server frame, and server pushes (`phx_close`, `phx_error`, `presence_state`,
  application pushes).
* `Reply` is a `phx_reply` answering one client message (join ack, event reply, heartbeat ack).
* `Broadcast` is one event for every subscriber of a topic. It is pubsub's own record
  (`parley.actors.realtime.pubsub.Broadcast`, re-exported here): it carries no refs and is
  encoded at most once per serializer ("fastlane", §6.2): the object memoizes its encoded
  frames, so pubsub, which knows no frame formats, hands the same object to every subscriber and
  each socket asks its serializer's `fastlane(broadcast)`, which returns the cached `Frame`
  after the first call.

`Frame` is the output of a serializer: the bytes of one WebSocket data frame plus whether it is a
text or a binary frame. The constructors at the end of the module build the catalogue frames of
§2.7 (F2-F6, F8, F12-F16) so session code never spells reserved event names or reasons by hand.

Refs are opaque: phoenix.js sends decimal strings, other clients integers or null (§1, §11), and
a server echoes them with the same JSON type, so `Ref` admits every JSON scalar.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from parley.actors.realtime.pubsub import Broadcast as Broadcast

Ref: TypeAlias = str | int | float | bool | None
"""An opaque `ref` / `join_ref`: whatever JSON scalar the client chose, echoed unchanged."""

Payload: TypeAlias = Any
"""A frame payload: a decoded JSON value, or `bytes` for a V2 binary frame (§2.6).

Outbound pushes and broadcasts must be a JSON object (`Mapping`) or `bytes`; serializers refuse
anything else. Inbound payloads are whatever the client sent; handlers validate them.
"""

# Reserved event names (§1).
PHX_JOIN: Final = "phx_join"
PHX_LEAVE: Final = "phx_leave"
PHX_REPLY: Final = "phx_reply"
PHX_CLOSE: Final = "phx_close"
PHX_ERROR: Final = "phx_error"
HEARTBEAT: Final = "heartbeat"
PHOENIX_TOPIC: Final = "phoenix"
PRESENCE_STATE: Final = "presence_state"
PRESENCE_DIFF: Final = "presence_diff"

# Error reasons the socket layer itself produces (§2.7 F4-F6, F14).
REASON_UNMATCHED_TOPIC: Final = "unmatched topic"
REASON_JOIN_CRASHED: Final = "join crashed"
REASON_TOO_MANY_CHANNELS: Final = "too many channels joined"
REASON_CHANNEL_CRASH: Final = "channel_crash"


@dataclass(frozen=True, slots=True)
class Message:
    """One frame with the five logical fields of the protocol, in V2 array order.

    Inbound, `join_ref` is the join the client believes it is talking to (null for heartbeats and
    for V1 clients that omit it) and `ref` the id the reply must echo. Outbound, `ref` is null for
    server pushes, except `phx_close` / `phx_error`, which use the join_ref as both (§13.3).
    """

    join_ref: Ref
    ref: Ref
    topic: str
    event: str
    payload: Payload

    @property
    def is_binary(self) -> bool:
        """True when the payload is raw bytes (a V2 binary frame, §2.6)."""
        return isinstance(self.payload, bytes)

    @property
    def is_heartbeat(self) -> bool:
        """True for the socket-level keep-alive (`phoenix` / `heartbeat`, §5)."""
        return self.topic == PHOENIX_TOPIC and self.event == HEARTBEAT


@dataclass(frozen=True, slots=True)
class Reply:
    """A `phx_reply` to the client message whose `ref` (and `join_ref`) it echoes.

    Encoded as payload `{"status": status, "response": response}`; when `response` is `bytes`
    a V2 serializer emits a kind-1 binary frame instead (§2.6). `status` is any string; phoenix.js
    dispatches `receive(status, ...)` hooks by exact match.
    """

    join_ref: Ref
    ref: Ref
    topic: str
    status: str
    response: Payload

    @property
    def is_binary(self) -> bool:
        """True when the response is raw bytes (sent as a kind-1 frame by V2)."""
        return isinstance(self.response, bytes)

    @property
    def payload(self) -> dict[str, Any]:
        """The JSON payload of the reply frame (only meaningful for non-binary responses)."""
        return {"status": self.status, "response": self.response}


@dataclass(frozen=True, slots=True)
class Frame:
    """One encoded WebSocket data frame: its bytes and whether it is text or binary.

    Text frames hold UTF-8 JSON; transports that need a `str` (ASGI, long polling) call `text()`.
    `len(frame)` is the byte size, which outbound queues use for their byte bound.
    """

    data: bytes
    binary: bool = False

    def text(self) -> str:
        """The frame as a `str`; only valid for text frames."""
        if self.binary:
            raise ValueError("a binary frame has no text form")
        return self.data.decode()

    def __len__(self) -> int:
        return len(self.data)


# -- catalogue constructors (§2.7) -------------------------------------------------------------


def reply_ok(message: Message, response: Payload = None) -> Reply:
    """F2/F8/F12: an ok reply to `message`; `response` defaults to `{}` (§4.3 bare status)."""
    return Reply(message.join_ref, message.ref, message.topic, "ok", _or_empty(response))


def reply_error(message: Message, response: Payload = None) -> Reply:
    """F3: an error reply to `message`; `response` defaults to `{}`."""
    return Reply(message.join_ref, message.ref, message.topic, "error", _or_empty(response))


def reply_unmatched_topic(message: Message) -> Reply:
    """F4 / §4.3: the topic has no handler or is not joined. `join_ref` is null (§13.5)."""
    return Reply(None, message.ref, message.topic, "error", {"reason": REASON_UNMATCHED_TOPIC})


def reply_join_crashed(message: Message) -> Reply:
    """F5: the join handler raised; carries the join's join_ref."""
    return reply_error(message, {"reason": REASON_JOIN_CRASHED})


def reply_too_many_channels(message: Message) -> Reply:
    """F6: the per-connection channel limit is reached (§3.7)."""
    return reply_error(message, {"reason": REASON_TOO_MANY_CHANNELS})


def heartbeat_reply(ref: Ref) -> Reply:
    """F16: the socket-level ack of a heartbeat with `ref` (join_ref null, §5)."""
    return Reply(None, ref, PHOENIX_TOPIC, "ok", {})


def push(join_ref: Ref, topic: str, event: str, payload: Payload) -> Message:
    """F9/F17: a server push to one client: the channel's join_ref and `ref` null."""
    return Message(join_ref, None, topic, event, payload)


def close_message(topic: str, join_ref: Ref) -> Message:
    """F13: the channel instance `join_ref` ended normally; ref = join_ref (§13.3)."""
    return Message(join_ref, join_ref, topic, PHX_CLOSE, {})


def error_message(topic: str, join_ref: Ref) -> Message:
    """F14: the channel instance `join_ref` crashed; ref = join_ref, reason `channel_crash`."""
    return Message(join_ref, join_ref, topic, PHX_ERROR, {"reason": REASON_CHANNEL_CRASH})


def effective_join_ref(message: Message) -> Ref:
    """The join_ref a `phx_join` registers: its `join_ref`, or its `ref` when absent (V1, §4.2)."""
    return message.ref if message.join_ref is None else message.join_ref


def _or_empty(response: Payload) -> Payload:
    return {} if response is None else response
