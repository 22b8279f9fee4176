"""A database outage is no conversation's fault: a send is answered `unavailable` and the
conversation's actor stays up (crashing on every message exhausted the conversation supervisor's
restart intensity within seconds and took every conversation down, drill D2)."""

from __future__ import annotations

from tests.phoenix_client import open_phoenix_client
from tests.socket.conftest import Realtime


async def test_sends_while_the_database_is_gone_are_refused_and_nothing_crashes(
    realtime: Realtime,
) -> None:
    alice, bob = await realtime.users(2)
    conversation_id = await realtime.group(alice, bob)
    topic = f"conversation:{conversation_id}"
    database = realtime.runtime.database
    async with open_phoenix_client(realtime.url, token=alice.token) as client:
        assert (await client.join(topic, {})).ok
        await database.close()
        for number in range(50):  # more than the supervisor's intensity allows crashes
            reply = await client.push(topic, "new_msg", {"body": "x", "client_id": f"c{number}"})
            assert reply.status == "error"
            assert reply.response == {"reason": "unavailable"}
        conversations = realtime.runtime.conversations.statistics()
        assert conversations.running
        assert sum(child.restarts for child in conversations.children) == 0
        await database.connect()
        reply = await client.push(topic, "new_msg", {"body": "x", "client_id": "c0"})
        assert reply.ok, reply
        assert reply.response["seq"] == 1
