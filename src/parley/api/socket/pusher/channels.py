"""One Pusher subscription: a channel of an application (PUSHER_PROTOCOL.md §4-§7).

`join` is `pusher:subscribe`: the name's rules, the kind's (a private, encrypted or presence
channel needs a valid signature over `{socket_id}:{channel}[:{channel_data}]`, checked against
the exact `channel_data` received; `#server-to-user-{id}` needs a sign-in as `{id}`), then for
presence channels the member (id, `user_info` size) and the member limit. A refusal is a
`pusher:subscription_error` and the socket stays as it was.

After the reply: a presence channel tracks the member (key: their user id) on the topic, so a
Phoenix end user and a Pusher socket on `app:K:presence-x` see one presence; the other Pusher
sockets get `member_added` once per user (`members`). A cache channel sends its last triggered
event, or `pusher:cache_miss` (and tells the hooks).

Client events (`client-*`, §7): only if the application enables them, only on private and
presence channels, at most `pusher.client_events_per_second` per connection (else
`pusher:error` 4301), at most `integrations.max_data_bytes` of data; relayed to every other
subscriber of the topic (not echoed), with the sender's `user_id` on presence channels.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from parley.actors.realtime.presence import PRESENCE_DIFF
from parley.api.socket.core.channel import NO_REPLY, Answer, Channel, HandlerReply, error, ok
from parley.api.socket.pusher import frames, members
from parley.api.socket.pusher.connect import PusherConnection
from parley.api.socket.pusher.rules import (
    Kind,
    Member,
    RuleError,
    channel_kind,
    channel_string,
    name_problem,
    presence_member,
    signature_valid,
)
from parley.integrations.applications import accepted_secrets
from parley.integrations.topics import SERVER_TO_USER
from parley.integrations.triggers import AppBroadcast

if TYPE_CHECKING:
    from parley.actors.realtime.pubsub import Broadcast
    from parley.api.socket.core.channel import ChannelSocket
    from parley.api.socket.core.message import Message
    from parley.api.socket.pusher.sockets import PusherPorts
    from parley.store.applications import Application

log = logging.getLogger(__name__)


def refusal(kind: str, message: str, status: int) -> HandlerReply:
    """A `pusher:subscription_error` `{type, error, status}`."""
    return error({"type": kind, "error": message, "status": status})


class PusherChannel(Channel):
    """One channel subscription of one Pusher socket."""

    def __init__(self, socket: ChannelSocket, topic: str, ports: PusherPorts) -> None:
        super().__init__(socket, topic)
        self._ports = ports
        self.name = frames.channel_of(topic) or ""
        self.kind = channel_kind(self.name)
        self.member: Member | None = None
        self._registered = False
        if self.kind.kind is Kind.PRESENCE:
            self.intercept = frozenset({PRESENCE_DIFF})

    @property
    def connection(self) -> PusherConnection | None:
        grant = self.principal.grant
        return grant if isinstance(grant, PusherConnection) else None

    # -- subscribe ----------------------------------------------------------------------

    async def join(self, payload: Any) -> HandlerReply:
        connection = self.connection
        if connection is None:
            return refusal("AuthError", "not a Pusher socket", 401)
        ports = self._ports
        problem = name_problem(self.name, ports.limits.max_channel_name_chars)
        if problem is not None:
            return refusal("InvalidChannel", problem, 400)
        app = await ports.directory.get(connection.app_key)
        if app is None or app.archived_at is not None:
            return refusal("AuthError", "the application is disabled", 403)
        fields = payload if isinstance(payload, dict) else {}
        kind = self.kind.kind
        if kind is Kind.USER:
            user = connection.user
            if user is None or SERVER_TO_USER + user.user_id != self.name:
                return refusal("AuthError", "sign in as this user first", 401)
        response: dict[str, Any] | None = None
        if self.kind.needs_auth:
            channel_data = fields.get("channel_data") if kind is Kind.PRESENCE else None
            if kind is Kind.PRESENCE and not isinstance(channel_data, str):
                return refusal("AuthError", "presence channels need channel_data", 401)
            text = channel_string(connection.socket_id, self.name, channel_data)
            secrets = accepted_secrets(app, datetime.now(UTC))
            if not signature_valid(fields.get("auth"), app.app_key, secrets, text):
                return refusal("AuthError", "invalid signature", 401)
            if kind is Kind.PRESENCE:
                try:
                    self.member = presence_member(
                        channel_data,
                        max_id_chars=ports.limits.max_subject_chars,
                        max_info_bytes=ports.limits.max_user_info_bytes,
                    )
                except RuleError as exc:
                    return refusal("InvalidChannelData", str(exc), 400)
                state = ports.presence.list(self.topic)
                if (
                    self.member.user_id not in state
                    and len(state) >= ports.settings.max_presence_members
                ):
                    return refusal("LimitReached", "the presence channel is full", 403)
                state.setdefault(self.member.user_id, {"metas": [self._meta()]})
                response = members.presence_data(state)
        ports.sockets.add(connection.socket_id, self.topic, self.socket)
        self._registered = True
        return ok(response)

    async def after_join(self) -> None:
        connection = self.connection
        if self.member is not None:
            self.socket.track(self.member.user_id, self._meta())
        if self.kind.cache and connection is not None:
            last = self._ports.cache.last(self.topic)
            if last is None:
                self.socket.push(frames.CACHE_MISS, None)
                self._ports.hooks.cache_miss(connection.app_key, self.name)
            else:
                self.socket.push(last.event, last.payload if last.data is None else last.data)

    def _meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"online_at": int(time.time())}
        if self.member is not None and self.member.user_info is not None:
            meta["user_info"] = self.member.user_info
        return meta

    def handle_out(self, broadcast: Broadcast) -> tuple[Broadcast, ...] | None:
        """A presence diff as per-user member events, without those about this socket's own
        member (Pusher tells no one of themselves)."""
        presence = self._ports.presence
        topic = self.topic
        events = members.member_events(broadcast, lambda key: len(presence.get(topic, key)))
        own = self.member.user_id if self.member is not None else None
        return tuple(e for e in events if e.payload.get("user_id") != own) or None

    def terminate(self, reason: str) -> None:
        connection = self.connection
        if self._registered and connection is not None:
            self._ports.sockets.remove(connection.socket_id, self.topic, self.socket)

    # -- client events ------------------------------------------------------------------

    def handle_push(self, event: str, payload: Any, message: Message, answer: Answer) -> None:
        connection = self.connection
        app = self._ports.directory.cached(connection.app_key) if connection else None
        if connection is None or app is None:
            super().handle_push(event, payload, message, answer)  # the application: awaited
            return
        answer(self._client_event(connection, app, event, payload))

    async def handle_in(self, event: str, payload: Any, message: Message) -> HandlerReply:
        connection = self.connection
        app = await self._ports.directory.get(connection.app_key) if connection else None
        if connection is None or app is None:
            return _client_refusal(None, "the application is disabled")
        result = self._client_event(connection, app, event, payload)
        return result if isinstance(result, HandlerReply) else ok()

    def _client_event(
        self, connection: PusherConnection, app: Application, event: str, data: Any
    ) -> HandlerReply | Any:
        ports = self._ports
        if not event.startswith("client-"):
            return _client_refusal(None, "unknown event")
        if not app.client_events or app.archived_at is not None:
            return _client_refusal(None, "client events are not enabled for this application")
        if not self.kind.takes_client_events:
            return _client_refusal(None, "client events go on private and presence channels")
        if not connection.client_event_allowed(ports.settings.client_events_per_second):
            return _client_refusal(frames.CODE_CLIENT_EVENT_REJECTED, "client event rate")
        if len(orjson.dumps(data)) > ports.limits.max_data_bytes:
            return _client_refusal(None, f"data is over {ports.limits.max_data_bytes} bytes")
        user_id = self.member.user_id if self.member is not None else None
        relayed = AppBroadcast(
            self.topic,
            event,
            data if isinstance(data, dict) else {"data": data},
            data=data,
            socket_id=connection.socket_id,
            user_id=user_id,
        )
        ports.pubsub.broadcast(relayed, exclude=self.socket)
        ports.hooks.client_event(
            connection.app_key, self.name, event, data, connection.socket_id, user_id
        )
        return NO_REPLY


def _client_refusal(code: int | None, message: str) -> HandlerReply:
    """A `pusher:error {code, message}` for the sender; nothing is relayed."""
    return error({"code": code, "message": message})
