"""Phoenix serializers: V1 (`vsn=1.0.0`, JSON objects) and V2 (`vsn=2.0.0`, JSON arrays + binary).

PHOENIX_PROTOCOL.md §2.3-§2.7. A serializer turns client frames into `Message`s and `Message` /
`Reply` / `Broadcast` records into `Frame`s; it does no I/O and keeps no per-connection state, so
the two instances below are shared by every connection (and serve as fastlane cache keys).

Decoding is strict about the envelope and permissive about the payload, like Phoenix:

* V1 text: a JSON object with keys `topic`, `event`, `payload`, `ref` (all required) and an optional
  `join_ref`; other keys are ignored.
* V2 text: a JSON array of at least five elements `[join_ref, ref, topic, event, payload]`; extra
  trailing elements are ignored (Phoenix does the same).
* V2 binary: kind 0 (push) with the 5-byte header of §2.6. Empty `join_ref` / `ref` fields decode
  to `None`, so a binary push without a join ref is routed like a JSON one with `null`.
* `topic` and `event` must be strings; `join_ref` and `ref` must be JSON scalars (echoed verbatim,
  §1); the payload may be any JSON value.

Anything else raises `FrameError` and nothing else: Phoenix crashes the connection on such frames
(§2.4, §2.5), so the session closes the socket with `FrameError.close_code`. Our codes are the
RFC 6455 ones that describe the fault (1007 malformed data, 1003 binary sent to a V1 socket);
every phoenix.js version reconnects after them (§9.2), like after Phoenix's 1011.

Encoding produces exactly the catalogue frames of §2.7. V1 server frames never carry `join_ref`
(§13.2). Push and broadcast payloads must be a JSON object (`dict`) or `bytes` (§2.7 "Payload
typing"); `bytes` become V2 binary frames (kind 0 push with its 4-byte header, kind 1 reply,
kind 2 broadcast) and cannot be sent over V1. Unencodable values raise `EncodeError`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar, Final

import orjson

from parley.api.socket.core.close_codes import CLOSE_UNSUPPORTED_DATA
from parley.api.socket.core.message import PHX_REPLY, Broadcast, Frame, Message, Ref, Reply
from parley.api.socket.core.serializer import EncodeError, FrameError

if TYPE_CHECKING:
    from collections.abc import Hashable

V1_VSN: Final = "1.0.0"
V2_VSN: Final = "2.0.0"

MAX_META_BYTES: Final = 255
"""Each metadata field of a V2 binary frame has a one-byte length (§2.6)."""

_KIND_PUSH: Final = 0
_KIND_REPLY: Final = 1
_KIND_BROADCAST: Final = 2
_PUSH_HEADER: Final = 5  # kind + four lengths (C→S push)


class UnsupportedVsnError(ValueError):
    """The `vsn` query parameter names no supported protocol; refuse the upgrade with HTTP 403."""

    http_status: Final = 403

    def __init__(self, vsn: object) -> None:
        super().__init__(f"unsupported protocol version vsn={vsn!r}; supported: 1.0.x, 2.0.x")
        self.vsn = vsn


class _JsonSerializer:
    """Shared machinery: JSON parsing, field validation, fastlane memoization."""

    vsn: ClassVar[str]
    supports_binary: ClassVar[bool]

    @property
    def cache_key(self) -> Hashable:
        return self.vsn

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def fastlane(self, broadcast: Broadcast) -> Frame:
        frame: Frame | None = broadcast.cached_frame(self.cache_key)
        if frame is None:
            frame = broadcast.cache_frame(self.cache_key, self.encode_broadcast(broadcast))
        return frame

    def encode_broadcast(self, broadcast: Broadcast) -> Frame:
        raise NotImplementedError

    def encode(self, item: Message | Reply | Broadcast) -> Frame:
        """Encode any outbound record; broadcasts go through `fastlane`."""
        if isinstance(item, Reply):
            return self.encode_reply(item)
        if isinstance(item, Broadcast):
            return self.fastlane(item)
        return self.encode_push(item)

    def encode_push(self, message: Message) -> Frame:
        raise NotImplementedError

    def encode_reply(self, reply: Reply) -> Frame:
        raise NotImplementedError


class V1JsonSerializer(_JsonSerializer):
    """`vsn=1.0.0`: one JSON object per text frame; no binary frames; no `join_ref` outbound."""

    vsn: ClassVar[str] = V1_VSN
    supports_binary: ClassVar[bool] = False

    def decode_text(self, data: str | bytes) -> Message:
        value = _loads(data)
        if not isinstance(value, dict):
            raise FrameError(
                "bad_shape", "a V1 frame must be a JSON object {topic, event, payload, ref}"
            )
        for key in ("topic", "event", "payload", "ref"):
            if key not in value:
                raise FrameError("missing_key", f"a V1 frame needs the key {key!r}")
        return Message(
            join_ref=_ref(value.get("join_ref"), "join_ref"),
            ref=_ref(value["ref"], "ref"),
            topic=_name(value["topic"], "topic"),
            event=_name(value["event"], "event"),
            payload=value["payload"],
        )

    def decode_binary(self, data: bytes | bytearray | memoryview) -> Message:
        raise FrameError(
            "binary_unsupported",
            "binary frames need vsn=2.0.0",
            close_code=CLOSE_UNSUPPORTED_DATA,
        )

    def encode_push(self, message: Message) -> Frame:
        _check_payload(message.payload, "push")
        return self._object(message.topic, message.event, message.payload, message.ref)

    def encode_reply(self, reply: Reply) -> Frame:
        if reply.is_binary:
            raise EncodeError("V1 cannot carry a binary reply")
        return self._object(reply.topic, PHX_REPLY, reply.payload, reply.ref)

    def encode_broadcast(self, broadcast: Broadcast) -> Frame:
        _check_payload(broadcast.payload, "broadcast")
        return self._object(broadcast.topic, broadcast.event, broadcast.payload, None)

    @staticmethod
    def _object(topic: str, event: str, payload: Any, ref: Ref) -> Frame:
        if isinstance(payload, bytes):
            raise EncodeError("V1 cannot carry a binary payload")
        return Frame(_dumps({"topic": topic, "event": event, "payload": payload, "ref": ref}))


class V2JsonSerializer(_JsonSerializer):
    """`vsn=2.0.0`: JSON arrays `[join_ref, ref, topic, event, payload]` plus binary frames."""

    vsn: ClassVar[str] = V2_VSN
    supports_binary: ClassVar[bool] = True

    def decode_text(self, data: str | bytes) -> Message:
        value = _loads(data)
        if not isinstance(value, list):
            raise FrameError(
                "bad_shape",
                "a V2 text frame must be a JSON array [join_ref, ref, topic, event, payload]",
            )
        if len(value) < 5:
            raise FrameError("wrong_arity", f"a V2 frame needs 5 elements, got {len(value)}")
        join_ref, ref, topic, event, payload = value[:5]
        return Message(
            join_ref=_ref(join_ref, "join_ref"),
            ref=_ref(ref, "ref"),
            topic=_name(topic, "topic"),
            event=_name(event, "event"),
            payload=payload,
        )

    def decode_binary(self, data: bytes | bytearray | memoryview) -> Message:
        try:
            view = memoryview(data).cast("B")
        except TypeError:
            raise FrameError("bad_binary", "a binary frame must be bytes") from None
        if len(view) == 0:
            raise FrameError("bad_binary", "empty binary frame")
        kind = view[0]
        if kind != _KIND_PUSH:
            raise FrameError("bad_binary", f"clients may only send pushes (kind 0), got {kind}")
        if len(view) < _PUSH_HEADER:
            raise FrameError("bad_binary", "truncated binary push header")
        sizes = view[1:_PUSH_HEADER]
        fields: list[str] = []
        offset = _PUSH_HEADER
        for name, size in zip(("join_ref", "ref", "topic", "event"), sizes, strict=True):
            end = offset + size
            if end > len(view):
                raise FrameError("bad_binary", f"binary push shorter than its {name} field")
            try:
                fields.append(str(view[offset:end], "utf-8"))
            except UnicodeDecodeError:
                raise FrameError("bad_binary", f"{name} is not valid UTF-8") from None
            offset = end
        join_ref, ref, topic, event = fields
        return Message(join_ref or None, ref or None, topic, event, bytes(view[offset:]))

    def encode_push(self, message: Message) -> Frame:
        _check_payload(message.payload, "push")
        if isinstance(message.payload, bytes):
            # S→C push: kind 0 with a 4-byte header and no ref (§2.6, §13.12).
            metas = (_meta(message.join_ref), _meta(message.topic), _meta(message.event))
            return _binary(_KIND_PUSH, metas, message.payload)
        return self._array(
            message.join_ref, message.ref, message.topic, message.event, message.payload
        )

    def encode_reply(self, reply: Reply) -> Frame:
        if isinstance(reply.response, bytes):
            metas = (
                _meta(reply.join_ref),
                _meta(reply.ref),
                _meta(reply.topic),
                _meta(reply.status),
            )
            return _binary(_KIND_REPLY, metas, reply.response)
        return self._array(reply.join_ref, reply.ref, reply.topic, PHX_REPLY, reply.payload)

    def encode_broadcast(self, broadcast: Broadcast) -> Frame:
        _check_payload(broadcast.payload, "broadcast")
        if isinstance(broadcast.payload, bytes):
            metas = (_meta(broadcast.topic), _meta(broadcast.event))
            return _binary(_KIND_BROADCAST, metas, broadcast.payload)
        return self._array(None, None, broadcast.topic, broadcast.event, broadcast.payload)

    @staticmethod
    def _array(join_ref: Ref, ref: Ref, topic: str, event: str, payload: Any) -> Frame:
        return Frame(_dumps([join_ref, ref, topic, event, payload]))


V1: Final = V1JsonSerializer()
"""The shared V1 serializer instance."""
V2: Final = V2JsonSerializer()
"""The shared V2 serializer instance."""

# Elixir `Version.parse/1` grammar: no leading zeros, optional pre-release and build.
_SEMVER = re.compile(
    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)


def serializer_for_vsn(vsn: str | None) -> V1JsonSerializer | V2JsonSerializer:
    """The serializer for the `vsn` query parameter, as Phoenix negotiates it (§2.3).

    Absent → V1. A version matching `~> 1.0.0` (1.0.x, pre-releases of 1.0.1+ included) → V1;
    `~> 2.0.0` → V2. Anything else, valid semver or not, raises `UnsupportedVsnError`, which the
    transport turns into HTTP 403 before the upgrade.
    """
    if vsn is None:
        return V1
    if not isinstance(vsn, str):
        raise UnsupportedVsnError(vsn)
    match = _SEMVER.fullmatch(vsn)
    if match is None:
        raise UnsupportedVsnError(vsn)
    major, minor, patch, pre = match.groups()
    if minor != "0" or (patch == "0" and pre is not None):
        raise UnsupportedVsnError(vsn)
    if major == "1":
        return V1
    if major == "2":
        return V2
    raise UnsupportedVsnError(vsn)


# -- helpers -----------------------------------------------------------------------------------


def _loads(data: str | bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise FrameError("invalid_json", f"not valid JSON ({error.msg})") from None
    except TypeError:
        raise FrameError("invalid_json", "a text frame must be str or bytes") from None


def _ref(value: object, name: str) -> Ref:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise FrameError("bad_field", f"{name} must be a string, number, boolean or null")


def _name(value: object, name: str) -> str:
    if isinstance(value, str):
        return value
    raise FrameError("bad_field", f"{name} must be a string")


def _check_payload(payload: object, what: str) -> None:
    if not isinstance(payload, dict | bytes):
        kind = type(payload).__name__
        raise EncodeError(f"a {what} payload must be a JSON object or bytes, not {kind}")


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as error:
        raise EncodeError(f"payload is not JSON-encodable: {error}") from None


def _meta(value: Ref) -> bytes:
    if value is None:
        encoded = b""
    elif isinstance(value, str):
        try:
            encoded = value.encode()
        except UnicodeEncodeError:
            raise EncodeError("binary frame field is not encodable as UTF-8") from None
    else:
        encoded = orjson.dumps(value)
    if len(encoded) > MAX_META_BYTES:
        raise EncodeError(f"binary frame field longer than {MAX_META_BYTES} bytes")
    return encoded


def _binary(kind: int, metas: tuple[bytes, ...], payload: bytes) -> Frame:
    header = bytes([kind, *(len(meta) for meta in metas)])
    return Frame(b"".join((header, *metas, payload)), binary=True)
