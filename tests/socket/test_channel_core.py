"""The channel core without a network or a database (the `ChannelCase` harness): joins, replies,
pushes, broadcasts, stops from `handle_out`, crashes, duplicate joins, presence and slow
consumers, each as the session actor and the channel instance really do them."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from parley.api.socket.channels.debug import DebugChannel
from parley.api.socket.core.channel import (
    Answer,
    Channel,
    ChannelSocket,
    HandlerReply,
    HandlerResult,
    StopChannel,
    ok,
)
from parley.api.socket.core.close_codes import CLOSE_TRY_AGAIN_LATER
from parley.api.socket.core.message import Broadcast, Message
from parley.config import Settings, SocketSettings
from tests.socket.channel_case import channel_case, principal

DEBUG = {"debug": DebugChannel}


class RoomChannel(Channel):
    """A test channel: anyone joins; `kick` {user_id} on the topic stops that user's join."""

    intercept = frozenset({"kick"})

    async def join(self, payload: Any) -> HandlerReply:
        return ok({"room": self.topic})

    def handle_out(self, broadcast: Broadcast) -> Broadcast | Message | StopChannel | None:
        if broadcast.payload.get("user_id") == str(self.user_id):
            return StopChannel("kicked")
        return None


def room(socket: ChannelSocket, topic: str) -> Channel:
    return RoomChannel(socket, topic)


async def test_join_push_reply_and_unmatched_topics() -> None:
    async with channel_case(Settings(), prefixes=DEBUG) as case:
        client = await case.connect()
        joined = await client.join("debug:a")
        assert (joined.status, joined.response) == ("ok", {"joined": "debug:a"})
        bare = await client.push("debug:a", "reply_bare", {"status": "weird"})
        assert (bare.status, bare.response) == ("weird", {})
        unmatched = await client.join("nobody:here")
        assert unmatched.response == {"reason": "unmatched topic"}
        refused = await client.join("debug:b", {"fail": "no thanks"})
        assert (refused.status, refused.response) == ("error", {"reason": "no thanks"})
        unknown = await client.push("debug:a", "nope")
        assert unknown.response == {"reason": "unknown event"}


async def test_broadcast_reaches_every_join_and_broadcast_from_skips_the_sender() -> None:
    async with channel_case(Settings(), prefixes=DEBUG) as case:
        alice, bob = await case.connect(), await case.connect()
        await alice.join("debug:r")
        await bob.join("debug:r")
        await alice.push("debug:r", "broadcast", {"event": "hello", "payload": {"n": 1}})
        await alice.push("debug:r", "broadcast_from", {"event": "hello", "payload": {"n": 2}})
        await alice.settle()
        assert alice.events("debug:r", "hello") == [{"n": 1}]
        assert bob.events("debug:r", "hello") == [{"n": 1}, {"n": 2}]


async def test_a_stop_from_handle_out_closes_that_join_and_nothing_after_reaches_it() -> None:
    async with channel_case(Settings(), prefixes={"room": room}) as case:
        kicked, stays = principal(), principal()
        victim, other = await case.connect(kicked), await case.connect(stays)
        await victim.join("room:1")
        await other.join("room:1")
        case.pubsub.publish("room:1", "kick", {"user_id": str(kicked.user_id)})
        case.pubsub.publish("room:1", "after", {"secret": True})
        await victim.settle()
        assert victim.events("room:1", "phx_close") == [{}]
        assert victim.events("room:1", "after") == []
        assert case.pubsub.subscriber_count("room:1") == 1  # unsubscribed inside the broadcast
        assert other.events("room:1", "phx_close") == []


async def test_a_crash_errors_only_its_channel_and_the_socket_stays() -> None:
    async with channel_case(Settings(), prefixes=DEBUG) as case:
        client = await case.connect()
        await client.join("debug:a")
        await client.join("debug:b")
        await client.send(client.join_refs["debug:a"], "99", "debug:a", "crash", {})
        await client.settle()
        assert client.events("debug:a", "phx_error") == [{"reason": "channel_crash"}]
        still = await client.push("debug:b", "reply_bare")
        assert still.status == "ok"
        assert client.connection.closed is None


async def test_a_duplicate_join_closes_the_old_join_with_its_own_join_ref() -> None:
    async with channel_case(Settings(), prefixes=DEBUG) as case:
        client = await case.connect()
        await client.join("debug:a")
        first_ref = client.join_refs["debug:a"]
        await client.join("debug:a")
        closes = [m for m in client.received() if m.event == "phx_close"]
        assert [(m.topic, m.join_ref) for m in closes] == [("debug:a", first_ref)]


async def test_presence_state_after_the_join_and_diffs_to_the_others(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with channel_case(Settings(), prefixes=DEBUG) as case:
        alice_id, bob_id = principal(), principal()
        alice = await case.connect(alice_id)
        await alice.join("debug:p")
        await alice.settle()
        (state,) = alice.events("debug:p", "presence_state")
        assert list(state) == [str(alice_id.user_id)]
        bob = await case.connect(bob_id)
        await bob.join("debug:p")
        autojump_clock.jump(1)  # past the presence broadcast period (virtual time)
        await alice.settle()
        joins = [d["joins"] for d in alice.events("debug:p", "presence_diff")]
        assert str(bob_id.user_id) in {key for j in joins for key in j}
        await bob.connection.client_leaves()
        autojump_clock.jump(1)
        await alice.settle()
        leaves = [d["leaves"] for d in alice.events("debug:p", "presence_diff")]
        assert str(bob_id.user_id) in {key for left in leaves for key in left}


async def test_a_slow_consumer_is_closed_with_1013_and_the_publisher_never_waits() -> None:
    settings = Settings(socket=SocketSettings(outbound_max_messages=8))
    async with channel_case(settings, prefixes=DEBUG) as case:
        client = await case.connect()
        await client.join("debug:flood")
        # The memory transport writes at once, so fill the queue faster than its writer runs:
        # all the broadcasts go out within one turn, with no checkpoint between them.
        for n in range(50):
            case.pubsub.publish("debug:flood", "n", {"n": n})
        await client.settle()
        assert client.connection.closed is not None
        assert client.connection.closed[0] == CLOSE_TRY_AGAIN_LATER
        assert case.hub.counters.get("slow_consumers") == 1


async def test_a_leave_is_answered_after_the_events_before_it() -> None:
    async with channel_case(Settings(), prefixes=DEBUG) as case:
        client = await case.connect()
        await client.join("debug:a")
        join_ref = client.join_refs["debug:a"]
        await client.send(join_ref, "10", "debug:a", "reply_bare", {})
        left = await client.leave("debug:a")
        assert left.status == "ok"
        events = [m for m in client.received() if m.topic == "debug:a"]
        answered = next(i for i, m in enumerate(events) if m.ref == "10")
        closed = next(i for i, m in enumerate(events) if m.event == "phx_close")
        assert answered < closed


class AnsweringChannel(Channel):
    """A test channel answering `now` at once, `later` when the test calls the answer it kept,
    and anything else through `handle_in`, awaited in the instance's task."""

    def __init__(self, socket: ChannelSocket, topic: str, kept: list[Answer]) -> None:
        super().__init__(socket, topic)
        self._kept = kept

    async def join(self, payload: Any) -> HandlerReply:
        return ok()

    def handle_push(self, event: str, payload: Any, message: Message, answer: Answer) -> None:
        if event == "now":
            answer(ok(payload))
        elif event == "later":
            self._kept.append(answer)
        else:
            super().handle_push(event, payload, message, answer)

    async def handle_in(self, event: str, payload: Any, message: Message) -> HandlerResult:
        await trio.sleep(1)  # the mock clock: a handler that waits
        return ok(payload)


async def test_pushes_are_answered_in_order_whether_now_later_or_awaited(
    autojump_clock: trio.testing.MockClock,
) -> None:
    kept: list[Answer] = []

    def answering(socket: ChannelSocket, topic: str) -> Channel:
        return AnsweringChannel(socket, topic, kept)

    async with channel_case(Settings(), prefixes={"answers": answering}) as case:
        client = await case.connect()
        await client.join("answers:a")
        join_ref = client.join_refs["answers:a"]
        for ref, event in enumerate(["later", "now", "awaited", "awaited", "now"], start=10):
            await client.send(join_ref, str(ref), "answers:a", event, {"ref": ref})
        await client.settle()
        replies = [m for m in client.received() if m.event == "phx_reply"]
        assert [m.ref for m in replies] == ["1"]  # the join; the rest wait behind `later`
        (later,) = kept
        later(ok({"ref": 10}))
        await trio.sleep(5)  # the mock clock jumps over both awaited handlers
        await client.settle()
        replies = [m for m in client.received() if m.event == "phx_reply"][1:]
        assert [m.ref for m in replies] == ["10", "11", "12", "13", "14"]
        assert [m.payload["response"]["ref"] for m in replies] == [10, 11, 12, 13, 14]
