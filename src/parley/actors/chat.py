"""Chat: the facade REST handlers and socket channels use to reach conversations.

Sending goes to the conversation's actor (started on demand through the registry), which checks
membership, de-duplicates client ids, has the writer commit the message, and only then acknowledges
the sender and publishes it. Everything else here is a thin, typed entry point so that callers
never touch actors or the store directly for chat.

Topics and events published (DESIGN §5):
- `conversation:{id}` `new_msg` {id, seq, conversation_id, sender_id, body, client_id, inserted_at}
- `user:{member}` `message` with the same payload, for every member (sockets already joined to the
  conversation's topic skip it, so nobody gets a message twice)
- `conversation:{id}` `message_edited` / `message_deleted` (the message as stored), `read`
  {user_id, seq}
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from parley.actors.chat_events import (
    CONVERSATION_ADDED,
    CONVERSATION_REMOVED,
    MEMBER_ADDED,
    MEMBER_REMOVED,
    conversation_topic,
    message_payload,
    user_topic,
)
from parley.actors.conversation import (
    ConversationActor,
    ConversationCall,
    ConversationReply,
    IsMember,
    MembersChanged,
    Refused,
    Resend,
    Send,
    Unavailable,
)
from parley.actors.errors import ActorUnavailable, CallTimeout
from parley.actors.mailbox import Ok, Reply
from parley.actors.realtime.pubsub import Broadcast, PubSub
from parley.actors.ref import ActorRef
from parley.actors.registry import Registry
from parley.actors.runtime import ActorChild, ActorSystem
from parley.actors.waiter import Waiter
from parley.actors.writer import MessageWriter, WriteBatch, WriteFailed
from parley.store.conversations import Conversation, ConversationStore
from parley.store.messages import Message, MessageStore, NewMessage, Written
from parley.supervision import DynamicSupervisor, Restart

ConversationRef = ActorRef[ConversationCall, ConversationReply, MembersChanged]

SendAnswer = Callable[["Written | NotAMember | ChatUnavailable"], None]
"""How `Chat.submit` answers: once, from whichever task finishes the send; it must not block."""

_SEND_ATTEMPTS = 2
"""A send reaches at most two incarnations of the conversation's actor (see `Chat.submit`)."""


class NotAMember(Exception):
    """The sender is not a member of the conversation (or it does not exist)."""


class ChatUnavailable(Exception):
    """The message could not be stored now (the writer or database is down); nothing was written."""


class Chat:
    """Entry points for conversations; one per node, built by the runtime."""

    def __init__(
        self,
        *,
        system: ActorSystem,
        registry: Registry,
        supervisor: DynamicSupervisor,
        writer: MessageWriter,
        pubsub: PubSub,
        conversations: ConversationStore,
        messages: MessageStore,
    ) -> None:
        self._system = system
        self._registry = registry
        self._supervisor = supervisor
        self._writer = writer
        self._pubsub = pubsub
        self._conversations = conversations
        self._messages = messages
        self._nursery: trio.Nursery | None = None
        pubsub.subscribe(MEMBERS_CHANGED_TOPIC, _MembersChangedElsewhere(self))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The supervised child that owns the tasks of sends which must wait (see `submit`)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None

    def submit(
        self,
        conversation_id: uuid.UUID,
        sender_id: uuid.UUID,
        body: str,
        client_id: str | None,
        answer: SendAnswer,
    ) -> None:
        """Store a message; `answer` is called exactly once, from whichever task finishes it,
        with the committed row (`duplicate` for a resent client_id), `NotAMember` (the sender is
        not in the conversation, or it does not exist) or `ChatUnavailable` (nothing was
        written). It must not block.

        Callback-first, as everything on a socket push's path is: a running conversation with
        room in its mailbox takes the message with no task, cancel scope or wake-up of its own
        (docs/realtime.md, "Pushes without a task"). Otherwise a task of this facade starts the
        actor (exactly once, through the registry) and waits for room, within the call timeout. A
        conversation actor that dies before forwarding the message gets one more attempt (its
        supervisor restarts it); once the writer has the batch, its answer is the
        acknowledgement whatever happened to the actor.
        """
        send = Send(
            sender_id,
            client_id,
            WriteBatch([NewMessage(conversation_id, sender_id, body, client_id)]),
        )
        self._offer(conversation_id, send, answer, attempts_left=_SEND_ATTEMPTS)

    async def send(
        self, conversation_id: uuid.UUID, sender_id: uuid.UUID, body: str, client_id: str | None
    ) -> Written:
        """`submit`, awaited: the committed row (`duplicate` for a resent client_id).

        Raises:
            NotAMember: the sender is not in the conversation (or it does not exist).
            ChatUnavailable: it could not be stored; nothing was written.
        """
        answered: Waiter[Written | NotAMember | ChatUnavailable] = Waiter()
        done: list[Written | NotAMember | ChatUnavailable] = []

        def answer(result: Written | NotAMember | ChatUnavailable) -> None:
            if not answered.wake(result):
                done.append(result)

        self.submit(conversation_id, sender_id, body, client_id, answer)
        result = done[0] if done else await answered.park()
        if isinstance(result, Exception):
            raise result
        return result

    def _offer(
        self, conversation_id: uuid.UUID, send: Send, answer: SendAnswer, attempts_left: int
    ) -> None:
        """Queue `send` on the running actor without waiting, or leave it to a task that can."""
        replied = partial(self._replied, conversation_id, send, answer, attempts_left - 1)
        ref = self._registry.lookup(f"conversation:{conversation_id}")
        if ref is None or not ref.call_soon(send, replied):
            assert self._nursery is not None, "Chat.run is part of the supervision tree"
            self._nursery.start_soon(self._offer_waiting, conversation_id, send, replied)

    async def _offer_waiting(
        self,
        conversation_id: uuid.UUID,
        send: Send,
        replied: Callable[[Reply[ConversationReply] | None], None],
    ) -> None:
        try:
            ref = await self.conversation(conversation_id)
            outcome = await ref.call(send)
        except (ActorUnavailable, CallTimeout):  # ActorCrashed is an ActorUnavailable
            replied(None)
        else:
            replied(Ok(outcome))

    def _replied(
        self,
        conversation_id: uuid.UUID,
        send: Send,
        answer: SendAnswer,
        attempts_left: int,
        reply: Reply[ConversationReply] | None,
    ) -> None:
        batch = send.batch
        if not isinstance(reply, Ok):
            # Crashed, timed out or went down before answering: if the writer has the batch
            # anyway, its answer stands; if not, nothing was stored and one more attempt goes.
            if batch.submitted:
                batch.when_done(lambda _: answer(_answer(batch, resent=False)))
            elif attempts_left > 0:
                self._offer(conversation_id, send, answer, attempts_left)
            else:
                answer(ChatUnavailable("the conversation is unavailable; try again"))
            return
        outcome = reply.value
        if isinstance(outcome, Refused):
            answer(NotAMember(str(conversation_id)))
            return
        if isinstance(outcome, Unavailable):
            answer(ChatUnavailable(outcome.reason))
            return
        waited_on = outcome.original if isinstance(outcome, Resend) else batch
        waited_on.when_done(lambda _: answer(_answer(waited_on, resent=waited_on is not batch)))

    async def conversation(self, conversation_id: uuid.UUID) -> ConversationRef:
        """The conversation's actor, started on demand (exactly once, through the registry)."""
        key = f"conversation:{conversation_id}"
        ref = self._registry.lookup(key)
        if ref is None:
            ref = await self._registry.ensure_started(
                key, lambda: self._actor_child(conversation_id, key), self._supervisor
            )
        return ref

    def _actor_child(
        self, conversation_id: uuid.UUID, key: str
    ) -> ActorChild[ConversationCall, ConversationReply, MembersChanged]:
        settings = self._system.settings
        return self._system.child(
            ConversationActor,
            lambda: ConversationActor(
                conversation_id,
                store=self._conversations,
                writer=self._writer,
                pubsub=self._pubsub,
                settings=settings,
            ),
            capacity=settings.conversation_mailbox,
            key=key,
            restart=Restart.TRANSIENT,
            idle_timeout=settings.conversation_idle_seconds,
        )

    async def is_member(self, conversation_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """Whether `user_id` belongs to the conversation (the actor's cached member set);
        raises `ChatUnavailable` when the database cannot say."""
        ref = await self.conversation(conversation_id)
        reply = await ref.call(IsMember(user_id))
        if isinstance(reply, Unavailable):
            raise ChatUnavailable(reply.reason)
        return reply is True

    async def may_join(self, conversation_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """Whether `user_id` is a member, from one indexed read rather than the actor: joining a
        topic must not start the conversation's actor (a reconnect storm would start every
        conversation at once through the registry); the actor starts when somebody sends."""
        return await self._conversations.is_member(conversation_id, user_id)

    async def mark_read(
        self, conversation_id: uuid.UUID, user_id: uuid.UUID, seq: int
    ) -> int | None:
        """Move the member's read marker forward to `seq`; the marker now, or None for a
        non-member (publish it with `publish_read`)."""
        return await self._conversations.mark_read(conversation_id, user_id, seq)

    async def members_added(
        self, conversation_id: uuid.UUID, user_ids: list[uuid.UUID], conversation: dict[str, Any]
    ) -> None:
        """`user_ids` were made members (already committed): the conversation's actor reloads
        its members before the next message, the conversation appears on each new member's
        `user:` topic (`conversation`: its JSON, with members), and the members already in it
        hear `member_added`."""
        await self.reload_members(conversation_id)
        self._members_changed(conversation_id)
        topic = conversation_topic(conversation_id)
        for user_id in user_ids:
            self._pubsub.publish(
                user_topic(user_id), CONVERSATION_ADDED, {"conversation": conversation}
            )
            self._pubsub.publish(
                topic,
                MEMBER_ADDED,
                {"conversation_id": str(conversation_id), "user_id": str(user_id)},
            )

    async def member_removed(self, conversation_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """`user_id` is no longer a member (already committed): when this returns, none of
        their sockets takes anything more from the conversation.

        Every channel of theirs on `conversation:{id}` stops with `phx_close` as the
        `member_removed` broadcast reaches it (it is unsubscribed inside this call, on trio's one
        thread, so no later broadcast can reach it), and the conversation's actor reloads its
        members before it handles any message sent after this, so `message` on their `user:`
        topic stops too. The others on the topic get `member_removed`, and the user's own
        `user:` topic `conversation_removed` (their other devices drop it from the list).
        """
        await self.reload_members(conversation_id)
        self._members_changed(conversation_id)
        self._pubsub.publish(
            conversation_topic(conversation_id),
            MEMBER_REMOVED,
            {"conversation_id": str(conversation_id), "user_id": str(user_id)},
        )
        self._pubsub.publish(
            user_topic(user_id), CONVERSATION_REMOVED, {"conversation_id": str(conversation_id)}
        )

    def _members_changed(self, conversation_id: uuid.UUID) -> None:
        """Tell every node's actor of the conversation (in a cluster, each node runs its own) to
        reload its members; this node's reloads in `reload_members` already."""
        self._pubsub.publish(
            MEMBERS_CHANGED_TOPIC, MEMBERS_CHANGED, {"conversation_id": str(conversation_id)}
        )

    def reload_soon(self, conversation_id: uuid.UUID) -> None:
        """`reload_members` in a task of this facade (from a broadcast, which must not wait)."""
        if self._nursery is not None:
            self._nursery.start_soon(self.reload_members, conversation_id)

    async def reload_members(self, conversation_id: uuid.UUID) -> None:
        """Queue a member reload on the conversation's actor, if it runs (none: nothing is
        cached). `send` waits for mailbox room rather than dropping it on a full mailbox: a lost
        reload would let a removed member go on getting messages."""
        ref = self._registry.lookup(f"conversation:{conversation_id}")
        if ref is None:
            return
        with contextlib.suppress(ActorUnavailable):  # ended meanwhile: its successor loads afresh
            await ref.send(MembersChanged())

    async def open_direct(self, user_id: uuid.UUID, other_id: uuid.UUID) -> Conversation:
        """The pair's 1:1 conversation, created on first use (raises `UnknownUsers`)."""
        conversation, _ = await self._conversations.open_direct(user_id, other_id)
        return conversation

    async def history_after(
        self, conversation_id: uuid.UUID, after_seq: int, limit: int
    ) -> list[Message]:
        return await self._messages.after(conversation_id, after_seq=after_seq, limit=limit)

    async def publish_change(self, message: Message, event: str) -> None:
        """An edit or a tombstone, to the conversation's subscribers."""
        self._pubsub.publish(
            conversation_topic(message.conversation_id), event, message_payload(message)
        )

    async def publish_read(self, conversation_id: uuid.UUID, user_id: uuid.UUID, seq: int) -> None:
        self._pubsub.publish(
            conversation_topic(conversation_id), "read", {"user_id": str(user_id), "seq": seq}
        )

    def describe(self) -> dict[str, Any]:
        return {"conversations": len(self._supervisor)}


MEMBERS_CHANGED_TOPIC = "parley:members"
"""Where member changes are broadcast to every node's `Chat` (no channel routes it)."""
MEMBERS_CHANGED = "members_changed"


@dataclass(frozen=True, eq=False)
class _MembersChangedElsewhere:
    """`Chat`'s subscription to member changes: the conversation's actor here reloads too (a
    second reload after this node's own is harmless: it only marks the cache stale)."""

    chat: Chat

    def deliver(self, broadcast: Broadcast) -> None:
        try:
            conversation_id = uuid.UUID(broadcast.payload["conversation_id"])
        except (TypeError, KeyError, ValueError):
            return
        self.chat.reload_soon(conversation_id)


def _answer(batch: WriteBatch, *, resent: bool) -> Written | ChatUnavailable:
    """A finished batch of one message as `Chat.send` answers it: the row, or why it failed."""
    result = batch.result
    if isinstance(result, WriteFailed):
        unavailable = ChatUnavailable(str(result))
        unavailable.__cause__ = result
        return unavailable
    assert result is not None, "the batch is finished"
    (row,) = result
    return Written(row.message, duplicate=row.duplicate or resent)


__all__ = [
    "Chat",
    "ChatUnavailable",
    "NotAMember",
    "Written",
    "conversation_topic",
    "message_payload",
    "user_topic",
]
