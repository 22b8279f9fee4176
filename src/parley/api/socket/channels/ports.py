"""What the application's channels reach beyond their socket: typed ports, handed to them by the
route table (`parley.api.socket.channels.routes`) at the composition root.

`ChatPort` is the part of `parley.actors.chat.Chat` channels use; a test can hand channels any
object with these methods. Nothing here is looked up at run time.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from parley.actors.chat import ChatUnavailable, NotAMember
    from parley.actors.realtime.pubsub import PubSub
    from parley.config import MessageSettings
    from parley.integrations.end_users import EndUser
    from parley.store.conversations import Conversation
    from parley.store.listing_records import Listing
    from parley.store.messages import Message, Written


class ChatPort(Protocol):
    """Conversations as channels use them (the facade `parley.actors.chat.Chat`)."""

    async def send(
        self, conversation_id: uuid.UUID, sender_id: uuid.UUID, body: str, client_id: str | None
    ) -> Written: ...

    def submit(
        self,
        conversation_id: uuid.UUID,
        sender_id: uuid.UUID,
        body: str,
        client_id: str | None,
        answer: Callable[[Written | NotAMember | ChatUnavailable], None],
    ) -> None: ...

    async def open_direct(self, user_id: uuid.UUID, other_id: uuid.UUID) -> Conversation: ...

    async def is_member(self, conversation_id: uuid.UUID, user_id: uuid.UUID) -> bool: ...

    async def may_join(self, conversation_id: uuid.UUID, user_id: uuid.UUID) -> bool: ...

    async def history_after(
        self, conversation_id: uuid.UUID, after_seq: int, limit: int
    ) -> list[Message]: ...

    async def mark_read(
        self, conversation_id: uuid.UUID, user_id: uuid.UUID, seq: int
    ) -> int | None: ...

    async def publish_read(
        self, conversation_id: uuid.UUID, user_id: uuid.UUID, seq: int
    ) -> None: ...


class ListingPort(Protocol):
    """Listings as the `listing:` channel reads them (`parley.store.listings.ListingStore`)."""

    async def get(self, listing_id: uuid.UUID) -> Listing | None: ...


class AppPort(Protocol):
    """Applications as the `app:` channel checks its end users against them
    (`parley.integrations.end_users.EndUsers`: the in-memory directory, no query per join)."""

    @property
    def max_channel_chars(self) -> int: ...

    async def still_accepts(self, end_user: EndUser) -> bool:
        """Whether the application is live and still accepts the secret that signed the token."""
        ...


@dataclass(frozen=True, slots=True)
class ChannelPorts:
    """Everything the application's channels are given."""

    chat: ChatPort
    listings: ListingPort
    pubsub: PubSub
    messages: MessageSettings
    """Message limits (body length, recovery window)."""
    debug: bool
    """Outside prod: the `debug:*` test channel and `debug_crash` are routed."""
    apps: AppPort
