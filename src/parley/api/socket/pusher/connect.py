"""The upgrade decision of a Pusher socket at `/app/{app_key}` (PUSHER_PROTOCOL.md §1-3).

Pusher refuses with close codes, not HTTP statuses: the upgrade is accepted, a `pusher:error`
frame says why, and the close carries the code (`transport.Dismissed`), in this order:

| check | code |
| --- | --- |
| a path that is not `/app/{key}` | 4005 |
| no `protocol` query parameter | 4008 |
| `protocol` other than 7 | 4007 |
| no application with that key | 4001 |
| the application is archived | 4003 |
| its `max_connections` sockets are open on this node (Phoenix end users included) | 4004 |

An accepted socket gets `pusher:connection_established` first, with its `socket_id` (two random
decimal numbers, `^\\d+\\.\\d+$`, unguessable: the SDKs sign with it) and
`pusher.activity_timeout_seconds`; it is closed with 4201 after that plus
`pusher.pong_wait_seconds` of silence. Its principal is confined to the application's topics
(`app:{key}...`) and counts toward its quota like a Phoenix end user's.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import trio

from parley.api.socket.core.principal import SocketPrincipal
from parley.api.socket.core.ratelimit import TokenBucket
from parley.api.socket.core.transport import Accepted, ConnectRequest, Dismissed, Refused, Wire
from parley.api.socket.pusher import frames
from parley.api.socket.pusher.frames import PROTOCOL_VERSION, PusherSerializer, error_frame
from parley.integrations import topics

if TYPE_CHECKING:
    from parley.api.socket.core.router import Router
    from parley.api.socket.pusher.rules import SignedInUser
    from parley.config import PusherSettings
    from parley.integrations.directory import ApplicationDirectory

PUSHER_PATH_PREFIX: Final = "/app/"
SOCKET_ID_MAX: Final = 10**10


def new_socket_id() -> str:
    """`{a}.{b}`: two random numbers below 10^10 (about 66 bits), as the SDKs expect."""
    return f"{secrets.randbelow(SOCKET_ID_MAX)}.{secrets.randbelow(SOCKET_ID_MAX)}"


@dataclass(eq=False, slots=True)
class PusherConnection:
    """One Pusher socket's own state (its principal's `grant`): which application, its socket
    id, the user it signed in as, and its client-event rate. Mutated only by its session."""

    app_id: int
    app_key: str
    socket_id: str
    user: SignedInUser | None = None
    """Set by a successful `pusher:signin` (§8); never changes to another user after."""
    _bucket: TokenBucket | None = field(default=None, repr=False)

    def client_event_allowed(self, per_second: float) -> bool:
        """One client event against the connection's rate (a bucket made at its first one)."""
        bucket = self._bucket
        if bucket is None:
            bucket = self._bucket = TokenBucket(
                per_second, max(1.0, per_second), clock=trio.current_time
            )
        return bucket.try_acquire()


class PusherConnect:
    """The upgrade decision of a Pusher socket (an `Authorize` for the transports)."""

    def __init__(
        self,
        directory: ApplicationDirectory,
        settings: PusherSettings,
        router: Router,
        sockets_in: Callable[[str], int],
    ) -> None:
        self._directory = directory
        self._settings = settings
        self._router = router
        self._sockets_in = sockets_in
        """Sockets open in a namespace (`SocketHub.namespace_count`), for the quota."""

    async def __call__(self, request: ConnectRequest) -> Accepted | Refused | Dismissed:
        key = request.path[len(PUSHER_PATH_PREFIX) :]
        if not request.path.startswith(PUSHER_PATH_PREFIX) or not key or "/" in key:
            return _dismiss(frames.CLOSE_PATH_NOT_FOUND, "path not found", "path")
        protocol = request.query.get("protocol")
        if protocol is None:
            return _dismiss(frames.CLOSE_NO_PROTOCOL, "no protocol version given", "protocol")
        if protocol != str(PROTOCOL_VERSION):
            return _dismiss(
                frames.CLOSE_UNSUPPORTED_PROTOCOL,
                f"unsupported protocol version; this server speaks {PROTOCOL_VERSION}",
                "protocol",
            )
        app = await self._directory.get(key)
        if app is None:
            return _dismiss(frames.CLOSE_NO_APP, f"no application with key {key[:40]}", "app")
        if app.archived_at is not None:
            return _dismiss(frames.CLOSE_APP_DISABLED, "the application is disabled", "archived")
        namespace = topics.namespace(app.app_key)
        if app.max_connections is not None and self._sockets_in(namespace) >= app.max_connections:
            # Checked with no await before the session opens (and counts), so never overshot.
            return _dismiss(frames.CLOSE_OVER_QUOTA, "over the connection quota", "app_quota")
        connection = PusherConnection(app.id, app.app_key, new_socket_id())
        principal = SocketPrincipal(
            uuid.uuid4(),
            "end_user",
            connection.socket_id,
            "pusher",
            namespace=namespace,
            grant=connection,
        )
        settings = self._settings
        established = frames.frame(
            frames.CONNECTION_ESTABLISHED,
            data={
                "socket_id": connection.socket_id,
                "activity_timeout": settings.activity_timeout_seconds,
            },
        )
        wire = Wire(
            protocol="pusher",
            router=self._router,
            greeting=(established,),
            idle_timeout=settings.activity_timeout_seconds + settings.pong_wait_seconds,
            idle_close=frames.CLOSE_NO_PONG,
            closing=frames.close_mapping,
        )
        return Accepted(principal, PusherSerializer(app.app_key), None, wire)


def _dismiss(code: int, message: str, reason: str) -> Dismissed:
    return Dismissed((error_frame(code, message),), code, reason)
