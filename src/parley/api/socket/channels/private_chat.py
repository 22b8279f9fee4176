"""`private_chat:{id}` (Daveslist): one user's private messages, stored in 1:1 conversations."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

from parley.actors.chat import ChatUnavailable, NotAMember, Written
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
    Answer,
    Awaiting,
    Channel,
    ChannelSocket,
    HandlerReply,
    HandlerResult,
    invalid,
    ok,
    refused,
)
from parley.api.socket.core.message import Message
from parley.isotime import iso
from parley.store.conversations import UnknownUsers

SEND = "send"


class PrivateChatChannel(Channel):
    """That user only. `send` {to, message, client_id?} stores the message in the pair's 1:1
    conversation and broadcasts `send` {message, to, from, id, inserted_at} on
    `private_chat:{to}` and on the sender's own `private_chat:{id}` (their other devices; not the
    sending socket); the sender gets ok {id, seq, conversation_id}."""

    def __init__(self, socket: ChannelSocket, topic: str, ports: ChannelPorts) -> None:
        super().__init__(socket, topic)
        self._ports = ports
        self._direct = DirectConversations(ports.chat, socket.principal.user_id)

    async def join(self, payload: Any) -> HandlerReply:
        if not self.signed_in or self.topic != f"private_chat:{self.user_id}":
            return refused(UNAUTHORIZED)
        return ok()

    def _sending(self, payload: Any) -> tuple[uuid.UUID, str, str | None] | HandlerReply:
        """`send`'s recipient, body and client id, or the error reply for a bad payload."""
        to = parse_uuid(payload.get("to") if isinstance(payload, dict) else None)
        if to is None or to == self.user_id:
            return invalid({"to": ["must be another user's id"]})
        fields = new_message(payload, "message", self._ports.messages)
        if isinstance(fields, HandlerReply):
            return fields
        return to, fields.body, fields.client_id

    def handle_push(self, event: str, payload: Any, message: Message, answer: Answer) -> None:
        if event != SEND:
            answer(refused(UNKNOWN_EVENT))
            return
        sending = self._sending(payload)
        if isinstance(sending, HandlerReply):
            answer(sending)
            return
        to, body, client_id = sending
        conversation_id = self._direct.known(to)
        if conversation_id is None:
            # The first message to `to` looks the conversation up: in the instance's task.
            answer(Awaiting(partial(self._send_first, to, body, client_id)))
            return

        def sent(written: Written | NotAMember | ChatUnavailable) -> None:
            if isinstance(written, Written):
                answer(self._delivered(to, conversation_id, written))
            else:
                answer(chat_refusal(written))

        self._ports.chat.submit(conversation_id, self.user_id, body, client_id, sent)

    async def _send_first(self, to: uuid.UUID, body: str, client_id: str | None) -> HandlerResult:
        try:
            conversation_id = await self._direct.with_user(to)
            written = await self._ports.chat.send(conversation_id, self.user_id, body, client_id)
        except (UnknownUsers, NotAMember, ChatUnavailable) as exc:
            return chat_refusal(exc)
        return self._delivered(to, conversation_id, written)

    def _delivered(
        self, to: uuid.UUID, conversation_id: uuid.UUID, written: Written
    ) -> HandlerReply:
        """Broadcast a stored message (not a resend: it went out already) on the recipient's
        topic and on the sender's own, for their other devices (not this socket, which gets the
        reply), and make the sender's reply."""
        stored = written.message
        if not written.duplicate:
            sent = {
                "message": stored.body,
                "to": str(to),
                "from": str(self.user_id),
                "id": stored.id,
                "inserted_at": iso(stored.inserted_at),
            }
            self._ports.pubsub.publish(f"private_chat:{to}", SEND, sent)
            self.socket.broadcast_from(SEND, sent)
        return ok({"id": stored.id, "seq": stored.seq, "conversation_id": str(conversation_id)})
