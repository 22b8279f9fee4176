"""`pusher:signin` and the watchlist (PUSHER_PROTOCOL.md §8), on the application's users topic
`app:{key}:#users`.

Sign-in is a join of that topic: the signature over `{socket_id}::user::{user_data}` (the exact
string received), `user_data`'s rules (a non-empty string `id` of at most
`integrations.max_subject_chars`, optional `user_info`, optional `watchlist`), and one user per
socket (signing in again as the same user is allowed, as another is not). Success:
`pusher:signin_success`; the connection is signed in (`PusherConnection.user`), may subscribe to
`#server-to-user-{id}`, and can be closed by the application (`AppSockets.close_end_user`).
Failure: `pusher:error` 4009; the socket stays as it was.

Every signed-in socket is tracked on the users topic, keyed by user id, so "online" means signed
in on at least one connection on any node of a cluster (presence is cluster-wide). A socket whose
user watches others gets `pusher_internal:watchlist_events`: the watched users online at sign-in,
then each one coming online or going offline (per user, as presence members). At most
`pusher.max_watchlist` ids are watched; a longer list keeps its first ones and gets `pusher:error`
4302 after the success.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from parley.actors.realtime.presence import PRESENCE_DIFF
from parley.api.socket.core.channel import Channel, HandlerReply, error, ok
from parley.api.socket.pusher import frames, members
from parley.api.socket.pusher.connect import PusherConnection
from parley.api.socket.pusher.rules import RuleError, signature_valid, signed_in_user, signin_string
from parley.integrations.applications import accepted_secrets

if TYPE_CHECKING:
    from parley.actors.realtime.pubsub import Broadcast
    from parley.api.socket.core.channel import ChannelSocket
    from parley.api.socket.core.message import Message
    from parley.api.socket.pusher.sockets import PusherPorts


class SigninChannel(Channel):
    """The sign-in of one Pusher socket, and its watchlist."""

    intercept = frozenset({PRESENCE_DIFF})
    presence = True
    """Shows the watched users online at sign-in, then follows; unset in `join` when the
    socket watches nobody."""

    def __init__(self, socket: ChannelSocket, topic: str, ports: PusherPorts) -> None:
        super().__init__(socket, topic)
        self._ports = ports
        self._watching: frozenset[str] = frozenset()
        self._too_many = False

    async def join(self, payload: Any) -> HandlerReply:
        connection = self.principal.grant
        if not isinstance(connection, PusherConnection):
            return error({"error": "not a Pusher socket"})
        fields = payload if isinstance(payload, dict) else {}
        user_data = fields.get("user_data")
        app = await self._ports.directory.get(connection.app_key)
        if app is None or app.archived_at is not None:
            return error({"error": "the application is disabled"})
        if not isinstance(user_data, str) or not signature_valid(
            fields.get("auth"),
            app.app_key,
            accepted_secrets(app, datetime.now(UTC)),
            signin_string(connection.socket_id, user_data),
        ):
            return error({"error": "invalid signature"})
        try:
            user = signed_in_user(user_data, max_id_chars=self._ports.limits.max_subject_chars)
        except RuleError as exc:
            return error({"error": str(exc)})
        if connection.user is not None and connection.user.user_id != user.user_id:
            return error({"error": "this socket is signed in as another user"})
        connection.user = user
        limit = self._ports.settings.max_watchlist
        self._too_many = len(user.watchlist) > limit
        self._watching = frozenset(user.watchlist[:limit])
        self.presence = bool(self._watching)
        return ok({"user_data": user_data})

    async def after_join(self) -> None:
        connection = self.principal.grant
        if not isinstance(connection, PusherConnection) or connection.user is None:
            return
        self.socket.track(connection.user.user_id, {"online_at": int(time.time())})
        if self._too_many:
            limit = self._ports.settings.max_watchlist
            self.socket.push(
                frames.ERROR,
                {
                    "code": frames.CODE_WATCHLIST_TOO_BIG,
                    "message": f"a watchlist has at most {limit} user ids",
                },
            )
        if self._watching:
            online = [key for key in self.socket.presence_state() if key in self._watching]
            if online:
                self.socket.push(frames.WATCHLIST_EVENTS, _events(online, []))

    def handle_out(self, broadcast: Broadcast) -> Message | None:
        if not self._watching:
            return None
        presence, topic = self._ports.presence, self.topic
        found = members.changes(broadcast, lambda key: presence.announced(topic, key))
        online = [key for key, _ in found.added if key in self._watching]
        offline = [key for key in found.removed if key in self._watching]
        if not online and not offline:
            return None
        return self.push_message(frames.WATCHLIST_EVENTS, _events(online, offline))


def _events(online: list[str], offline: list[str]) -> dict[str, Any]:
    events = []
    if online:
        events.append({"name": "online", "user_ids": online})
    if offline:
        events.append({"name": "offline", "user_ids": offline})
    return {"events": events}
