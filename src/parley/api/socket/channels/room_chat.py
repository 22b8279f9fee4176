"""`room:chat` (CompanyApi): one room for everyone signed in, messages addressed to one user."""

from __future__ import annotations

import uuid
from typing import Any

from parley.actors.chat import ChatUnavailable, NotAMember
from parley.api.socket.channels.common import (
    DirectConversations,
    chat_refusal,
    new_message,
    parse_uuid,
)
from parley.api.socket.channels.ports import ChannelPorts
from parley.api.socket.core.channel import (
    UNAUTHORIZED,
    UNKNOWN_EVENT,
    Channel,
    ChannelSocket,
    HandlerReply,
    HandlerResult,
    invalid,
    ok,
    refused,
)
from parley.api.socket.core.message import Broadcast, Message
from parley.isotime import iso
from parley.store.conversations import UnknownUsers

SEND_MSG = "send_msg"
RECEIVE_MSG = "receive_msg"


class RoomChatChannel(Channel):
    """Any signed-in user. `send_msg` {user, conv, message, client_id?} stores the message (in
    `conv`, or the pair's 1:1 conversation when `conv` is null) and the recipient's `room:chat`
    sockets, and the sender's other ones, get `receive_msg` {message: {id, content, sender_id,
    conversation_id, date}}.

    Delivery to one user goes through an internal per-user topic that only this channel
    subscribes to, so a message costs nothing for the other people in the room.
    """

    def __init__(self, socket: ChannelSocket, topic: str, ports: ChannelPorts) -> None:
        super().__init__(socket, topic)
        self._ports = ports
        self._direct = DirectConversations(ports.chat, socket.principal.user_id)

    async def join(self, payload: Any) -> HandlerReply:
        if not self.signed_in:
            return refused(UNAUTHORIZED)
        self.socket.subscribe(self._inbox(self.user_id))
        return ok()

    @staticmethod
    def _inbox(user_id: uuid.UUID) -> str:
        return f"room:chat:user:{user_id}"

    async def handle_in(self, event: str, payload: Any, message: Message) -> HandlerResult:
        if event != SEND_MSG:
            return refused(UNKNOWN_EVENT)
        data = payload if isinstance(payload, dict) else {}
        recipient = parse_uuid(data.get("user"))
        if recipient is None:
            return invalid({"user": ["must be a user id"]})
        fields = new_message(payload, "message", self._ports.messages)
        if isinstance(fields, HandlerReply):
            return fields
        chat = self._ports.chat
        try:
            if data.get("conv") is None:
                if recipient == self.user_id:
                    return invalid({"user": ["must not be yourself"]})
                conversation_id = await self._direct.with_user(recipient)
            else:
                parsed = parse_uuid(data.get("conv"))
                if parsed is None:
                    return invalid({"conv": ["must be a conversation id or null"]})
                conversation_id = parsed
                if not await chat.is_member(conversation_id, recipient):
                    return refused(UNAUTHORIZED)
            written = await chat.send(conversation_id, self.user_id, fields.body, fields.client_id)
        except (UnknownUsers, NotAMember, ChatUnavailable) as exc:
            return chat_refusal(exc)
        stored = written.message
        out = {
            "id": stored.id,
            "content": stored.body,
            "sender_id": str(self.user_id),
            "conversation_id": str(conversation_id),
            "date": iso(stored.inserted_at),
        }
        if not written.duplicate:
            received = {"message": out}
            pubsub = self._ports.pubsub
            pubsub.publish(self._inbox(recipient), RECEIVE_MSG, received)
            # The sender's other devices show it too; this socket has the reply.
            pubsub.publish_from(self.socket, self._inbox(self.user_id), RECEIVE_MSG, received)
        return ok(out)

    def handle_out(self, broadcast: Broadcast) -> Broadcast | Message | None:
        # Only the internal per-user topic reaches here; re-address it to room:chat.
        return self.push_message(broadcast.event, broadcast.payload)
