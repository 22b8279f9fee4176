"""`user:{id}`: one user's own topic (DESIGN §5)."""

from __future__ import annotations

from typing import Any

from parley.actors.chat_events import USER_MESSAGE
from parley.api.socket.core.channel import UNAUTHORIZED, Channel, HandlerReply, ok, refused
from parley.api.socket.core.message import Broadcast, Message


class UserChannel(Channel):
    """That user only. Gets `message` for every conversation they are in (skipped while this
    socket has joined that conversation's topic: it gets `new_msg` there), `conversation_added` /
    `conversation_removed`, `listing_reply` and direct app events."""

    intercept = frozenset({USER_MESSAGE})

    async def join(self, payload: Any) -> HandlerReply:
        if not self.signed_in or self.topic != f"user:{self.user_id}":
            return refused(UNAUTHORIZED)
        return ok()

    def handle_out(self, broadcast: Broadcast) -> Broadcast | Message | None:
        payload = broadcast.payload
        if isinstance(payload, dict):
            conversation = payload.get("conversation_id")
            if self.socket.has_joined(f"conversation:{conversation}"):
                return None
        return self.push_message(broadcast.event, payload)
