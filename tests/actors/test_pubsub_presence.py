"""LocalPubSub and Presence on their own: fan-out, exclusion, subscriber failures, unsubscribing
during a broadcast, and presence diffs merged per broadcast period (autojump clock)."""

from __future__ import annotations

import trio
import trio.testing

from parley.actors.realtime.presence import Presence
from parley.actors.realtime.pubsub import Broadcast, LocalPubSub


class Recorder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.got: list[Broadcast] = []

    def deliver(self, broadcast: Broadcast) -> None:
        self.got.append(broadcast)

    def __repr__(self) -> str:
        return f"<Recorder {self.name}>"


class Failing:
    def deliver(self, broadcast: Broadcast) -> None:
        raise RuntimeError("a subscriber bug")


def test_one_broadcast_object_reaches_every_subscriber_but_the_excluded_one() -> None:
    pubsub = LocalPubSub()
    a, b, c = Recorder("a"), Recorder("b"), Recorder("c")
    for subscriber in (a, b, c):
        pubsub.subscribe("t", subscriber)
    pubsub.subscribe("t", a)  # idempotent
    assert pubsub.publish("t", "e", {"n": 1}) == 3
    assert pubsub.publish_from(b, "t", "e", {"n": 2}) == 2
    assert [x.payload["n"] for x in a.got] == [1, 2]
    assert [x.payload["n"] for x in b.got] == [1]
    assert a.got[0] is b.got[0] is c.got[0]  # encoded once, for everyone (the fastlane)
    assert pubsub.publish("nobody", "e", {}) == 0


def test_a_failing_subscriber_does_not_stop_the_fan_out() -> None:
    pubsub = LocalPubSub()
    before, after = Recorder("before"), Recorder("after")
    pubsub.subscribe("t", before)
    pubsub.subscribe("t", Failing())
    pubsub.subscribe("t", after)
    assert pubsub.publish("t", "e", {}) == 2
    assert len(after.got) == 1
    assert pubsub.statistics().delivery_errors == 1


def test_a_subscriber_may_unsubscribe_others_while_a_broadcast_is_delivered() -> None:
    pubsub = LocalPubSub()
    late = Recorder("late")

    class Kicker:
        def deliver(self, broadcast: Broadcast) -> None:
            pubsub.unsubscribe("t", late)
            pubsub.unsubscribe("t", self)

    pubsub.subscribe("t", Kicker())
    pubsub.subscribe("t", late)
    pubsub.publish("t", "first", {})  # delivered to a copy of the subscriber list
    pubsub.publish("t", "second", {})
    assert [x.event for x in late.got] == ["first"]
    assert pubsub.subscriber_count("t") == 0
    assert pubsub.statistics().topics == 0


async def past_a_period(clock: trio.testing.MockClock) -> None:
    """Once the presence task waits out its period, move the virtual clock past it and let the
    task broadcast."""
    await trio.testing.wait_all_tasks_blocked()
    clock.jump(0.2)
    await trio.testing.wait_all_tasks_blocked()


async def test_presence_merges_the_changes_of_a_period_into_one_diff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pubsub = LocalPubSub()
    watcher = Recorder("watcher")
    pubsub.subscribe("room", watcher)
    presence = Presence(pubsub, broadcast_period=0.1)
    async with trio.open_nursery() as nursery:
        await nursery.start(presence.run)
        alice, bob = object(), object()
        presence.track("room", alice, "alice", {"status": "here"})
        presence.track("room", bob, "bob", {})
        assert watcher.got == []  # not yet: diffs go out once per period
        await past_a_period(autojump_clock)
        (diff,) = [x.payload for x in watcher.got if x.event == "presence_diff"]
        assert set(diff["joins"]) == {"alice", "bob"} and diff["leaves"] == {}
        assert set(presence.list("room")) == {"alice", "bob"}
        presence.untrack_all(bob)
        await past_a_period(autojump_clock)
        last = watcher.got[-1].payload
        assert set(last["leaves"]) == {"bob"} and last["joins"] == {}
        assert set(presence.list("room")) == {"alice"}
        nursery.cancel_scope.cancel()
