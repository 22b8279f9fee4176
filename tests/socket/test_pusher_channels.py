"""The Pusher protocol over the real channel core, without network or PostgreSQL (the
`ChannelCase` harness): real sessions, pubsub, presence, hub, the real `PusherConnect` and Pusher
routes, over an in-memory application store. Deterministic: virtual time, settled tasks."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import trio
import trio.testing

from parley.api.app_sockets import AppSockets
from parley.api.socket.core.transport import Accepted, ConnectionInfo, ConnectRequest
from parley.api.socket.pusher.connect import PusherConnect
from parley.api.socket.pusher.routes import pusher_routes
from parley.api.socket.pusher.sockets import PusherPorts, PusherSockets
from parley.config import IntegrationsSettings, PusherSettings, Settings
from parley.integrations.channel_cache import ChannelCache
from parley.integrations.directory import ApplicationDirectory
from parley.integrations.signing import channel_authorization
from parley.store.applications import Application
from tests.socket.channel_case import ChannelCase, MemoryConnection, channel_case

KEY = "b" * 20
SECRET = "s" * 40
_apps = itertools.count(1)


def application(**changes: Any) -> Application:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "id": next(_apps), "organization_id": uuid.uuid4(), "organization_slug": "acme",
        "name": "A", "app_key": KEY, "app_secret": SECRET, "secret_version": 1,
        "previous_secret": None, "previous_secret_expires_at": None, "webhook_url": None,
        "client_events": True, "max_connections": None, "archived_at": None,
        "created_at": now, "updated_at": now,
    }  # fmt: skip
    fields.update(changes)
    return Application(**fields)


class MemoryStore:
    """The application store's one read, over rows in memory."""

    def __init__(self, *rows: Application) -> None:
        self.rows = {row.app_key: row for row in rows}
        self.gate: trio.Event | None = None
        """While set, reads wait for it (a look-up that takes a while)."""

    async def get(self, app_key: str) -> Application | None:
        if self.gate is not None:
            await self.gate.wait()
        return self.rows.get(app_key)


@dataclass
class PusherClient:
    connection: MemoryConnection
    socket_id: str
    _read: int = 0

    def frames(self) -> list[dict[str, Any]]:
        decoded: list[dict[str, Any]] = [orjson.loads(f.data) for f in self.connection.frames]
        return decoded

    def take(self) -> list[dict[str, Any]]:
        got = self.frames()[self._read :]
        self._read += len(got)
        return got

    async def send(self, event: str, data: Any = None, channel: str | None = None) -> None:
        body: dict[str, Any] = {"event": event, "data": data}
        if channel is not None:
            body["channel"] = channel
        await self.connection.client_sends(orjson.dumps(body).decode())
        await trio.testing.wait_all_tasks_blocked()

    def auth(self, channel: str, channel_data: str | None = None) -> str:
        text = f"{self.socket_id}:{channel}" + ("" if channel_data is None else f":{channel_data}")
        return channel_authorization(KEY, SECRET, text)

    async def subscribe(self, channel: str, user_id: str | None = None, **info: Any) -> None:
        data: dict[str, Any] = {"channel": channel}
        if user_id is not None:
            data["channel_data"] = orjson.dumps({"user_id": user_id, "user_info": info}).decode()
        if channel.startswith(("private-", "presence-")):
            data["auth"] = self.auth(channel, data.get("channel_data"))
        await self.send("pusher:subscribe", data)

    async def signin(self, user_data: dict[str, Any]) -> None:
        raw = orjson.dumps(user_data).decode()
        auth = channel_authorization(KEY, SECRET, f"{self.socket_id}::user::{raw}")
        await self.send("pusher:signin", {"auth": auth, "user_data": raw})


class PusherCase:
    def __init__(self, case: ChannelCase, settings: Settings, *apps: Application) -> None:
        self.case = case
        self.store = MemoryStore(*apps)
        self.directory = ApplicationDirectory(self.store, settings.integrations)  # type: ignore[arg-type]
        self.ports = PusherPorts(
            directory=self.directory,
            pubsub=case.pubsub,
            presence=case.presence,
            cache=ChannelCache(ttl_seconds=60, max_channels=10),
            sockets=PusherSockets(),
            settings=settings.pusher,
            limits=settings.integrations,
        )
        self.connect = PusherConnect(
            self.directory, settings.pusher, pusher_routes(self.ports), case.hub.namespace_count
        )

    async def client(self) -> PusherClient:
        decision = await self.connect(ConnectRequest(f"/app/{KEY}", "protocol=7", {}))
        assert isinstance(decision, Accepted)
        hub = self.case.hub
        info = ConnectionInfo("memory", "pusher", None)
        handle = await hub.open_session(
            decision.principal, decision.serializer, info, decision.wire
        )
        connection = MemoryConnection()
        self.case.nursery.start_soon(self.case._serve, connection, handle)
        await trio.testing.wait_all_tasks_blocked()
        client = PusherClient(connection, "")
        (established,) = client.take()
        assert established["event"] == "pusher:connection_established"
        client.socket_id = orjson.loads(established["data"])["socket_id"]
        return client


def settings(**pusher: Any) -> Settings:
    return Settings(
        pusher=PusherSettings(**pusher), integrations=IntegrationsSettings(max_user_info_bytes=64)
    )


@asynccontextmanager
async def pusher_case(
    config: Settings, *apps: Application, presence_period: float = 0.0
) -> AsyncIterator[PusherCase]:
    async with channel_case(config, presence_period=presence_period) as case:
        yield PusherCase(case, config, *(apps or (application(),)))


def events(frames: list[dict[str, Any]]) -> list[str]:
    return [f["event"] for f in frames]


async def test_subscribe_unsubscribe_and_the_socket_stays_after_a_refusal() -> None:
    async with pusher_case(settings()) as pc:
        a = await pc.client()
        await a.subscribe("news")
        assert a.take() == [
            {"event": "pusher_internal:subscription_succeeded", "channel": "news", "data": "{}"}
        ]
        await a.send("pusher:subscribe", {"channel": "private-x", "auth": f"{KEY}:nope"})
        (refused,) = a.take()
        assert refused["event"] == "pusher:subscription_error"
        assert orjson.loads(refused["data"]) == {
            "type": "AuthError",
            "error": "invalid signature",
            "status": 401,
        }
        await a.send("pusher:unsubscribe", {"channel": "news"})
        assert a.take() == []
        assert pc.case.pubsub.subscriber_count(f"app:{KEY}:news") == 0
        await a.send("pusher:ping", {})
        assert events(a.take()) == ["pusher:pong"]


async def test_presence_is_per_user_and_one_view_with_other_presences() -> None:
    async with pusher_case(settings()) as pc:
        topic = f"app:{KEY}:presence-r"
        phoenix_socket = object()  # a Phoenix end user's join, tracked as AppChannel does
        pc.case.presence.track(topic, phoenix_socket, "phx", {"user_info": {"n": "phx"}})
        watcher, tab1, tab2 = await pc.client(), await pc.client(), await pc.client()
        await watcher.subscribe("presence-r", "w", n="w")
        (ok,) = watcher.take()
        assert orjson.loads(ok["data"])["presence"]["ids"] == ["phx", "w"]
        await tab1.subscribe("presence-r", "u", n="u")
        await tab2.subscribe("presence-r", "u", n="u")
        assert [(f["event"], orjson.loads(f["data"])["user_id"]) for f in watcher.take()] == [
            ("pusher_internal:member_added", "u")
        ]
        assert events(tab1.take()) == ["pusher_internal:subscription_succeeded"]  # not itself
        await tab1.connection.client_leaves()
        await trio.testing.wait_all_tasks_blocked()
        assert watcher.take() == []
        await tab2.send("pusher:unsubscribe", {"channel": "presence-r"})
        pc.case.presence.untrack(topic, phoenix_socket)
        await trio.testing.wait_all_tasks_blocked()
        removed = [orjson.loads(f["data"])["user_id"] for f in watcher.take()]
        assert removed == ["u", "phx"]


def members_heard(client: PusherClient, channel: str) -> list[str]:
    """Every user a presence subscriber was told of, in order: its subscription_succeeded's
    list, then each member_added (a user twice here is the duplicate Pusher never sends)."""
    heard: list[str] = []
    for f in client.frames():
        if f.get("channel") != channel:
            continue
        if f["event"] == "pusher_internal:subscription_succeeded":
            heard += orjson.loads(f["data"])["presence"]["ids"]
        elif f["event"] == "pusher_internal:member_added":
            heard.append(orjson.loads(f["data"])["user_id"])
    return heard


async def test_a_member_pending_at_subscription_is_not_added_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with pusher_case(settings(), presence_period=0.1) as pc:
        early, member, late = await pc.client(), await pc.client(), await pc.client()
        await early.subscribe("presence-churn", "e")
        autojump_clock.jump(1)
        await member.subscribe("presence-churn", "m")  # tracked; its diff waits for the period
        await late.subscribe("presence-churn", "l")  # the snapshot already lists "m"
        autojump_clock.jump(1)
        await trio.testing.wait_all_tasks_blocked()
        assert members_heard(late, "presence-churn") == ["e", "m", "l"]
        assert members_heard(early, "presence-churn") == ["e", "m", "l"]
        assert members_heard(member, "presence-churn") == ["e", "m", "l"]


async def test_a_member_added_while_the_subscription_is_decided_is_not_added_again() -> None:
    async with pusher_case(settings()) as pc:
        topic = f"app:{KEY}:presence-race"
        watcher = await pc.client()
        pc.directory.forget([KEY])
        pc.store.gate = gate = trio.Event()
        await watcher.subscribe("presence-race", "w")  # waits in the application look-up
        pc.case.presence.track(topic, object(), "u", {"user_info": {"n": "u"}})  # broadcast now
        gate.set()
        await trio.testing.wait_all_tasks_blocked()
        assert members_heard(watcher, "presence-race") == ["u", "w"]


async def test_presence_limits() -> None:
    async with pusher_case(settings(max_presence_members=2)) as pc:
        a, b, c = await pc.client(), await pc.client(), await pc.client()
        await a.subscribe("presence-full", "1")
        await b.subscribe("presence-full", "2")
        await c.subscribe("presence-full", "3")
        (full,) = c.take()
        assert orjson.loads(full["data"])["type"] == "LimitReached"
        await c.subscribe("presence-full", "1")  # a second tab of a member still fits
        assert events(c.take()) == ["pusher_internal:subscription_succeeded"]
        await c.subscribe("presence-big", "4", blob="x" * 100)  # user_info over 64 bytes here
        await c.subscribe("presence-long", "x" * 129)
        assert [orjson.loads(f["data"])["type"] for f in c.take()] == ["InvalidChannelData"] * 2


async def test_client_events_and_their_rate(autojump_clock: trio.testing.MockClock) -> None:
    async with pusher_case(settings(client_events_per_second=2)) as pc:
        a, b = await pc.client(), await pc.client()
        for client in (a, b):
            await client.subscribe("private-c")
            client.take()
        for n in range(3):
            await a.send("client-n", {"n": n}, "private-c")
        relayed = b.take()
        assert [orjson.loads(f["data"]) for f in relayed] == [{"n": 0}, {"n": 1}]
        assert [f["data"]["code"] for f in a.take()] == [4301]
        autojump_clock.jump(1)
        await a.send("client-n", {"n": 3}, "private-c")
        assert [orjson.loads(f["data"]) for f in b.take()] == [{"n": 3}]
        await a.send("client-n", {"n": 4}, "news")  # not subscribed
        assert events(a.take()) == ["pusher:error"]
        autojump_clock.jump(1)
        await a.send("client-n", "x" * 10_239, "private-c")  # 10,241 bytes encoded
        assert events(a.take()) == ["pusher:error"]
        await a.send("client-n", "x" * 10_238, "private-c")  # 10,240: the limit itself
        assert a.take() == []
        assert [f["data"] for f in b.take()] == ["x" * 10_238]


async def test_liveness_closes_with_4201_and_drain_with_4200(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = settings(activity_timeout_seconds=10, pong_wait_seconds=5)
    async with pusher_case(config) as pc:
        await pc.case.nursery.start(pc.case.hub.watch_liveness)
        quiet, chatty = await pc.client(), await pc.client()
        for _ in range(4):
            autojump_clock.jump(4)
            await chatty.send("pusher:ping", {})
            await trio.testing.wait_all_tasks_blocked()
        assert quiet.connection.closed == (4201, "idle timeout")
        assert quiet.frames()[-1]["data"]["code"] == 4201
        assert chatty.connection.closed is None
        pc.case.hub.close_all()
        await trio.testing.wait_all_tasks_blocked()
        assert chatty.connection.closed is not None and chatty.connection.closed[0] == 4200


async def test_signin_one_user_per_socket_watchlist_limit_and_terminate() -> None:
    async with pusher_case(settings(max_watchlist=1)) as pc:
        app_sockets = AppSockets(pc.case.hub, pc.directory)
        a, other = await pc.client(), await pc.client()
        await a.signin({"id": "u1", "watchlist": ["x", "y"]})
        got = a.take()
        assert events(got) == ["pusher:signin_success", "pusher:error"]
        assert got[1]["data"]["code"] == 4302
        await a.signin({"id": "u2"})
        (refused,) = a.take()
        assert refused["data"]["code"] == 4009
        await a.subscribe("#server-to-user-u2")
        assert events(a.take()) == ["pusher:subscription_error"]
        await a.subscribe("#server-to-user-u1")
        assert events(a.take()) == ["pusher_internal:subscription_succeeded"]
        app_sockets.close_end_user(KEY, "u1")
        await trio.testing.wait_all_tasks_blocked()
        assert a.connection.closed == (4009, "terminated")
        assert other.connection.closed is None


async def test_an_archived_app_and_a_wrong_protocol_are_dismissed() -> None:
    async with pusher_case(settings(), application(archived_at=datetime.now(UTC))) as pc:
        archived = await pc.connect(ConnectRequest(f"/app/{KEY}", "protocol=7", {}))
        old = await pc.connect(ConnectRequest(f"/app/{KEY}", "protocol=5", {}))
        nowhere = await pc.connect(ConnectRequest(f"/app/{KEY}/x", "protocol=7", {}))
        assert [getattr(d, "code", None) for d in (archived, old, nowhere)] == [4003, 4007, 4005]
