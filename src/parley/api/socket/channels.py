"""Channels: the topic handlers of DESIGN §5, in the shape of Phoenix's `channel.ex`.

A `Channel` subclass handles one topic pattern. The session makes one instance per join and
calls, in order:

* `join(payload)` -> `ok(response)` or `error(response)`; runs before anything is registered, so
  a refusal leaves nothing behind (§14 item 10). It must not push (§4.2: the join reply comes
  first); pushes belong in `after_join`.
* `after_join()` -> runs first in the instance's own task, after the join reply is queued
  (presence: track, then push `presence_state` to this client only).
* `handle_in(event, payload, message)` -> `ok(...)` / `error(...)` / `reply(status, ...)` (a reply
  with this message's ref and join_ref), `NO_REPLY`, or `StopChannel(...)` (reply if any, then
  `phx_close`). An exception is a crash: `phx_error` for this instance only, and the client
  rejoins (§4.6).
* `handle_out(broadcast)` -> only for events named in `intercept` and for broadcasts of extra
  topics the channel subscribed to: return the broadcast (fastlane), a modified `Broadcast`, a
  `Message` push for this client only (`self.push_message`), None to suppress it, or
  `StopChannel` to end the instance at once (`phx_close`; nothing published after this
  broadcast reaches it, as Phoenix's `{:stop, reason, socket}`). Must not block: it runs inside
  the publisher's fan-out.
* `terminate(reason)` -> last, synchronously, whatever ended the instance (left, closed,
  crashed, duplicate join, socket closed).

`self.socket` is the `ChannelInstance`: `push`, `broadcast`, `broadcast_from`, `subscribe`,
`track`, `update_presence`, `presence_state`, `has_joined`, `joined_topics`, `principal`.

Authorization happens in every `join`: another user's private topic, or a conversation the user
is not in, is refused with `{"reason": "unauthorized"}`; a socket opened with a conversation
channel token may join that conversation's topic and nothing else.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final

from parley.actors.chat import ChatUnavailable, NotAMember, Written, message_payload
from parley.actors.chat_events import MEMBER_REMOVED, NEW_MSG
from parley.actors.message_rules import NewMessageFields, validate_new_message
from parley.api.socket import message as m
from parley.api.socket.message import Broadcast, Message, Payload
from parley.isotime import iso
from parley.marketplace.events import DELETED, HIDDEN
from parley.marketplace.permissions import Action, allowed, level_of
from parley.store.conversations import UnknownUsers

if TYPE_CHECKING:
    from parley.api.socket.auth import SocketPrincipal
    from parley.api.socket.hub import SocketHub
    from parley.api.socket.session import ChannelInstance
    from parley.config import Settings

log = logging.getLogger(__name__)

# -- handler results ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HandlerReply:
    """A `phx_reply` with `status` and `response` (None -> `{}`, §14 item 14)."""

    status: str
    response: Payload = None


class _NoReply:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_REPLY"


NO_REPLY: Final = _NoReply()
"""The handler sends no reply (the client's push times out unless it expects none)."""


@dataclass(frozen=True, slots=True)
class StopChannel:
    """End this channel instance normally: the optional reply, then `phx_close` (§14 item 21)."""

    reason: str = "normal"
    reply: HandlerReply | None = None


HandlerResult = HandlerReply | _NoReply | StopChannel


class _InTask:
    __slots__ = ()

    def __repr__(self) -> str:
        return "HANDLE_IN_TASK"


HANDLE_IN_TASK: Final = _InTask()
"""What a `handle_in_now` answers when the event must go through `handle_in` after all."""

Answer = Callable[[HandlerResult | _InTask], None]
"""How `handle_in_now` answers an event it took: once, now or later, from any task."""


def ok(response: Payload = None) -> HandlerReply:
    return HandlerReply("ok", response)


def error(response: Payload = None) -> HandlerReply:
    return HandlerReply("error", response)


def reply(status: str, response: Payload = None) -> HandlerReply:
    return HandlerReply(status, response)


def refused(reason: str) -> HandlerReply:
    return HandlerReply("error", {"reason": reason})


UNAUTHORIZED: Final = "unauthorized"


# -- the behaviour --------------------------------------------------------------------------


class Channel:
    """Base class: joins nobody, answers unknown events with `{"reason": "unknown event"}`."""

    intercept: frozenset[str] = frozenset()
    """Events of the channel's own topic that go through `handle_out` (may be set per instance)."""
    presence: ClassVar[bool] = False
    """Track the user (key: user id) on the topic and push `presence_state` after each join."""

    def __init__(self, socket: ChannelInstance, topic: str) -> None:
        self.socket = socket
        self.topic = topic
        # The 1:1 conversation with each user this channel has written to: a pair's direct
        # conversation never changes once it exists, so it is looked up (or created) once.
        self._direct_conversations: dict[uuid.UUID, uuid.UUID] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.topic}>"

    async def direct_conversation(self, other: uuid.UUID) -> uuid.UUID:
        """The id of this user's 1:1 conversation with `other` (raises `UnknownUsers`)."""
        conversation_id = self._direct_conversations.get(other)
        if conversation_id is None:
            conversation = await self.hub.chat.open_direct(self.user_id, other)
            conversation_id = self._direct_conversations[other] = conversation.id
        return conversation_id

    @property
    def principal(self) -> SocketPrincipal:
        return self.socket.principal

    @property
    def hub(self) -> SocketHub:
        return self.socket.hub

    @property
    def settings(self) -> Settings:
        return self.socket.hub.settings

    @property
    def user_id(self) -> uuid.UUID:
        return self.socket.principal.user_id

    async def join(self, payload: Any) -> HandlerReply:
        return refused(UNAUTHORIZED)

    async def after_join(self) -> None:
        if self.presence:
            self.socket.track(str(self.user_id), self.presence_meta())
            self.socket.push(m.PRESENCE_STATE, self.socket.presence_state())

    def presence_meta(self) -> dict[str, Any]:
        return {"online_at": int(time.time())}

    async def handle_in(self, event: str, payload: Any, message: Message) -> HandlerResult:
        return refused("unknown event")

    def handle_in_now(self, event: str, payload: Any, message: Message, answer: Answer) -> bool:
        """Take an event without a task of its own, if this channel can (False: `handle_in`
        gets it, in the instance's task).

        For events whose work is done by actors that can answer through a callback (a chat
        send: the conversation's actor, then the writer), so that a push costs no task, no
        cancel scope and no wake-up of its own (docs/realtime.md, "Pushes without a task"). A
        channel that takes the event calls `answer` exactly once, with the result `handle_in`
        would have returned, or with `HANDLE_IN_TASK` to hand the event to `handle_in` after all;
        the instance handles nothing else meanwhile, so events stay in order.
        """
        return False

    def handle_out(self, broadcast: Broadcast) -> Broadcast | Message | StopChannel | None:
        return broadcast

    def terminate(self, reason: str) -> None:
        """Last call for this instance; nothing may be awaited here."""

    def push_message(self, event: str, payload: Any) -> Message:
        """A push for this client only, for `handle_out` to return (carries the join_ref)."""
        return m.push(self.socket.join_ref, self.topic, event, payload)

    @property
    def signed_in(self) -> bool:
        """A full session (access or API-session token), not a one-conversation channel token."""
        return self.principal.only_conversation is None


def _uuid(value: object) -> uuid.UUID | None:
    if not isinstance(value, str) or len(value) != 36:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def invalid(errors: dict[str, list[str]]) -> HandlerReply:
    """The reply refusing a push whose payload breaks a rule, naming each field and why (the
    `errors` map of Phoenix apps' changeset replies; REST puts the same map in `error.fields`)."""
    return HandlerReply("error", {"reason": "invalid", "errors": errors})


def _new_message(
    payload: Any, body_key: str, settings: Settings
) -> NewMessageFields | HandlerReply:
    """The body (under `body_key`) and client id of a push that writes a message, checked by
    the rule REST uses too, or the reply that refuses them."""
    data = payload if isinstance(payload, dict) else {}
    checked = validate_new_message(
        data.get(body_key),
        data.get("client_id"),
        max_chars=settings.messages.body_max_chars,
        body_field=body_key,
    )
    return invalid(checked) if isinstance(checked, dict) else checked


# -- user:{id} ------------------------------------------------------------------------------


class UserChannel(Channel):
    """`user:{id}`: that user only. Gets `message` for every conversation they are in (skipped
    while this socket has joined that conversation's topic: it gets `new_msg` there),
    `listing_reply` and direct app events."""

    intercept = frozenset({"message"})

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


def chat_refusal(error: UnknownUsers | NotAMember | ChatUnavailable) -> HandlerReply:
    """The error reply for a chat send that was not stored (nothing was written)."""
    if isinstance(error, UnknownUsers):
        return refused("unknown user")
    if isinstance(error, NotAMember):
        return refused(UNAUTHORIZED)
    return refused("unavailable")


# -- private_chat:{id} (Daveslist) ------------------------------------------------------------


class PrivateChatChannel(Channel):
    """`private_chat:{id}`: that user only. `send` {to, message, client_id?} stores the message
    in the pair's 1:1 conversation and broadcasts `send` {message, to, from, id, inserted_at} on
    `private_chat:{to}` and on the sender's own `private_chat:{id}` (their other devices; not the
    sending socket); the sender gets ok {id, seq, conversation_id}."""

    async def join(self, payload: Any) -> HandlerReply:
        if not self.signed_in or self.topic != f"private_chat:{self.user_id}":
            return refused(UNAUTHORIZED)
        return ok()

    def _sending(self, payload: Any) -> tuple[uuid.UUID, str, str | None] | HandlerReply:
        """`send`'s recipient, body and client id, or the error reply for a bad payload."""
        to = _uuid(payload.get("to") if isinstance(payload, dict) else None)
        if to is None or to == self.user_id:
            return invalid({"to": ["must be another user's id"]})
        fields = _new_message(payload, "message", self.settings)
        if isinstance(fields, HandlerReply):
            return fields
        return to, fields.body, fields.client_id

    def handle_in_now(self, event: str, payload: Any, message: Message, answer: Answer) -> bool:
        if event != "send":
            return False
        sending = self._sending(payload)
        if isinstance(sending, HandlerReply):
            answer(sending)
            return True
        to, body, client_id = sending
        conversation_id = self._direct_conversations.get(to)
        if conversation_id is None:
            return False  # the first message to `to` looks the conversation up: in the task

        def sent(written: Written | NotAMember | ChatUnavailable | None) -> None:
            if written is None:
                answer(HANDLE_IN_TASK)
            elif isinstance(written, Written):
                answer(self._delivered(to, conversation_id, written))
            else:
                answer(chat_refusal(written))

        return bool(self.hub.chat.send_soon(conversation_id, self.user_id, body, client_id, sent))

    async def handle_in(self, event: str, payload: Any, message: Message) -> HandlerResult:
        if event != "send":
            return refused("unknown event")
        sending = self._sending(payload)
        if isinstance(sending, HandlerReply):
            return sending
        to, body, client_id = sending
        try:
            conversation_id = await self.direct_conversation(to)
            written = await self.hub.chat.send(conversation_id, self.user_id, body, client_id)
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
            self.hub.pubsub.publish(f"private_chat:{to}", "send", sent)
            self.socket.broadcast_from("send", sent)
        return ok({"id": stored.id, "seq": stored.seq, "conversation_id": str(conversation_id)})


# -- room:chat (CompanyApi) --------------------------------------------------------------------


class RoomChatChannel(Channel):
    """`room:chat`: any signed-in user. `send_msg` {user, conv, message, client_id?} stores the
    message (in `conv`, or the pair's 1:1 conversation when `conv` is null) and the recipient's
    `room:chat` sockets, and the sender's other ones, get `receive_msg` {message: {id, content,
    sender_id, conversation_id, date}}.

    Delivery to one user goes through an internal per-user topic that only this channel
    subscribes to, so a message costs nothing for the other people in the room.
    """

    async def join(self, payload: Any) -> HandlerReply:
        if not self.signed_in:
            return refused(UNAUTHORIZED)
        self.socket.subscribe(self._inbox(self.user_id))
        return ok()

    @staticmethod
    def _inbox(user_id: uuid.UUID) -> str:
        return f"room:chat:user:{user_id}"

    async def handle_in(self, event: str, payload: Any, message: Message) -> HandlerResult:
        if event != "send_msg":
            return refused("unknown event")
        data = payload if isinstance(payload, dict) else {}
        recipient = _uuid(data.get("user"))
        if recipient is None:
            return invalid({"user": ["must be a user id"]})
        fields = _new_message(payload, "message", self.settings)
        if isinstance(fields, HandlerReply):
            return fields
        chat = self.hub.chat
        try:
            if data.get("conv") is None:
                if recipient == self.user_id:
                    return invalid({"user": ["must not be yourself"]})
                conversation_id = await self.direct_conversation(recipient)
            else:
                parsed = _uuid(data.get("conv"))
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
            self.hub.pubsub.publish(self._inbox(recipient), "receive_msg", received)
            # The sender's other devices show it too; this socket has the reply.
            self.hub.pubsub.publish_from(
                self.socket, self._inbox(self.user_id), "receive_msg", received
            )
        return ok(out)

    def handle_out(self, broadcast: Broadcast) -> Broadcast | Message | None:
        # Only the internal per-user topic reaches here; re-address it to room:chat.
        return self.push_message(broadcast.event, broadcast.payload)


# -- conversation:{id} -----------------------------------------------------------------------


class ConversationChannel(Channel):
    """`conversation:{id}`: members (or a channel token for it).

    * join {last_seq: N} replies {messages: [...], recovered: true} with what was missed after N,
      or {recovered: false, history: ...} when more than `messages.recovery_max_messages` were;
    * `new_msg` {body, client_id?} -> ok {id, seq} after the commit; the message is broadcast as
      `new_msg` to every subscriber (the sender's socket included);
    * `typing` {typing?} -> `typing` {user_id, typing} to the others (broadcast_from), not stored,
      no reply;
    * `read` {seq} -> stores the read marker; `read` {user_id, seq} to everybody; ok {seq};
    * a member removed (or leaving) over REST: `member_removed` {conversation_id, user_id} to the
      others, and `phx_close` on every socket of the removed user (`Chat.member_removed`);
      `member_added` {conversation_id, user_id} when someone is invited;
    * `debug_crash` (admins, outside prod) raises, for the phx_error + rejoin conformance test.
    """

    presence = True
    intercept = frozenset({MEMBER_REMOVED})
    """A removal must reach `handle_out`: the removed member's instances stop there."""

    def __init__(self, socket: ChannelInstance, topic: str) -> None:
        super().__init__(socket, topic)
        self.conversation_id = _uuid(topic.partition(":")[2])
        self._recovered_up_to = 0

    async def join(self, payload: Any) -> HandlerReply:
        cid = self.conversation_id
        if cid is None:
            return refused(UNAUTHORIZED)
        only = self.principal.only_conversation
        if only is not None and only != cid:
            return refused(UNAUTHORIZED)
        # One indexed read, not `chat.is_member`: joining must not start the conversation's
        # actor (a reconnect storm would start every conversation at once through the
        # registry); the actor starts when somebody sends.
        try:
            if not await self.hub.stores.conversations.is_member(cid, self.user_id):
                return refused(UNAUTHORIZED)
        except Exception as exc:
            log.warning("membership check for %s failed: %r", self.topic, exc)
            return refused("unavailable")
        chat = self.hub.chat
        last_seq = payload.get("last_seq") if isinstance(payload, dict) else None
        if last_seq is None:
            return ok()
        if isinstance(last_seq, bool) or not isinstance(last_seq, int) or last_seq < 0:
            return invalid({"last_seq": ["must be a sequence number (an integer >= 0)"]})
        limit = self.settings.messages.recovery_max_messages
        missed = await chat.history_after(cid, last_seq, limit + 1)
        if len(missed) > limit:
            return ok(
                {
                    "recovered": False,
                    "history": f"/api/conversations/{cid}/messages?after_seq={last_seq}",
                }
            )
        # Broadcasts that arrived during the join wait behind the reply; drop the ones the
        # reply already contains, so nothing is delivered twice.
        self._recovered_up_to = missed[-1].seq if missed else last_seq
        self.intercept = frozenset({NEW_MSG, MEMBER_REMOVED})
        return ok({"recovered": True, "messages": [message_payload(x) for x in missed]})

    def handle_out(self, broadcast: Broadcast) -> Broadcast | Message | StopChannel | None:
        payload = broadcast.payload
        if broadcast.event == MEMBER_REMOVED:
            removed = payload.get("user_id") if isinstance(payload, dict) else None
            if removed == str(self.user_id):
                return StopChannel("removed")
            return broadcast
        seq = payload.get("seq") if isinstance(payload, dict) else None
        if isinstance(seq, int) and seq <= self._recovered_up_to:
            return None
        # Past the recovered range: back to the fastlane for messages.
        self.intercept = ConversationChannel.intercept
        return broadcast

    def handle_in_now(self, event: str, payload: Any, message: Message, answer: Answer) -> bool:
        if event != "new_msg":
            return False
        cid = self.conversation_id
        assert cid is not None
        fields = _new_message(payload, "body", self.settings)
        if isinstance(fields, HandlerReply):
            answer(fields)
            return True

        def sent(written: Written | NotAMember | ChatUnavailable | None) -> None:
            if written is None:
                answer(HANDLE_IN_TASK)
            elif isinstance(written, Written):
                answer(ok({"id": written.message.id, "seq": written.message.seq}))
            else:
                answer(chat_refusal(written))

        return bool(self.hub.chat.send_soon(cid, self.user_id, fields.body, fields.client_id, sent))

    async def handle_in(self, event: str, payload: Any, message: Message) -> HandlerResult:
        cid = self.conversation_id
        assert cid is not None
        if event == "new_msg":
            fields = _new_message(payload, "body", self.settings)
            if isinstance(fields, HandlerReply):
                return fields
            try:
                written = await self.hub.chat.send(cid, self.user_id, fields.body, fields.client_id)
            except (NotAMember, ChatUnavailable) as exc:
                return chat_refusal(exc)
            return ok({"id": written.message.id, "seq": written.message.seq})
        if event == "typing":
            typing = payload.get("typing", True) if isinstance(payload, dict) else True
            self.socket.broadcast_from(
                "typing", {"user_id": str(self.user_id), "typing": bool(typing)}
            )
            return NO_REPLY
        if event == "read":
            seq = payload.get("seq") if isinstance(payload, dict) else None
            if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
                return invalid({"seq": ["must be a sequence number (an integer >= 0)"]})
            marked = await self.hub.stores.conversations.mark_read(cid, self.user_id, seq)
            if marked is None:
                return refused(UNAUTHORIZED)
            await self.hub.chat.publish_read(cid, self.user_id, marked)
            return ok({"seq": marked})
        if event == "debug_crash" and self.hub.debug_enabled and self.principal.is_admin:
            raise RuntimeError(f"debug_crash requested on {self.topic}")
        return refused("unknown event")


# -- system:general --------------------------------------------------------------------------


class SystemChannel(Channel):
    """`system:general`: any signed-in user; `announcement` from admins; presence (who is on)."""

    presence = True

    async def join(self, payload: Any) -> HandlerReply:
        return ok() if self.signed_in else refused(UNAUTHORIZED)


# -- listing:{id} (the marketplace) ------------------------------------------------------------


class ListingChannel(Channel):
    """`listing:{id}`: any signed-in user, for a listing they may see (a hidden one: its seller
    and staff). Subscribers get `reply`, `updated`, `sold`, `reply_deleted`, `reply_hidden`
    (`marketplace.events`). When the listing is hidden, the channels of everybody else stop
    (`phx_close`), and its seller and staff get `hidden`; when it is deleted, every channel stops.
    """

    intercept = frozenset({HIDDEN, DELETED})

    def __init__(self, socket: ChannelInstance, topic: str) -> None:
        super().__init__(socket, topic)
        self.listing_id = _uuid(topic.partition(":")[2])
        self._sees_hidden = False

    async def join(self, payload: Any) -> HandlerReply:
        level = level_of(self.principal.role)
        if self.listing_id is None or not self.signed_in or not allowed(Action.WATCH, level):
            return refused(UNAUTHORIZED)
        try:
            listing = await self.hub.stores.listings.get(self.listing_id)
        except Exception as exc:
            log.warning("listing look-up for %s failed: %r", self.topic, exc)
            return refused("unavailable")
        if listing is None:
            return refused(UNAUTHORIZED)
        is_seller = listing.seller.id == self.user_id
        self._sees_hidden = allowed(Action.SEE_HIDDEN, level, is_owner=is_seller)
        if listing.hidden_at is not None and not self._sees_hidden:
            return refused(UNAUTHORIZED)
        return ok()

    def handle_out(self, broadcast: Broadcast) -> Broadcast | Message | StopChannel | None:
        if broadcast.event == DELETED:
            return StopChannel("deleted")
        if not self._sees_hidden:
            return StopChannel("hidden")
        return broadcast


# -- debug:{name} (outside prod only) ----------------------------------------------------------


class DebugChannel(Channel):
    """A test channel for protocol edge cases the app channels never produce (§14 items 14, 21,
    25, 26, 27, 30). Routed only when `server.env` is not `prod`; any signed-in user may join.

    Events: `reply_bare` {status?} -> that status with `{}`; `noreply` -> nothing; `stop` -> ok,
    then `phx_close`; `broadcast_from` / `broadcast` {event, payload} -> to the topic; `push`
    {event, payload} -> this client; `presence_update` {meta} -> a presence meta update; `crash`
    -> raises; any binary payload -> a binary reply (kind 1), push (kind 0) and broadcast (kind 2)
    of the same bytes. `join` {fail: reason} refuses with that reason.
    """

    presence = True

    async def join(self, payload: Any) -> HandlerReply:
        if not self.signed_in:
            return refused(UNAUTHORIZED)
        if isinstance(payload, dict) and isinstance(payload.get("fail"), str):
            return refused(payload["fail"])
        if isinstance(payload, dict) and payload.get("crash"):
            raise RuntimeError("join crash requested")
        return ok({"joined": self.topic})

    def presence_meta(self) -> dict[str, Any]:
        return {"online_at": int(time.time()), "status": "online"}

    async def handle_in(self, event: str, payload: Any, message: Message) -> HandlerResult:
        if isinstance(payload, bytes):
            self.socket.push("binary_push", payload)
            self.socket.broadcast("binary_broadcast", payload)
            return ok(payload)
        data = payload if isinstance(payload, dict) else {}
        if event == "reply_bare":
            status = data.get("status", "ok")
            return reply(status if isinstance(status, str) else "ok")
        if event == "noreply":
            return NO_REPLY
        if event == "stop":
            return StopChannel("normal", ok({"stopping": True}))
        if event in ("broadcast", "broadcast_from", "push"):
            name = data.get("event")
            body = data.get("payload", {})
            if not isinstance(name, str) or not isinstance(body, dict):
                return refused("invalid")
            if event == "broadcast":
                self.socket.broadcast(name, body)
            elif event == "broadcast_from":
                self.socket.broadcast_from(name, body)
            else:
                self.socket.push(name, body)
            return ok()
        if event == "presence_update":
            meta = data.get("meta")
            if not isinstance(meta, dict):
                return refused("invalid")
            ref = self.socket.update_presence(str(self.user_id), meta)
            return ok({"phx_ref": ref})
        if event == "crash":
            raise RuntimeError("crash requested")
        return refused("unknown event")


# -- routing ---------------------------------------------------------------------------------

_EXACT: Final[dict[str, type[Channel]]] = {
    "room:chat": RoomChatChannel,
    "system:general": SystemChannel,
}
_PREFIX: Final[dict[str, type[Channel]]] = {
    "user": UserChannel,
    "private_chat": PrivateChatChannel,
    "conversation": ConversationChannel,
    "listing": ListingChannel,
}


def route(topic: str, hub: SocketHub) -> type[Channel] | None:
    """The channel class for `topic`, or None (-> "unmatched topic", §14 item 11)."""
    exact = _EXACT.get(topic)
    if exact is not None:
        return exact
    kind, sep, rest = topic.partition(":")
    if not sep or not rest:
        return None
    if kind == "debug" and hub.debug_enabled:
        return DebugChannel
    return _PREFIX.get(kind)
