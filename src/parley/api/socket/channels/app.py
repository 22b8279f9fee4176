"""`app:{key}`, `app:{key}:{channel}`, `app:{key}:user:{id}`: an application's end users
(DESIGN §4.2, §5).

Only sockets opened with a token the application signed may join, and only the topics
`parley.integrations.end_users.join_refusal` allows: the application's broadcast topic, the
channels the token's `channels` claim lets in, and the end user's own topic. Subscribers get the
events triggered through the REST API (one publish per trigger, encoded once per serializer by
the fastlane); `app:{key}:presence-*` topics carry Phoenix presence keyed by the end user's id
(`sub`), with the token's `user_info` in the meta. Clients push nothing here.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from parley.api.socket.channels.ports import ChannelPorts
from parley.api.socket.core import message as m
from parley.api.socket.core.channel import (
    UNAUTHORIZED,
    Channel,
    ChannelSocket,
    HandlerReply,
    ok,
    refused,
)
from parley.integrations import topics
from parley.integrations.end_users import EndUser, join_refusal

log = logging.getLogger(__name__)


class AppChannel(Channel):
    """One topic of one application, for that application's end users."""

    def __init__(self, socket: ChannelSocket, topic: str, ports: ChannelPorts) -> None:
        super().__init__(socket, topic)
        self._apps = ports.apps
        parsed = topics.parse(topic)
        self.presence = (
            parsed is not None and parsed.kind == "channel" and topics.is_presence(parsed.name)
        )

    @property
    def end_user(self) -> EndUser | None:
        grant = self.principal.grant
        return grant if isinstance(grant, EndUser) else None

    async def join(self, payload: Any) -> HandlerReply:
        end_user = self.end_user
        if end_user is None:
            return refused(UNAUTHORIZED)
        why = join_refusal(end_user, self.topic, self._apps.max_channel_chars)
        if why is not None:
            log.debug("end user %s refused %s: %s", end_user.subject, self.topic, why)
            return refused(UNAUTHORIZED)
        try:
            live = await self._apps.still_accepts(end_user)
        except Exception as exc:
            log.warning("application look-up for %s failed: %r", self.topic, exc)
            return refused("unavailable")
        return ok() if live else refused(UNAUTHORIZED)

    async def after_join(self) -> None:
        end_user = self.end_user
        if self.presence and end_user is not None:
            meta: dict[str, Any] = {"online_at": int(time.time())}
            if end_user.user_info is not None:
                meta["user_info"] = end_user.user_info
            self.socket.track(end_user.subject, meta)
            self.socket.push(m.PRESENCE_STATE, self.socket.presence_state())
