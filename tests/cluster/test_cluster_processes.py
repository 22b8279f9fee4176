"""Three `parley serve` processes on one database, over each bus adapter, as an operator runs
them: a node's bus cut through a proxy and restored, a node killed with SIGKILL, a node paused
past the node timeout (DESIGN §8). Slow: real processes, real timeouts."""

from __future__ import annotations

import contextlib
import signal
import uuid
from pathlib import Path

import httpx
import pytest
import trio

from tests.cluster.nodes import (
    Member,
    PresenceView,
    cluster_environment,
    eventually,
    make_members,
    proxied_database,
    proxied_tcp,
    running_nodes,
)
from tests.cluster.redis_server import RedisServer
from tests.phoenix_client import PhoenixClient, open_phoenix_client

pytestmark = [pytest.mark.trio, pytest.mark.slow]


@pytest.mark.parametrize("engine", ["postgres", "redis"])
async def test_three_nodes_through_a_cut_bus_a_kill_and_a_pause(
    tmp_path: Path,
    database_url: str,
    engine: str,
    request: pytest.FixtureRequest,
    nursery: trio.Nursery,
) -> None:
    if engine == "postgres":
        proxy, b_database = await proxied_database(nursery, database_url)
        shared = cluster_environment(database_url, adapter="postgres")
        cut_off = cluster_environment(b_database, adapter="postgres")
    else:
        redis: RedisServer = request.getfixturevalue("redis_server")
        proxy, port = await proxied_tcp(nursery, redis.port)
        channel = f"parley_drill_{uuid.uuid4().hex[:8]}"
        shared = cluster_environment(database_url, adapter="redis", channel=channel)
        shared["PARLEY_CLUSTER_REDIS_URL"] = redis.url
        cut_off = {**shared, "PARLEY_CLUSTER_REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    members, conversation = await make_members(tmp_path, database_url, 4)
    topic = f"conversation:{conversation}"
    first, second, third, revoked = members
    everyone = {member.key: 1 for member in members[:3]}
    async with (
        running_nodes(tmp_path, {"a": shared, "b": cut_off, "c": shared}) as (a, b, c),
        open_phoenix_client(a.socket_url, token=first.token) as on_a,
        open_phoenix_client(c.socket_url, token=third.token) as on_c,
        contextlib.AsyncExitStack() as stack,
    ):
        on_b = await stack.enter_async_context(
            open_phoenix_client(b.socket_url, token=second.token)
        )
        on_b_revoked = await stack.enter_async_context(
            open_phoenix_client(b.socket_url, token=revoked.token)
        )
        assert (await on_b_revoked.join(f"user:{revoked.id}")).ok
        for client in (on_a, on_b, on_c):
            assert (await client.join(topic)).ok
        view = PresenceView(on_a, topic)
        await view.until(lambda counts: counts == everyone)
        sent = Sender(on_a, topic)

        await sent.messages(1)
        assert await seqs(on_b, topic, 1) == [1]

        # The bus of b is cut: b says it is degraded; what is sent meanwhile reaches b after
        # the bus is back, filled from the database, in order.
        proxy.cut()
        await eventually(
            lambda: b.nodes()["cluster"]["bus"]["state"] == "degraded", "b is degraded"
        )
        await sent.messages(3)
        # A revocation broadcast meanwhile misses b: b rechecks its users once the bus is back.
        await logout_all(a.url, revoked)
        proxy.restore()
        await eventually(lambda: b.nodes()["cluster"]["bus"]["state"] == "up", "b is up again")
        assert (await on_b_revoked.wait_closed(timeout=60))[0] == 1001
        await sent.messages(1)
        assert await seqs(on_b, topic, 4) == [2, 3, 4, 5]
        await view.until(lambda counts: counts == everyone)

        # b is killed: its presence leaves, its client reconnects to a and recovers.
        b.signal(signal.SIGKILL)
        await view.until(lambda counts: second.key not in counts)
        await sent.messages(2)
        async with open_phoenix_client(a.socket_url, token=second.token) as moved:
            reply = await moved.join(topic, {"last_seq": 5})
            assert reply.ok
            assert reply.response["recovered"] is True
            assert [m["seq"] for m in reply.response["messages"]] == [6, 7]
            await view.until(lambda counts: counts == everyone)

            # c is paused past the node timeout: its presence leaves; once it goes on, it is back
            # once (no ghost, no duplicate), and its client has every message once, in order.
            c.signal(signal.SIGSTOP)
            await view.until(lambda counts: third.key not in counts)
            await sent.messages(2)
            c.signal(signal.SIGCONT)
            await view.until(lambda counts: counts == everyone)
            await sent.messages(1)
            assert await seqs(on_c, topic, 10) == list(range(1, 11))
            assert view.counts() == everyone


class Sender:
    def __init__(self, client: PhoenixClient, topic: str) -> None:
        self._client = client
        self._topic = topic
        self._count = 0

    async def messages(self, count: int) -> None:
        for _ in range(count):
            self._count += 1
            reply = await self._client.push(
                self._topic, "new_msg", {"body": f"message {self._count}"}, timeout=30
            )
            assert reply.ok, reply.response
            assert reply.response["seq"] == self._count


async def logout_all(url: str, member: Member) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.post(
            "/api/auth/logout_all", headers={"Authorization": f"Bearer {member.token}"}
        )
        assert response.status_code == 204, response.text


async def seqs(client: PhoenixClient, topic: str, count: int) -> list[int]:
    return [
        (await client.receive("new_msg", topic, timeout=60)).payload["seq"] for _ in range(count)
    ]
