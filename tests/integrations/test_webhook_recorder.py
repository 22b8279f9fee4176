"""The webhook recorder over the real LocalPubSub and Presence, on virtual time (autojump clock):
occupancy and members derived from subscriber counts and presence whatever the protocol, the
3 s hold of channel_vacated / member_removed (dropped when the channel or the user is back in
time), batched writes, subscription_count coalesced, the Pusher hooks, bounds; and the back-off
and give-up rule."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import trio
import trio.testing

from parley.actors.realtime.presence import Presence
from parley.actors.realtime.pubsub import Broadcast, LocalPubSub
from parley.config import WebhookSettings
from parley.integrations.webhooks.events import Noted
from parley.integrations.webhooks.recorder import WebhookRecorder
from parley.integrations.webhooks.retry import backoff, retry_delay
from parley.store.database import StoreUnavailable

KEY = "0123456789abcdef0123"
SETTINGS = WebhookSettings()


class Socket:
    """A subscriber, as a Phoenix or a Pusher channel instance is to pubsub."""

    def deliver(self, broadcast: Broadcast) -> None:
        return None


class Outbox:
    """What the recorder writes through (the outbox sink's place): every write, in order."""

    def __init__(self) -> None:
        self.writes: list[list[Noted]] = []
        self.fail_next = 0

    async def __call__(self, batch: list[Noted]) -> list[Noted]:
        await trio.lowlevel.checkpoint()
        if self.fail_next:
            self.fail_next -= 1
            raise StoreUnavailable("database is not connected")
        self.writes.append(list(batch))
        return batch

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Those of `name`, or all but `subscription_count` (which every count change adds)."""
        return [
            n.event
            for w in self.writes
            for n in w
            if n.name == name or (name is None and n.name != "subscription_count")
        ]


class World:
    def __init__(self, settings: WebhookSettings = SETTINGS) -> None:
        self.pubsub = LocalPubSub()
        self.presence = Presence(self.pubsub)
        self.outbox = Outbox()
        self.recorder = WebhookRecorder(
            settings, lambda topic, key: len(self.presence.get(topic, key)), self.outbox
        )
        self.pubsub.watch("app:", self.recorder.count)
        self.presence.watch(self.recorder.presence)

    def topic(self, channel: str) -> str:
        return f"app:{KEY}:{channel}"


@pytest.fixture
async def world(nursery: trio.Nursery, autojump_clock: trio.testing.MockClock) -> World:
    found = World()
    await nursery.start(found.recorder.run)
    return found


async def test_occupied_once_for_every_subscriber_whatever_its_protocol_and_vacated_after_hold(
    world: World,
    autojump_clock: trio.testing.MockClock,
) -> None:
    phoenix, pusher = Socket(), Socket()
    topic = world.topic("scores")
    world.pubsub.subscribe(topic, phoenix)
    world.pubsub.subscribe(topic, pusher)
    world.pubsub.subscribe(topic, pusher)  # idempotent: no change, no note
    await trio.sleep(0.2)
    assert world.outbox.events("channel_occupied") == [
        {"name": "channel_occupied", "channel": "scores"}
    ]
    assert len(world.outbox.writes) == 1  # one write for everything of the moment
    world.pubsub.unsubscribe(topic, phoenix)
    world.pubsub.unsubscribe(topic, pusher)
    start = trio.current_time()
    await trio.sleep(SETTINGS.hold_seconds - 0.01)
    assert world.outbox.events("channel_vacated") == []
    await trio.sleep(0.2)
    assert world.outbox.events("channel_vacated") == [
        {"name": "channel_vacated", "channel": "scores"}
    ]
    assert trio.current_time() - start < SETTINGS.hold_seconds + 0.2
    assert world.recorder.statistics().recorded["channel_occupied"] == 1


async def test_a_channel_occupied_again_within_the_hold_sends_nothing(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    topic = world.topic("blinks")
    first, second = Socket(), Socket()
    world.pubsub.subscribe(topic, first)
    await trio.sleep(0.2)
    world.pubsub.unsubscribe(topic, first)
    await trio.sleep(SETTINGS.hold_seconds - 0.5)
    world.pubsub.subscribe(topic, second)  # a reconnect
    await trio.sleep(SETTINGS.hold_seconds * 3)
    assert [e["name"] for e in world.outbox.events()] == ["channel_occupied"]
    assert world.recorder.statistics().cancelled == {"channel_vacated": 1}
    world.pubsub.unsubscribe(topic, second)
    await trio.sleep(SETTINGS.hold_seconds + 0.2)
    assert [e["name"] for e in world.outbox.events()] == ["channel_occupied", "channel_vacated"]


async def test_member_removed_waits_the_hold_and_a_user_back_in_time_causes_nothing(
    world: World,
    autojump_clock: trio.testing.MockClock,
) -> None:
    topic = world.topic("presence-room")
    tab1, tab2, reconnected = object(), object(), object()
    world.presence.track(topic, tab1, "u1", {"user_info": {"name": "A"}})
    world.presence.track(topic, tab2, "u1", {})  # a second tab: the same user, nothing new
    await trio.sleep(0.2)
    assert world.outbox.events("member_added") == [
        {"name": "member_added", "channel": "presence-room", "user_id": "u1"}
    ]
    world.presence.untrack(topic, tab1)
    await trio.sleep(0.2)
    world.presence.untrack(topic, tab2)  # the user's last connection goes
    await trio.sleep(SETTINGS.hold_seconds - 0.5)
    world.presence.track(topic, reconnected, "u1", {})  # ...and is back within the hold
    await trio.sleep(SETTINGS.hold_seconds * 3)
    assert world.outbox.events("member_removed") == []
    assert len(world.outbox.events("member_added")) == 1
    world.presence.untrack(topic, reconnected)  # gone for good
    await trio.sleep(SETTINGS.hold_seconds - 0.01)
    assert world.outbox.events("member_removed") == []
    await trio.sleep(0.2)
    assert world.outbox.events("member_removed") == [
        {"name": "member_removed", "channel": "presence-room", "user_id": "u1"}
    ]


async def test_member_events_follow_presence_not_the_diffs_when_diffs_are_merged(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    world = World()
    world.presence = Presence(world.pubsub, broadcast_period=0.05)
    world.presence.watch(world.recorder.presence)
    nursery.start_soon(world.presence.run)
    await nursery.start(world.recorder.run)
    topic = world.topic("presence-merged")
    one, two = object(), object()
    world.presence.track(topic, one, "u", {})
    world.presence.untrack(topic, one)
    world.presence.track(topic, two, "u", {})  # all in one merged diff: u is there
    await trio.sleep(1)
    assert [e["name"] for e in world.outbox.events()] == ["member_added"]


async def test_only_an_applications_channels_count(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    for topic in (
        "conversation:1",
        f"app:{KEY}",
        f"app:{KEY}:user:u1",
        f"app:{KEY}:#users",
        "system:general",
    ):
        world.pubsub.subscribe(topic, Socket())
    world.presence.track(f"app:{KEY}:#users", object(), "u1", {})
    world.presence.track("system:general", object(), "u1", {})
    world.presence.track(world.topic("not-presence"), object(), "u1", {})
    await trio.sleep(1)
    assert world.outbox.writes == []


async def test_subscription_counts_are_coalesced_per_write_and_not_sent_for_presence(
    world: World,
    autojump_clock: trio.testing.MockClock,
) -> None:
    topic = world.topic("counted")
    sockets = [Socket() for _ in range(3)]
    for socket in sockets:
        world.pubsub.subscribe(topic, socket)
    world.pubsub.subscribe(world.topic("presence-x"), Socket())
    await trio.sleep(0.2)
    assert world.outbox.events("subscription_count") == [
        {"name": "subscription_count", "channel": "counted", "subscription_count": 3}
    ]
    world.pubsub.unsubscribe(topic, sockets[0])
    await trio.sleep(0.2)
    assert world.outbox.events("subscription_count")[-1]["subscription_count"] == 2


async def test_client_events_and_cache_misses_from_the_pusher_hooks(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    world.recorder.client_event(KEY, "private-chat", "client-typing", {"a": 1}, "1.2", None)
    world.recorder.client_event(KEY, "presence-chat", "client-typing", "raw", "3.4", "u9")
    world.recorder.cache_miss(KEY, "cache-scores")
    await trio.sleep(0.2)
    assert world.outbox.events() == [
        {
            "name": "client_event",
            "channel": "private-chat",
            "event": "client-typing",
            "data": '{"a":1}',
            "socket_id": "1.2",
        },
        {
            "name": "client_event",
            "channel": "presence-chat",
            "event": "client-typing",
            "data": "raw",
            "socket_id": "3.4",
            "user_id": "u9",
        },
        {"name": "cache_miss", "channel": "cache-scores"},
    ]
    assert world.outbox.writes[0][0].app_key == KEY


async def test_writes_are_batched_and_a_database_away_loses_nothing(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    world.outbox.fail_next = 2
    for n in range(3):
        world.recorder.cache_miss(KEY, f"cache-{n}")
    await trio.sleep(0.05)
    assert world.outbox.writes == []  # within record_flush_ms: still gathering
    await trio.sleep(2)
    assert [len(w) for w in world.outbox.writes] == [3]
    assert world.recorder.statistics().write_errors == 2


async def test_at_most_record_batch_max_per_write_and_record_max_pending_waiting(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    world = World(replace(SETTINGS, record_batch_max=2, record_max_pending=5))
    for n in range(7):
        world.recorder.cache_miss(KEY, f"cache-{n}")
    assert world.recorder.statistics().dropped == 2
    await nursery.start(world.recorder.run)
    await trio.sleep(1)
    assert [len(w) for w in world.outbox.writes] == [2, 2, 1]


async def test_stopping_writes_what_is_held(autojump_clock: trio.testing.MockClock) -> None:
    world = World()
    topic = world.topic("closing")
    socket = Socket()
    async with trio.open_nursery() as nursery:
        await nursery.start(world.recorder.run)
        world.pubsub.subscribe(topic, socket)
        await trio.sleep(0.2)
        world.pubsub.unsubscribe(topic, socket)
        nursery.cancel_scope.cancel()
    assert [e["name"] for e in world.outbox.events()] == ["channel_occupied", "channel_vacated"]


def test_backoff_doubles_from_the_base_to_the_cap() -> None:
    assert [backoff(n, SETTINGS) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff(10_000, SETTINGS) == SETTINGS.backoff_max_seconds


def test_retries_stop_at_the_give_up_age_and_the_last_is_made_then() -> None:
    assert retry_delay(1, 0.0, SETTINGS) == 1.0
    assert retry_delay(9, 100.0, SETTINGS) == 60.0
    assert retry_delay(9, 290.0, SETTINGS) == pytest.approx(10.0)  # not past the 300 s
    assert retry_delay(9, 300.0, SETTINGS) is None
    assert retry_delay(1, 301.0, SETTINGS) is None


async def test_applications_that_surely_want_no_webhooks_are_not_even_noted(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    world = World()
    silent = "f" * 20
    world.recorder = WebhookRecorder(
        SETTINGS, lambda topic, key: 0, world.outbox, lambda app_key: app_key != silent
    )
    world.pubsub.watch("app:", world.recorder.count)
    await nursery.start(world.recorder.run)
    socket = Socket()
    world.pubsub.subscribe(f"app:{silent}:quiet", socket)
    world.recorder.client_event(silent, "private-x", "client-x", {}, "1.1", None)
    world.pubsub.subscribe(world.topic("loud"), socket)
    world.pubsub.unsubscribe(f"app:{silent}:quiet", socket)
    await trio.sleep(SETTINGS.hold_seconds + 1)
    assert {n.app_key for w in world.outbox.writes for n in w} == {KEY}
    assert world.recorder.statistics().held == 0
