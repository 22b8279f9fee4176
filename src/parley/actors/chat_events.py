"""What chat publishes, and where: topic names and the JSON payloads of message events."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from parley.actors.realtime.pubsub import PubSub
from parley.isotime import iso
from parley.store.messages import Message, MessageStore, Written

NEW_MSG = "new_msg"
USER_MESSAGE = "message"
MEMBER_ADDED = "member_added"
"""On `conversation:{id}`: {conversation_id, user_id} of someone invited."""
MEMBER_REMOVED = "member_removed"
"""On `conversation:{id}`: {conversation_id, user_id} of someone removed or leaving; the removed
user's own channels on that topic stop with `phx_close` when it reaches them."""
CONVERSATION_ADDED = "conversation_added"
"""On `user:{id}`: {conversation} (with its members), when the user is made a member."""
CONVERSATION_REMOVED = "conversation_removed"
"""On `user:{id}`: {conversation_id}, when the user is no longer a member."""


def conversation_topic(conversation_id: uuid.UUID) -> str:
    return f"conversation:{conversation_id}"


def user_topic(user_id: uuid.UUID) -> str:
    return f"user:{user_id}"


def message_payload(message: Message) -> dict[str, Any]:
    """A message as every client sees it, over REST and on sockets: ids as strings (the
    message's own id is a 64-bit integer), times ISO 8601 UTC."""
    return {
        "id": message.id,
        "seq": message.seq,
        "conversation_id": str(message.conversation_id),
        "sender_id": str(message.sender_id) if message.sender_id else None,
        "body": message.body,
        "client_id": message.client_id,
        "inserted_at": iso(message.inserted_at),
        "edited_at": iso(message.edited_at),
        "deleted_at": iso(message.deleted_at),
    }


def publish_new_messages(
    pubsub: PubSub,
    topic: str,
    member_topics: Iterable[str],
    written: list[Written],
) -> None:
    """After a commit: `new_msg` on the conversation's `topic` and `message` on each member's
    topic (`member_topics`: their `user_topic`s, made once per member set, not per message).

    Resends are not published again: their original already was.
    """
    for row in written:
        if row.duplicate:
            continue
        message = row.message
        payload = message_payload(message)
        stream = str(message.conversation_id)
        pubsub.publish_ordered(topic, NEW_MSG, payload, stream, message.seq)
        for member_topic in member_topics:
            pubsub.publish_ordered(member_topic, USER_MESSAGE, payload, stream, message.seq)


async def stored_payloads(
    messages: MessageStore, stream: str, after_seq: int, limit: int
) -> list[tuple[int, dict[str, Any]]]:
    """The cluster's gap filler (`parley.actors.realtime.sequencer.GapFiller`): the messages
    of conversation `stream` after `after_seq`, as `publish_new_messages` published them."""
    stored = await messages.after(uuid.UUID(stream), after_seq=after_seq, limit=limit)
    return [(message.seq, message_payload(message)) for message in stored]
