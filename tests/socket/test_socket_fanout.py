"""Fan-out over real sockets: nothing lost or duplicated (20 clients x 100 messages), and a slow
consumer cut off while 50 others in the same conversation keep receiving without a stall."""

from __future__ import annotations

from collections import Counter
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path

import trio

from parley.service import RunningServer, serve
from tests.phoenix_client import PhoenixClient, open_phoenix_client
from tests.socket.conftest import Realtime, socket_settings
from tests.socket.rawwire import RawSocket

SENDERS = 20
MESSAGES = 100
LISTENERS = 5


async def test_every_member_gets_every_message_exactly_once(realtime: Realtime) -> None:
    senders = await realtime.users(SENDERS)
    listeners = await realtime.users(LISTENERS)  # members with only their user:{id} topic joined
    cid = await realtime.group(senders[0], *senders[1:], *listeners)
    topic = f"conversation:{cid}"
    total = SENDERS * MESSAGES
    async with AsyncExitStack() as stack:
        sender_clients: list[PhoenixClient] = []
        for user in senders:
            client = await stack.enter_async_context(
                open_phoenix_client(realtime.url, token=user.token)
            )
            assert (await client.join(f"user:{user.id}")).ok
            assert (await client.join(topic)).ok
            sender_clients.append(client)
        listener_clients = []
        for user in listeners:
            client = await stack.enter_async_context(
                open_phoenix_client(realtime.url, token=user.token, vsn=None)
            )
            assert (await client.join(f"user:{user.id}")).ok
            listener_clients.append(client)

        acked: dict[int, str] = {}

        async def send_all(index: int, client: PhoenixClient) -> None:
            for n in range(MESSAGES):
                reply = await client.push(
                    topic,
                    "new_msg",
                    {"body": f"{index}:{n}", "client_id": f"{index}-{n}"},
                    timeout=30,
                )
                assert reply.ok, reply
                acked[reply.response["id"]] = f"{index}:{n}"

        received: dict[int, Counter[int]] = {}

        async def collect(index: int, client: PhoenixClient, event: str, where: str) -> None:
            seen: Counter[int] = Counter()
            received[index] = seen
            for _ in range(total):
                message = await client.receive(event, where, timeout=30)
                seen[message.payload["id"]] += 1

        async with trio.open_nursery() as nursery:
            for index, client in enumerate(sender_clients):
                nursery.start_soon(collect, index, client, "new_msg", topic)
            for index, client in enumerate(listener_clients):
                user_topic = f"user:{listeners[index].id}"
                nursery.start_soon(collect, SENDERS + index, client, "message", user_topic)
            async with trio.open_nursery() as sending:
                for index, client in enumerate(sender_clients):
                    sending.start_soon(send_all, index, client)

        assert len(acked) == total
        for index, seen in received.items():
            assert set(seen) == set(acked), index
            assert max(seen.values()) == 1, f"client {index} got duplicates"
        for client in sender_clients:  # joined to the conversation: no user-topic copies
            await client.expect_nothing("message", within=0.05)
        for client in (*sender_clients, *listener_clients):  # and nothing beyond the total
            await client.expect_nothing("new_msg", within=0.01)
            await client.expect_nothing("message", within=0.01)


async def test_slow_consumer_is_cut_off_without_stalling_the_conversation(
    tmp_path: Path, database_url: str, nursery: trio.Nursery
) -> None:
    settings = socket_settings(
        tmp_path,
        database_url,
        # The sender pushes 150 messages back to back: more than the default push limit allows
        # in a second, and this test is about the slow reader, not about that limit.
        socket={
            "outbound_max_messages": 64,
            "outbound_max_bytes": 1_048_576,
            "push_burst": 1000,
        },
    )
    running: RunningServer = await nursery.start(partial(serve, settings, handle_signals=False))
    realtime = Realtime(running)
    fast_users = await realtime.users(50)
    slow_user = await realtime.user()
    cid = await realtime.group(fast_users[0], *fast_users[1:], slow_user)
    topic = f"conversation:{cid}"
    count = 150
    body = "y" * 2000

    slow = await RawSocket.open(realtime.url, slow_user.token, rcvbuf=4096)
    reply = await slow.join(topic)
    assert reply[4]["status"] == "ok"
    # From here on the slow client reads nothing.

    async with AsyncExitStack() as stack:
        # Closing the slow client's TCP socket on the way out (even on failure) unblocks the
        # server's write to it, so the server can shut down.
        stack.push_async_callback(slow.aclose)
        fast: list[PhoenixClient] = []
        for user in fast_users:
            client = await stack.enter_async_context(
                open_phoenix_client(realtime.url, token=user.token)
            )
            assert (await client.join(topic)).ok
            fast.append(client)
        seen: list[list[int]] = []

        async def collect(client: PhoenixClient) -> None:
            seqs: list[int] = []
            while len(seqs) < count:
                message = await client.receive("new_msg", topic, timeout=20)
                seqs.append(message.payload["seq"])
            seen.append(seqs)

        # Nobody waits for the slow socket: while it reads nothing (its buffers and its outbound
        # queue full), every push is acknowledged and every fast member gets every message in
        # order. Were the conversation to wait on it, a push or a receive would time out here.
        sender = fast[0]
        async with trio.open_nursery() as readers:
            for client in fast:
                readers.start_soon(collect, client)
            for n in range(1, count + 1):
                ack = await sender.push(topic, "new_msg", {"body": body}, timeout=10)
                assert ack.ok
                assert ack.response["seq"] == n

        counters = realtime.hub.statistics()["counters"]
        assert counters.get("slow_consumers") == 1
        assert seen == [list(range(1, count + 1))] * len(fast)
        # The slow client, reading again, finds what had been written before the cut-off, then 1013.
        code = await slow.drain_until_closed()
        assert code == 1013
