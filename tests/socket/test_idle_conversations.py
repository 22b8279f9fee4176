"""A conversation's actor stops after `actors.conversation_idle_seconds` without a message (the
runtime's idle watch), and the next push starts it again through the usual path."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from parley.config import Settings
from tests.phoenix_client import open_phoenix_client
from tests.socket.conftest import Realtime, socket_settings


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return socket_settings(
        tmp_path,
        database_url,
        actors={"conversation_idle_seconds": 0.5, "idle_check_seconds": 0.1},
    )


async def test_an_idle_conversation_actor_stops_and_the_next_push_restarts_it(
    realtime: Realtime,
) -> None:
    alice, bob = await realtime.users(2)
    cid = await realtime.group(alice, bob)
    topic, key = f"conversation:{cid}", f"conversation:{cid}"
    registry = realtime.runtime.registry
    async with open_phoenix_client(realtime.url, token=alice.token) as ca:
        await ca.join(topic)
        assert (await ca.push(topic, "new_msg", {"body": "one"})).response["seq"] == 1
        first = registry.lookup(key)
        assert first is not None
        await trio.sleep(0.3)
        assert (await ca.push(topic, "new_msg", {"body": "two"})).response["seq"] == 2
        await trio.sleep(0.3)
        assert registry.lookup(key) is first  # a message 0.3 s ago: not idle yet
        await trio.sleep(1.0)  # well past 0.5 s + one 0.1 s check
        assert registry.lookup(key) is None and not first.alive
        assert (await ca.push(topic, "new_msg", {"body": "three"})).response["seq"] == 3
        second = registry.lookup(key)
        assert second is not None and second is not first
