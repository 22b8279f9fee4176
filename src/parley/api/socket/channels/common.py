"""Pieces several chat channels share: id parsing, the one message rule, chat refusals, and the
per-join cache of a user's 1:1 conversations."""

from __future__ import annotations

import uuid
from typing import Any

from parley.actors.chat import ChatUnavailable, NotAMember
from parley.actors.message_rules import NewMessageFields, validate_new_message
from parley.api.socket.channels.ports import ChatPort
from parley.api.socket.core.channel import UNAUTHORIZED, HandlerReply, invalid, refused
from parley.config import MessageSettings
from parley.store.conversations import UnknownUsers


def parse_uuid(value: object) -> uuid.UUID | None:
    """A canonical UUID string as a UUID, anything else None."""
    if not isinstance(value, str) or len(value) != 36:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def new_message(
    payload: Any, body_key: str, limits: MessageSettings
) -> NewMessageFields | HandlerReply:
    """The body (under `body_key`) and client id of a push that writes a message, checked by
    the rule REST uses too (`parley.actors.message_rules`), or the reply that refuses them."""
    data = payload if isinstance(payload, dict) else {}
    checked = validate_new_message(
        data.get(body_key),
        data.get("client_id"),
        max_chars=limits.body_max_chars,
        body_field=body_key,
    )
    return invalid(checked) if isinstance(checked, dict) else checked


def chat_refusal(error: UnknownUsers | NotAMember | ChatUnavailable) -> HandlerReply:
    """The error reply for a chat send that was not stored (nothing was written)."""
    if isinstance(error, UnknownUsers):
        return refused("unknown user")
    if isinstance(error, NotAMember):
        return refused(UNAUTHORIZED)
    return refused("unavailable")


class DirectConversations:
    """The 1:1 conversation of one user with each user they wrote to on this join: a pair's
    direct conversation never changes once it exists, so it is looked up (or created) once."""

    __slots__ = ("_chat", "_known", "_user_id")

    def __init__(self, chat: ChatPort, user_id: uuid.UUID) -> None:
        self._chat = chat
        self._user_id = user_id
        self._known: dict[uuid.UUID, uuid.UUID] = {}

    def known(self, other: uuid.UUID) -> uuid.UUID | None:
        """The conversation with `other` if it was looked up already (no await)."""
        return self._known.get(other)

    async def with_user(self, other: uuid.UUID) -> uuid.UUID:
        """The conversation with `other`, created on first use (raises `UnknownUsers`)."""
        conversation_id = self._known.get(other)
        if conversation_id is None:
            conversation = await self._chat.open_direct(self._user_id, other)
            conversation_id = self._known[other] = conversation.id
        return conversation_id
