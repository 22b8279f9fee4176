"""A conversation's actor stops after `actors.conversation_idle_seconds` without a message (the
runtime's idle watch), and the next push starts it again through the usual path."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from parley.config import Settings
from tests.phoenix_client import open_phoenix_client
from tests.socket.conftest import Realtime, socket_settings

IDLE_SECONDS = 60.0


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    # The watch's own checks never come during the test: it hands the watch the time itself.
    return socket_settings(
        tmp_path,
        database_url,
        actors={"conversation_idle_seconds": IDLE_SECONDS, "idle_check_seconds": 3600.0},
    )


async def test_an_idle_conversation_actor_stops_and_the_next_push_restarts_it(
    realtime: Realtime,
) -> None:
    alice, bob = await realtime.users(2)
    cid = await realtime.group(alice, bob)
    topic, key = f"conversation:{cid}", f"conversation:{cid}"
    registry = realtime.runtime.registry
    watch = realtime.runtime.system.idle_watch
    async with open_phoenix_client(realtime.url, token=alice.token) as ca:
        await ca.join(topic)
        assert (await ca.push(topic, "new_msg", {"body": "one"})).response["seq"] == 1
        first = registry.lookup(key)
        assert first is not None
        before_two = trio.current_time()
        assert (await ca.push(topic, "new_msg", {"body": "two"})).response["seq"] == 2
        # A check one second short of the timeout after message two: not idle yet.
        assert watch.stop_idle(before_two + IDLE_SECONDS - 1) == 0
        assert registry.lookup(key) is first
        # A check at the timeout after now stops it (once it waits again, after message two).
        with trio.fail_after(30):
            while registry.lookup(key) is not None:
                watch.stop_idle(trio.current_time() + IDLE_SECONDS)
                await trio.sleep(0.01)
        assert not first.alive
        assert (await ca.push(topic, "new_msg", {"body": "three"})).response["seq"] == 3
        second = registry.lookup(key)
        assert second is not None and second is not first
