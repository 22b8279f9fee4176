"""Three nodes in one process on one PostgreSQL database, over each bus adapter: messages,
presence and revocation reach every node (DESIGN §8)."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
import trio

from parley.actors.writer import WriteBatch
from parley.store.messages import NewMessage
from tests.cluster.conftest import (
    cluster_of,
    node_settings,
    start_nodes,
    unique_channel,
    wait_until,
)
from tests.cluster.redis_server import RedisServer
from tests.phoenix_client import PhoenixClient, open_phoenix_client
from tests.socket.conftest import Realtime, User

pytestmark = pytest.mark.trio


@pytest.fixture(params=["postgres", "redis"])
def adapter(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "redis":
        redis: RedisServer = request.getfixturevalue("redis_server")
        return {"adapter": "redis", "redis_url": redis.url, "channel": unique_channel()}
    return {"adapter": "postgres"}


@pytest.fixture
async def nodes(
    tmp_path: Path, database_url: str, adapter: dict[str, str], nursery: trio.Nursery
) -> list[Realtime]:
    settings = [node_settings(tmp_path, database_url, name, **adapter) for name in ("a", "b", "c")]
    return await start_nodes(nursery, settings)


async def new_msgs(client: PhoenixClient, topic: str, count: int) -> list[int]:
    """The seqs of the next `count` new_msg on `topic`; the ones that came, if not all did."""
    seqs: list[int] = []
    try:
        for _ in range(count):
            message = await client.receive("new_msg", topic, timeout=30)
            seqs.append(message.payload["seq"])
    except trio.TooSlowError:
        raise AssertionError(f"only {len(seqs)} of {count} new_msg came: {seqs}") from None
    return seqs


async def test_a_message_reaches_every_node_once_in_seq_order(nodes: list[Realtime]) -> None:
    a, b, c = nodes
    users = await a.users(3)
    conversation = await a.group(*users)
    topic = f"conversation:{conversation}"
    async with (
        open_phoenix_client(a.url, token=users[0].token) as on_a,
        open_phoenix_client(b.url, token=users[1].token) as on_b,
        open_phoenix_client(c.url, token=users[2].token) as on_c,
    ):
        for client in (on_a, on_b, on_c):
            assert (await client.join(topic)).ok
        # Senders on two nodes at once: the seqs interleave, every node must still order them.
        async with trio.open_nursery() as senders:
            for client in (on_a, on_b):
                for index in range(15):
                    senders.start_soon(client.push_nowait, topic, "new_msg", {"body": f"m{index}"})
        # Then one more: the next new_msg after the 30 is seq 31 on every node (nothing twice).
        await on_c.push(topic, "new_msg", {"body": "last"})
        for client in (on_a, on_b, on_c):
            assert await new_msgs(client, topic, 31) == list(range(1, 32))
        # A member's `user:` topic on another node gets each message once too.
        async with open_phoenix_client(c.url, token=users[1].token) as inbox:
            assert (await inbox.join(f"user:{users[1].id}")).ok
            await on_a.push(topic, "new_msg", {"body": "to the inbox"})
            message = await inbox.receive("message", f"user:{users[1].id}", timeout=30)
            assert message.payload["seq"] == 32


async def test_presence_is_one_view_across_nodes(nodes: list[Realtime]) -> None:
    a, b, c = nodes
    users = await a.users(3)
    conversation = await a.group(*users)
    topic = f"conversation:{conversation}"
    keys = {user.key for user in users}
    async with (
        open_phoenix_client(a.url, token=users[0].token) as on_a,
        open_phoenix_client(b.url, token=users[1].token) as on_b,
        open_phoenix_client(c.url, token=users[2].token) as on_c,
        open_phoenix_client(c.url, token=users[0].token) as also_on_c,
    ):
        for client in (on_a, on_b, on_c, also_on_c):
            assert (await client.join(topic)).ok
        for node in nodes:
            await wait_until(
                lambda node=node: set(node.runtime.presence.list(topic)) == keys,  # type: ignore[misc]
                "every node lists the three members",
            )
        # The first user is one key with two metas, one per node it is connected to.
        for node in nodes:
            assert len(node.runtime.presence.get(topic, users[0].key)) == 2
        # A newcomer's presence_state has everybody, wherever they are connected.
        async with open_phoenix_client(b.url, token=users[2].token) as late:
            assert (await late.join(topic)).ok
            state = await late.receive("presence_state", topic, timeout=30)
            assert keys <= set(state.payload)
        await also_on_c.close()
        await wait_until(
            lambda: len(a.runtime.presence.get(topic, users[0].key)) == 1,
            "the meta on c left, on a",
        )


async def test_logout_all_on_one_node_closes_the_sockets_on_the_others(
    nodes: list[Realtime],
) -> None:
    a, b, c = nodes
    user, other = await a.users(2)
    async with (
        open_phoenix_client(b.url, token=user.token) as on_b,
        open_phoenix_client(c.url, token=user.token) as on_c,
        open_phoenix_client(c.url, token=other.token) as bystander,
    ):
        for client, who in ((on_b, user), (on_c, user), (bystander, other)):
            assert (await client.join(f"user:{who.id}")).ok
        await logout_all(a, user)
        assert (await on_b.wait_closed(timeout=30))[0] == 1001
        assert (await on_c.wait_closed(timeout=30))[0] == 1001
        assert (await bystander.heartbeat()).ok


async def test_a_message_missing_from_the_bus_is_filled_from_the_database(
    nodes: list[Realtime],
) -> None:
    a, b, _ = nodes
    user, other = await a.users(2)
    conversation = await a.group(user, other)
    topic = f"conversation:{conversation}"
    async with open_phoenix_client(b.url, token=other.token) as on_b:
        assert (await on_b.join(topic)).ok
        await a.runtime.chat.send(conversation, user.id, "one", None)
        assert await new_msgs(on_b, topic, 1) == [1]
        # Seq 2 is stored but never published (as if its NOTIFY had been lost) ...
        await store_unpublished(a, conversation, user.id, "two")
        # ... so seq 3 waits on b until seq 2 is read from the database, and both arrive in order.
        await a.runtime.chat.send(conversation, user.id, "three", None)
        first = await on_b.receive("new_msg", topic, timeout=30)
        second = await on_b.receive("new_msg", topic, timeout=30)
        assert [first.payload["seq"], first.payload["body"]] == [2, "two"]
        assert second.payload["seq"] == 3
        assert cluster_of(b).sequencer.stats.gap_messages_filled == 1


async def store_unpublished(
    node: Realtime, conversation: uuid.UUID, sender: uuid.UUID, body: str
) -> None:
    batch = WriteBatch([NewMessage(conversation, sender, body, None)])
    done = trio.Event()
    batch.when_done(lambda _: done.set())
    await node.runtime.writer.submit(batch)
    await done.wait()


async def logout_all(node: Realtime, user: User) -> None:
    async with httpx.AsyncClient(base_url=node.http) as http:
        response = await http.post(
            "/api/auth/logout_all", headers={"Authorization": f"Bearer {user.token}"}
        )
        assert response.status_code == 204, response.text


async def test_failed_logins_count_on_every_node(nodes: list[Realtime]) -> None:
    a, b, c = nodes
    limit = a.context.settings.auth.login_failures_per_account
    login = {"email": f"nobody-{uuid.uuid4().hex[:8]}@example.com", "password": "not it at all"}
    for index in range(limit):
        async with httpx.AsyncClient(base_url=(a, b)[index % 2].http) as http:
            assert (await http.post("/api/auth/login", json=login)).status_code == 401
    await wait_until(
        lambda: not c.context.throttle.check_login(login["email"], "127.0.0.1").allowed,
        "c counted the failures of a and b",
    )
    async with httpx.AsyncClient(base_url=c.http) as http:
        refused = await http.post("/api/auth/login", json=login)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
