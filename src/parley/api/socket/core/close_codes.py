"""WebSocket close codes Parley sends (RFC 6455 §7.4.1 and the IANA registry), in one place.

When each is used, and why these and not others, is in docs/realtime.md ("Close codes"). The server
never closes with 1000 when it expects the client back: phoenix.js <= 1.8.15 does not reconnect
after it.
"""

from __future__ import annotations

from typing import Final

CLOSE_NORMAL: Final = 1000
CLOSE_GOING_AWAY: Final = 1001
"""Idle timeout and forced disconnects (token revoked, user banned): the client reconnects and
re-authenticates (Phoenix >= 1.8.8 closes a `disconnect`ed socket with 1001, §3.6)."""
CLOSE_PROTOCOL_ERROR: Final = 1002
"""A WebSocket protocol violation (the fast path's frame codec)."""
CLOSE_UNSUPPORTED_DATA: Final = 1003
"""A binary frame on a V1 (text-only) connection."""
CLOSE_INVALID_DATA: Final = 1007
"""Undecodable or malformed frames."""
CLOSE_MESSAGE_TOO_BIG: Final = 1009
"""A data frame larger than `socket.max_frame_bytes`."""
CLOSE_INTERNAL_ERROR: Final = 1011
"""The session crashed (a bug): the client reconnects."""
CLOSE_SERVICE_RESTART: Final = 1012
"""Operator-initiated close and server shutdown: every phoenix.js version reconnects (§9.2)."""
CLOSE_TRY_AGAIN_LATER: Final = 1013
"""Slow consumer: the outbound queue crossed its bound; reconnect later (and recover with
`last_seq`)."""
