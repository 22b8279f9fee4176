"""Pusher's HTTP API without a server: the requests the official PyPI SDK signs verify with
Parley's rules (PUSHER_PROTOCOL.md §9), its bodies become triggers by the shared trigger rules,
the counts are one view of real pubsub and presence, and the directory finds applications by
their numeric id."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from pusher.http import Request
from pusher.pusher_client import PusherClient

from parley.actors.realtime.presence import Presence
from parley.actors.realtime.pubsub import Broadcast, LocalPubSub
from parley.config import IntegrationsSettings
from parley.integrations.channel_info import ChannelInfo
from parley.integrations.directory import ApplicationDirectory
from parley.integrations.pusher_events import parse_batch, parse_events, parse_info
from parley.integrations.signing import BadSignature, Secret, verify_request
from parley.integrations.triggers import TriggerError, TriggerLimits
from parley.store.applications import Application
from tests.integrations.test_rules import KEY as STORED_KEY
from tests.integrations.test_rules import CountingStore, app

KEY, SECRET = "278d425bdf160c739803", "7ad3773142a6692b25b8"
LIMITS = TriggerLimits(max_data_bytes=10_240, max_channels=100, max_channel_chars=200,
                       max_subject_chars=128)  # fmt: skip


SDK = PusherClient("3", KEY, SECRET, host="127.0.0.1", port=4000, ssl=False)
"""The PyPI SDK's REST client: `SDK.trigger.make_request(...)` is the request it would send."""


def verify(request: Request, *, now: float | None = None, secret: str = SECRET) -> Secret:
    return verify_request(
        key=KEY,
        secrets=[Secret(1, secret)],
        method=request.method,
        path=request.path,
        params=list(request.query_params.items()),
        body=request.body,
        now=time.time() if now is None else now,
        window_seconds=600,
    )


@pytest.mark.parametrize(
    "build",
    [
        lambda: SDK.trigger.make_request(["a", "b"], "e", {"x": 1}, socket_id="1.2"),
        lambda: SDK.trigger.make_request("#server-to-user-u1", "e", "text"),
        lambda: SDK.trigger_batch.make_request([{"name": "e", "channel": "a", "data": "1"}]),
        lambda: SDK.channels_info.make_request("presence-", ["user_count"]),
        lambda: SDK.channel_info.make_request("presence-r", ["user_count", "subscription_count"]),
        lambda: SDK.users_info.make_request("presence-r"),
        lambda: SDK.terminate_user_connections.make_request("u1"),
    ],
)
def test_requests_the_python_sdk_signs_verify(build: Callable[[], Request]) -> None:
    request = build()
    if request.method == "GET":
        # The SDK sends the MD5 of the empty body on GET too: it is checked, and it holds.
        assert request.query_params["body_md5"] == "d41d8cd98f00b204e9800998ecf8427e"
    assert verify(request).version == 1


def test_an_sdk_request_refused_for_each_rule() -> None:
    request = SDK.trigger.make_request("a", "e", "1")
    sent = int(request.query_params["auth_timestamp"])
    assert verify(request, now=sent + 600).version == 1  # a replay within the window: accepted
    with pytest.raises(BadSignature) as stale:
        verify(request, now=sent + 601)  # the same request replayed after the window
    assert stale.value.reason == "timestamp"
    with pytest.raises(BadSignature) as wrong_secret:
        verify(request, secret="0" * 20)
    assert wrong_secret.value.reason == "signature"
    request.body = request.body.replace(b'"e"', b'"f"')
    with pytest.raises(BadSignature) as changed:
        verify(request)
    assert changed.value.reason == "body_md5"


def events(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)


def test_an_events_body_is_a_trigger_of_the_shared_rules() -> None:
    event = parse_events(
        KEY,
        events({"name": "e", "data": '{"a":1}', "channels": ["news", "news", "#server-to-user-u1"],
                "socket_id": "1.2", "info": "subscription_count,user_count"}),
        LIMITS,
    )  # fmt: skip
    assert event.trigger.topics == (f"app:{KEY}:news", f"app:{KEY}:user:u1")
    assert event.channels == ("news", "#server-to-user-u1")
    assert event.trigger.payload == {"a": 1} and event.trigger.data == '{"a":1}'
    assert event.trigger.socket_id == "1.2"
    assert event.info == ("subscription_count", "user_count")
    single = parse_events(KEY, events({"name": "e", "data": "x", "channel": "c"}), LIMITS)
    assert single.trigger.topics == (f"app:{KEY}:c",) and single.info == ()


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"not json", 400),
        (b"[]", 400),
        (events({"data": "x", "channel": "c"}), 400),
        (events({"name": "e", "channel": "c"}), 400),
        (events({"name": "e", "data": "x"}), 400),
        (events({"name": "e", "data": "x", "channels": []}), 400),
        (events({"name": "e", "data": "x", "channels": "c"}), 400),
        (events({"name": "e", "data": "x", "channel": "c", "channels": ["c"]}), 400),
        (events({"name": "e", "data": "x", "channels": [f"c{i}" for i in range(101)]}), 422),
        (events({"name": "e", "data": "x", "channel": "bad:name"}), 422),
        (events({"name": "e", "data": "x", "channel": "c" * 201}), 422),
        (events({"name": "e", "data": "x", "channel": "#server-to-user-" + "u" * 129}), 422),
        (events({"name": "e", "data": "x" * 10_241, "channel": "c"}), 413),
        (events({"name": "pusher:x", "data": "x", "channel": "c"}), 422),
        (events({"name": "e", "data": "x", "channel": "c", "socket_id": "abc"}), 422),
        (events({"name": "e", "data": "x", "channel": "c", "info": "occupied"}), 400),
    ],
)
def test_bad_events_bodies_are_refused(raw: bytes, status: int) -> None:
    with pytest.raises(TriggerError) as refused:
        parse_events(KEY, raw, LIMITS)
    assert refused.value.status == status  # the API answers 400 for a 422 (Pusher's status)


def test_data_of_exactly_10_kb_is_taken() -> None:
    body = events({"name": "e", "data": "é" * 5_120, "channel": "c"})  # 10,240 bytes of UTF-8
    assert parse_events(KEY, body, LIMITS).trigger.data == "é" * 5_120


def test_a_batch_holds_1_to_10_events_each_checked() -> None:
    one = {"name": "e", "data": "x", "channel": "c"}
    assert len(parse_batch(KEY, events({"batch": [one] * 10}), LIMITS, 10)) == 10
    for batch in ([], [one] * 11, "x", [one, 1], [one, {**one, "channel": "bad:c"}]):
        with pytest.raises(TriggerError):
            parse_batch(KEY, events({"batch": batch}), LIMITS, 10)
    with pytest.raises(TriggerError) as refused:
        parse_batch(KEY, events({"batch": [one, {**one, "channels": ["c"]}]}), LIMITS, 10)
    assert refused.value.field == "batch[1].channel"


def test_info_names_known_attributes_only() -> None:
    assert parse_info(None) == ()
    assert parse_info("user_count, subscription_count,user_count") == (
        "user_count",
        "subscription_count",
    )
    for bad in ("cache", 3):
        with pytest.raises(TriggerError):
            parse_info(bad)


class _Subscriber:
    def deliver(self, broadcast: Broadcast) -> None:
        return None


def test_counts_are_one_view_of_pubsub_subscribers_and_presence_users() -> None:
    pubsub = LocalPubSub()
    presence = Presence(pubsub)
    info = ChannelInfo(pubsub, presence)
    room, news = f"app:{KEY}:presence-room", f"app:{KEY}:news"
    phoenix, pusher_one, pusher_two = _Subscriber(), _Subscriber(), _Subscriber()
    for subscriber in (phoenix, pusher_one, pusher_two):
        pubsub.subscribe(room, subscriber)
    pubsub.subscribe(news, phoenix)
    pubsub.subscribe(f"app:{KEY}:#users", pusher_one)  # the sign-ins: no channel
    pubsub.subscribe(f"app:{KEY}:user:u1", pusher_one)  # #server-to-user-u1: not listed
    pubsub.subscribe("app:otherkey000000000:news", phoenix)
    presence.track(room, phoenix, "phx-user", {})
    presence.track(room, pusher_one, "u1", {})
    presence.track(room, pusher_two, "u1", {})  # a second tab of the same user
    wanted = ("user_count", "subscription_count")
    assert info.channel(room, "presence-room", wanted) == {
        "occupied": True,
        "user_count": 2,
        "subscription_count": 3,
    }
    assert info.channel(news, "news", ("subscription_count",)) == {
        "occupied": True,
        "subscription_count": 1,
    }
    assert info.channel(f"app:{KEY}:quiet", "quiet", ()) == {"occupied": False}
    assert info.channels(KEY, "", ()) == {"channels": {"presence-room": {}, "news": {}}}
    assert info.channels(KEY, "presence-", ("user_count",)) == {
        "channels": {"presence-room": {"user_count": 2}}
    }
    assert info.users(room, "presence-room") == {"users": [{"id": "phx-user"}, {"id": "u1"}]}
    assert info.triggered(("news", "presence-room"), (news, room), wanted) == {
        "news": {"subscription_count": 1},  # user_count is for presence channels only
        "presence-room": {"user_count": 2, "subscription_count": 3},
    }
    refusals: list[Callable[[], object]] = [
        lambda: info.channel(news, "news", ("user_count",)),
        lambda: info.channels(KEY, "pre", ("user_count",)),
        lambda: info.users(news, "news"),
    ]
    for refused in refusals:
        with pytest.raises(TriggerError) as error:
            refused()
        assert error.value.status == 400


class ByIdStore(CountingStore):
    async def get_by_id(self, app_id: int) -> Application | None:
        return next((row for row in self.rows.values() if row.id == app_id), None)


async def test_the_directory_finds_applications_by_id_from_memory() -> None:
    store = ByIdStore()
    store.rows["b" * 20] = app("b" * 20, id=2)
    directory = ApplicationDirectory(store, IntegrationsSettings())  # type: ignore[arg-type]
    found = await directory.get_by_id(2)
    assert found is not None and found.app_key == "b" * 20
    reads = directory.reads
    assert await directory.get_by_id(2) is found  # id -> key -> the cached row: no read
    assert directory.reads == reads
    assert await directory.get_by_id(99) is None
    assert await directory.get_by_id(99) is None  # an unknown id is remembered as unknown
    assert directory.reads == reads + 1
    await directory.get(STORED_KEY)  # read by key: its id is known from then on
    reads = directory.reads
    first = await directory.get_by_id(1)
    assert first is not None and first.app_key == STORED_KEY and directory.reads == reads
    directory.forget([STORED_KEY])
    store.rows[STORED_KEY] = app(STORED_KEY, name="renamed")
    renamed = await directory.get_by_id(1)
    assert renamed is not None and renamed.name == "renamed"


def test_the_worked_example_of_section_9_verifies_and_is_the_trigger_it_describes() -> None:
    """PUSHER_PROTOCOL.md §9's vector end to end: app 3's signed `POST /apps/3/events`."""
    body = b'{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}'
    params = [
        ("auth_key", KEY),
        ("auth_timestamp", "1353088179"),
        ("auth_version", "1.0"),
        ("body_md5", "ec365a775a4cd0599faeb73354201b6f"),
        ("auth_signature", "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"),
    ]
    verified = verify_request(
        key=KEY,
        secrets=[Secret(1, SECRET)],
        method="POST",
        path="/apps/3/events",
        params=params,
        body=body,
        now=1353088179,
        window_seconds=600,
    )
    assert verified.version == 1
    event = parse_events(KEY, body, LIMITS)
    assert event.trigger.event == "foo"
    assert event.trigger.topics == (f"app:{KEY}:project-3",)
    assert event.trigger.data == '{"some":"data"}'  # as Pusher sockets get it
    assert event.trigger.payload == {"some": "data"}  # as Phoenix sockets get it
