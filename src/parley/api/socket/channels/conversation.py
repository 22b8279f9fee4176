"""`conversation:{id}`: a conversation's own topic, for its members (DESIGN §5)."""

from __future__ import annotations

import logging
from typing import Any

from parley.actors.chat import ChatUnavailable, NotAMember, Written, message_payload
from parley.actors.chat_events import MEMBER_REMOVED, NEW_MSG
from parley.api.socket.channels.common import chat_refusal, new_message, parse_uuid
from parley.api.socket.channels.ports import ChannelPorts
from parley.api.socket.core.channel import (
    NO_REPLY,
    UNAUTHORIZED,
    UNKNOWN_EVENT,
    Answer,
    Channel,
    ChannelSocket,
    HandlerReply,
    HandlerResult,
    StopChannel,
    invalid,
    ok,
    refused,
)
from parley.api.socket.core.message import Broadcast, Message

log = logging.getLogger(__name__)


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

    def __init__(self, socket: ChannelSocket, topic: str, ports: ChannelPorts) -> None:
        super().__init__(socket, topic)
        self._ports = ports
        self.conversation_id = parse_uuid(topic.partition(":")[2])
        self._recovered_up_to = 0

    async def join(self, payload: Any) -> HandlerReply:
        cid = self.conversation_id
        if cid is None:
            return refused(UNAUTHORIZED)
        only = self.principal.only_topic
        if only is not None and only != self.topic:
            return refused(UNAUTHORIZED)
        chat = self._ports.chat  # `may_join`: one indexed read; a join never starts the actor
        try:
            if not await chat.may_join(cid, self.user_id):
                return refused(UNAUTHORIZED)
        except Exception as exc:
            log.warning("membership check for %s failed: %r", self.topic, exc)
            return refused("unavailable")
        last_seq = payload.get("last_seq") if isinstance(payload, dict) else None
        if last_seq is None:
            return ok()
        if isinstance(last_seq, bool) or not isinstance(last_seq, int) or last_seq < 0:
            return invalid({"last_seq": ["must be a sequence number (an integer >= 0)"]})
        limit = self._ports.messages.recovery_max_messages
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

    def handle_push(self, event: str, payload: Any, message: Message, answer: Answer) -> None:
        if event == "new_msg":
            self._new_message(payload, answer)
        else:
            super().handle_push(event, payload, message, answer)

    def _new_message(self, payload: Any, answer: Answer) -> None:
        """Answered from the conversation actor's and the writer's callbacks: no task."""
        cid = self.conversation_id
        assert cid is not None
        fields = new_message(payload, "body", self._ports.messages)
        if isinstance(fields, HandlerReply):
            answer(fields)
            return

        def sent(written: Written | NotAMember | ChatUnavailable) -> None:
            if isinstance(written, Written):
                answer(ok({"id": written.message.id, "seq": written.message.seq}))
            else:
                answer(chat_refusal(written))

        self._ports.chat.submit(cid, self.user_id, fields.body, fields.client_id, sent)

    async def handle_in(self, event: str, payload: Any, message: Message) -> HandlerResult:
        cid = self.conversation_id
        assert cid is not None
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
            marked = await self._ports.chat.mark_read(cid, self.user_id, seq)
            if marked is None:
                return refused(UNAUTHORIZED)
            await self._ports.chat.publish_read(cid, self.user_id, marked)
            return ok({"seq": marked})
        if event == "debug_crash" and self._ports.debug and self.principal.is_admin:
            raise RuntimeError(f"debug_crash requested on {self.topic}")
        return refused(UNKNOWN_EVENT)
