"""A presence snapshot and the diffs after it agree, through the real channel core (the
`ChannelCase` harness, Phoenix V2 frames): a client never hears of a meta twice (a join of a
meta its `presence_state` held) nor of a meta it never held (a leave), whether a diff was
broadcast while its join was being decided or was still pending in the tracker's batch when it
took its snapshot. Deterministic: a gated join, virtual time, settled tasks.

Each test replays what the client received as phoenix.js's `Presence` does (diffs before the
`presence_state` are applied after it) and checks every step, and that it ends at the tracker's
state."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from parley.api.socket.channels.debug import DebugChannel
from parley.api.socket.core.channel import Channel, ChannelSocket, HandlerReply
from parley.api.socket.core.message import Message
from parley.config import Settings
from tests.socket.channel_case import ChannelCase, ChannelClient, channel_case, principal

PERIOD = 0.1


def replay(messages: list[Message], topic: str) -> dict[str, set[str]]:
    """key -> phx_refs, as phoenix.js builds it from `messages`; fails on a join of a ref
    already held or a leave of a ref not held."""
    state: dict[str, set[str]] | None = None
    early: list[dict[str, Any]] = []

    def apply(diff: dict[str, Any]) -> None:
        assert state is not None
        for key, entry in diff["joins"].items():
            for meta in entry["metas"]:
                held = state.setdefault(key, set())
                assert meta["phx_ref"] not in held, f"join of {key}/{meta['phx_ref']} again"
                held.add(meta["phx_ref"])
        for key, entry in diff["leaves"].items():
            for meta in entry["metas"]:
                assert meta["phx_ref"] in state.get(key, set()), f"leave of unheld {key}"
                state[key].discard(meta["phx_ref"])
                if not state[key]:
                    del state[key]

    for message in messages:
        if message.topic != topic:
            continue
        if message.event == "presence_state":
            assert state is None, "one presence_state per join"
            state = {k: {m["phx_ref"] for m in e["metas"]} for k, e in message.payload.items()}
            for diff in early:
                apply(diff)
        elif message.event == "presence_diff":
            if state is None:
                early.append(message.payload)
            else:
                apply(message.payload)
    assert state is not None, "a presence_state arrived"
    return state


def tracked(case: ChannelCase, topic: str) -> dict[str, set[str]]:
    return {k: {m["phx_ref"] for m in e["metas"]} for k, e in case.presence.list(topic).items()}


class GatedChannel(DebugChannel):
    """The debug channel whose join waits for `gate` (a join that awaits a look-up)."""

    def __init__(self, socket: ChannelSocket, topic: str, gate: trio.Event) -> None:
        super().__init__(socket, topic)
        self._gate = gate

    async def join(self, payload: Any) -> HandlerReply:
        await self._gate.wait()
        return await super().join(payload)


async def test_a_diff_broadcast_while_the_join_is_decided_is_not_repeated() -> None:
    gate = trio.Event()

    def gated(socket: ChannelSocket, topic: str) -> Channel:
        return GatedChannel(socket, topic, gate)

    async with channel_case(Settings(), prefixes={"gated": gated}) as case:
        topic = "gated:room"
        alice = await case.connect()
        await alice.send("1", "1", topic, "phx_join", {})
        await alice.settle()  # alice's join waits; she is subscribed already
        case.presence.track(topic, object(), "bob", {"n": 1})  # broadcast now (no period)
        gate.set()
        await alice.settle()
        state = replay(alice.received(), topic)
        assert "bob" in state
        assert state == tracked(case, topic)


async def test_a_snapshot_taken_while_changes_are_pending_is_not_repeated(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with channel_case(
        Settings(), prefixes={"debug": DebugChannel}, presence_period=PERIOD
    ) as case:
        topic = "debug:room"
        watcher, bob, alice = principal(), principal(), principal()
        first = await case.connect(watcher)
        await first.join(topic)
        autojump_clock.jump(PERIOD * 2)
        await first.settle()
        bob_client = await case.connect(bob)
        await bob_client.join(topic)  # bob's join is pending, not broadcast yet
        late = await case.connect(alice)
        await late.join(topic)  # alice's snapshot holds bob, and herself
        await late.settle()
        (shown,) = late.events(topic, "presence_state")
        assert set(shown) == {str(watcher.user_id), str(bob.user_id), str(alice.user_id)}
        autojump_clock.jump(PERIOD * 2)
        await late.settle()
        for client in (first, bob_client, late):
            assert replay(client.received(), topic) == tracked(case, topic)
        # alice hears of nobody twice: no diff at all about the two she was shown, or herself
        assert late.events(topic, "presence_diff") == []


async def test_a_shown_meta_that_changes_within_the_batch_is_still_heard_of(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with channel_case(
        Settings(), prefixes={"debug": DebugChannel}, presence_period=PERIOD
    ) as case:
        topic = "debug:room"
        clients: list[ChannelClient] = []
        for _ in range(2):
            client = await case.connect()
            await client.join(topic)
            clients.append(client)
        autojump_clock.jump(PERIOD * 2)
        await clients[0].settle()
        bob = await case.connect()
        await bob.join(topic)  # pending ...
        carol_conn = object()
        case.presence.track(topic, carol_conn, "carol", {})  # pending too
        late = await case.connect()
        await late.join(topic)  # ... and shown to `late`
        await bob.push(topic, "presence_update", {"meta": {"status": "away"}})  # new ref
        case.presence.untrack(topic, carol_conn)  # joined and left within one batch
        await late.push(topic, "presence_update", {"meta": {"status": "busy"}})
        autojump_clock.jump(PERIOD * 2)
        await late.settle()
        assert "carol" not in tracked(case, topic)
        for client in (*clients, bob, late):
            assert replay(client.received(), topic) == tracked(case, topic)
