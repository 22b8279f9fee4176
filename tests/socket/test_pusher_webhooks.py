"""Pusher sockets over the real channel core, with the webhook recorder as their hooks and on the
node's pubsub and presence, on virtual time (autojump clock): a user whose socket drops and who
is back within the hold causes no member_removed, one who stays away causes it after the hold,
and client events and cache misses reach the recorder from the socket path."""

from __future__ import annotations

from dataclasses import replace

import trio
import trio.testing

from parley.api.socket.pusher.connect import PusherConnect
from parley.api.socket.pusher.routes import pusher_routes
from parley.config import WebhookSettings
from parley.integrations.webhooks.events import Noted
from parley.integrations.webhooks.recorder import WebhookRecorder
from tests.socket.test_pusher_channels import KEY, PusherCase, pusher_case, settings

HOLD = WebhookSettings().hold_seconds


class Outbox:
    def __init__(self) -> None:
        self.noted: list[Noted] = []

    async def __call__(self, batch: list[Noted]) -> list[Noted]:
        await trio.lowlevel.checkpoint()
        self.noted += batch
        return batch

    def names(self, user_id: str | None = None) -> list[str]:
        return [n.name for n in self.noted if user_id is None or n.event.get("user_id") == user_id]


async def hooked(pc: PusherCase) -> Outbox:
    """Plug a recorder into the case as the composition root does."""
    outbox = Outbox()
    case = pc.case
    recorder = WebhookRecorder(
        WebhookSettings(), lambda topic, key: len(case.presence.get(topic, key)), outbox
    )
    case.pubsub.watch("app:", recorder.count)
    case.presence.watch(recorder.presence)
    await case.nursery.start(recorder.run)
    pc.ports = replace(pc.ports, hooks=recorder)
    pc.connect = PusherConnect(
        pc.directory, pc.ports.settings, pusher_routes(pc.ports), case.hub.namespace_count
    )
    return outbox


async def test_a_pusher_user_back_within_the_hold_causes_no_member_removed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with pusher_case(settings()) as pc:
        outbox = await hooked(pc)
        watcher, user = await pc.client(), await pc.client()
        await watcher.subscribe("presence-r", "w")
        await user.subscribe("presence-r", "u")
        await trio.sleep(1)
        assert outbox.names("u") == ["member_added"]
        await user.connection.client_leaves()  # the socket drops...
        await trio.sleep(HOLD - 1)
        again = await pc.client()  # ...and the user is back on a new one
        await again.subscribe("presence-r", "u")
        await trio.sleep(HOLD * 3)
        assert outbox.names("u") == ["member_added"]
        await again.connection.client_leaves()  # gone for good
        await trio.sleep(HOLD - 0.05)
        assert outbox.names("u") == ["member_added"]
        await trio.sleep(0.5)
        assert outbox.names("u") == ["member_added", "member_removed"]
        assert "channel_vacated" not in outbox.names()  # the watcher is still there


async def test_client_events_and_cache_misses_reach_the_recorder_from_the_socket(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with pusher_case(settings()) as pc:
        outbox = await hooked(pc)
        a, b = await pc.client(), await pc.client()
        await a.subscribe("private-c")
        await b.subscribe("private-c")
        await a.send("client-hi", {"n": 1}, "private-c")
        await a.subscribe("cache-empty")
        await trio.sleep(1)
        client_events = [n for n in outbox.noted if n.name == "client_event"]
        assert [(n.app_key, n.event) for n in client_events] == [
            (
                KEY,
                {
                    "name": "client_event",
                    "channel": "private-c",
                    "event": "client-hi",
                    "data": '{"n":1}',
                    "socket_id": a.socket_id,
                },
            )
        ]
        assert [n.event for n in outbox.noted if n.name == "cache_miss"] == [
            {"name": "cache_miss", "channel": "cache-empty"}
        ]
        refused_before = len(outbox.noted)
        await a.send("client-hi", {"n": 2}, "news")  # not relayed on a public channel...
        await trio.sleep(1)
        assert [n for n in outbox.noted[refused_before:] if n.name == "client_event"] == []
