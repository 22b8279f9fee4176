"""ConversationActor: one per active conversation, the gate every new message passes.

It keeps the conversation's member set (loaded by the first message, not at start: every start
waits in the registry's queue, so a start that queried the database made every other start and
registration wait a round trip too; refreshed when members change or the cache is older than
`actors.membership_cache_seconds`) and the client ids of its messages still being written, refuses
non-members, answers resends with the original message, and forwards new messages to the
MessageWriter. It is started on demand
through the registry under the conversation supervisor (transient) and stops itself after
`actors.conversation_idle_seconds` without a message.

Why the acknowledgement does not pass back through this actor: the sender's `WriteBatch` is created
by the caller and answered by the writer. So an acknowledged message is always committed, and a
message whose batch reached the writer is always answered, even if this actor is killed in between
(it is then restarted by its supervisor with an empty cache, and the database's unique client id
catches any resend). Publishing happens in the batch's `on_commit`, in commit order, so subscribers
see seq order.

Resends: one arriving while the original is still being written waits on the original's batch; one
arriving later goes to the writer like any message, and the writer's statement finds the stored
original by the unique (conversation, sender, client_id) and answers with it, unpublished. So only
messages in flight are remembered here: keeping every recent batch (up to
`actors.client_id_cache_size` per conversation) held thousands of objects that the garbage
collector promoted and then scanned in long full collections under load (docs/architecture.md,
"Measurements behind the runtime").

Sequence numbers come from the writer's single statement (conversation's last_seq + position), not
from this actor's memory, so no restart, crash or failed batch can leave a gap or a duplicate.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial

import trio

from parley.actors.actor import Actor
from parley.actors.chat_events import conversation_topic, publish_new_messages, user_topic
from parley.actors.realtime.pubsub import PubSub
from parley.actors.writer import MessageWriter, WriteBatch
from parley.config import ActorSettings
from parley.store import database_unavailable
from parley.store.conversations import ConversationStore


@dataclass(frozen=True)
class Send:
    """Forward `batch` (one new message of `sender_id`) unless refused or a resend."""

    sender_id: uuid.UUID
    client_id: str | None
    batch: WriteBatch


@dataclass(frozen=True)
class Accepted:
    """The batch is with the writer: wait on it for the stored row."""


@dataclass(frozen=True)
class Resend:
    """The same (sender, client_id) is already stored or on its way: wait on `original` instead."""

    original: WriteBatch


@dataclass(frozen=True)
class Refused:
    """The sender is not a member."""


@dataclass(frozen=True)
class Unavailable:
    """The member set could not be read (the database cannot answer now): nothing was sent.

    An answer rather than a crash: a database outage is no fault of this conversation, and
    crashing on every message of it would exhaust the supervisor's restart intensity within
    seconds (drill D2) and take every other conversation down with it.
    """

    reason: str


SendOutcome = Accepted | Resend | Refused | Unavailable


@dataclass(frozen=True)
class MembersChanged:
    """Members were added or removed: reload the member set before the next message."""


@dataclass(frozen=True)
class IsMember:
    user_id: uuid.UUID


ConversationCall = Send | IsMember
ConversationReply = SendOutcome | bool
"""`IsMember` answers a bool, or `Unavailable` when the members could not be read."""


class ConversationActor(Actor[ConversationCall, ConversationReply, MembersChanged]):
    kind = "conversation"

    def __init__(
        self,
        conversation_id: uuid.UUID,
        *,
        store: ConversationStore,
        writer: MessageWriter,
        pubsub: PubSub,
        settings: ActorSettings,
    ) -> None:
        self.conversation_id = conversation_id
        self._store = store
        self._writer = writer
        self._pubsub = pubsub
        self._settings = settings
        self._topic = conversation_topic(conversation_id)
        self._members: frozenset[uuid.UUID] = frozenset()
        self._member_topics: tuple[str, ...] = ()
        self._members_loaded_at = -float("inf")
        # (sender, client_id) -> the batch carrying it while it is written, oldest first.
        self._in_flight: OrderedDict[tuple[uuid.UUID, str], WriteBatch] = OrderedDict()

    async def handle_call(self, message: ConversationCall) -> ConversationReply:
        unavailable = await self._fresh_members()
        if unavailable is not None:
            return unavailable
        if isinstance(message, Send):
            return await self._send(message)
        return message.user_id in self._members

    async def handle_cast(self, message: MembersChanged) -> None:
        self._members_loaded_at = -float("inf")

    async def _send(self, send: Send) -> SendOutcome:
        if send.sender_id not in self._members:
            return Refused()
        if send.client_id is not None:
            self._forget_written()
            key = (send.sender_id, send.client_id)
            original = self._in_flight.get(key)
            if original is not None:
                return Resend(original)
            self._in_flight[key] = send.batch
            while len(self._in_flight) > self._settings.client_id_cache_size:
                self._in_flight.popitem(last=False)
        send.batch.on_commit = partial(
            publish_new_messages, self._pubsub, self._topic, self._member_topics
        )
        await self._writer.submit(send.batch)
        return Accepted()

    def _forget_written(self) -> None:
        """Drop the oldest entries whose batch is done (the writer answers batches in order)."""
        in_flight = self._in_flight
        while in_flight and next(iter(in_flight.values())).finished:
            in_flight.popitem(last=False)

    async def _fresh_members(self) -> Unavailable | None:
        """Reload the members if the cache is stale; `Unavailable` if the database cannot say."""
        if trio.current_time() - self._members_loaded_at > self._settings.membership_cache_seconds:
            try:
                await self._load_members()
            except Exception as exc:
                if not database_unavailable(exc):
                    raise
                return Unavailable(f"the conversation's members could not be read: {exc!r}")
        return None

    async def _load_members(self) -> None:
        members = await self._store.members(self.conversation_id)
        self._members = frozenset(member.user_id for member in members)
        self._member_topics = tuple(user_topic(member) for member in self._members)
        self._members_loaded_at = trio.current_time()

    def describe(self) -> dict[str, object]:
        return {
            "conversation_id": str(self.conversation_id),
            "members": len(self._members),
            "client_ids_in_flight": len(self._in_flight),
        }
