"""What the channel core needs of a wire format: the `Serializer` contract and its two errors.

The session decodes every inbound frame and encodes every outbound record through the serializer
its transport chose at connect time (`parley.api.socket.phoenix` has Phoenix's V1 and V2 JSON
serializers, `parley.api.socket.pusher.frames` the Pusher protocol's). The core itself knows no
frame format. An encoder may answer None for a record its protocol has no frame for (Pusher's
clients get nothing for the reply to an unsubscribe, or for a `phx_close`): nothing is sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from parley.api.socket.core.close_codes import CLOSE_INVALID_DATA

if TYPE_CHECKING:
    from collections.abc import Hashable

    from parley.api.socket.core.message import Broadcast, Frame, Message, Reply


class FrameError(ValueError):
    """A client frame that cannot be decoded; the session closes the socket with `close_code`.

    `reason` is a short machine-readable code (`invalid_json`, `bad_shape`, `wrong_arity`,
    `missing_key`, `bad_field`, `bad_binary`, `binary_unsupported`) for logs and metrics; the
    message says what was wrong without echoing the frame.
    """

    def __init__(self, reason: str, detail: str, *, close_code: int = CLOSE_INVALID_DATA) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.close_code = close_code


class EncodeError(ValueError):
    """An outbound record that this serializer cannot encode (a server-side bug, or a binary
    payload for a V1 connection); nothing is sent for it."""


class Serializer(Protocol):
    """What the socket layer needs from a protocol version."""

    @property
    def vsn(self) -> str:
        """The canonical version string (`"1.0.0"` or `"2.0.0"`)."""
        ...

    @property
    def cache_key(self) -> Hashable:
        """Key under which `fastlane` memoizes frames on a `Broadcast`."""
        ...

    @property
    def supports_binary(self) -> bool:
        """Whether binary payloads can be sent and received (V2 over WebSocket only)."""
        ...

    def decode_text(self, data: str | bytes) -> Message:
        """Decode a text frame (UTF-8 bytes or str); raises `FrameError` only."""
        ...

    def decode_binary(self, data: bytes | bytearray | memoryview) -> Message:
        """Decode a binary frame; raises `FrameError` only."""
        ...

    def encode_push(self, message: Message) -> Frame | None:
        """Encode a server push (F9, F13, F14, F17); raises `EncodeError`."""
        ...

    def encode_reply(self, reply: Reply) -> Frame | None:
        """Encode a `phx_reply` (F2-F6, F8, F12, F16); raises `EncodeError`."""
        ...

    def encode_broadcast(self, broadcast: Broadcast) -> Frame | None:
        """Encode a broadcast (F10, F18) without caching; raises `EncodeError`."""
        ...

    def fastlane(self, broadcast: Broadcast) -> Frame | None:
        """`encode_broadcast`, memoized on the broadcast: at most one encode per serializer."""
        ...

    def encode(self, item: Message | Reply | Broadcast) -> Frame | None:
        """Encode any outbound record; broadcasts go through `fastlane`."""
        ...
