"""The integration rules without a server: topics, what an end user may join, trigger parsing,
organization slugs, and the application cache's invalidation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import trio

from parley.config import IntegrationsSettings
from parley.integrations import topics
from parley.integrations.applications import accepted_secrets
from parley.integrations.directory import ApplicationDirectory
from parley.integrations.end_users import EndUser, join_refusal
from parley.integrations.organizations import Standing, slugify, standing
from parley.integrations.triggers import TriggerError, TriggerLimits, parse_trigger
from parley.store.applications import Application

LIMITS = TriggerLimits(max_data_bytes=10_240, max_channels=100, max_channel_chars=200,
                       max_subject_chars=128)  # fmt: skip
KEY = "a" * 20


def app(key: str = KEY, **changes: object) -> Application:
    now = datetime.now(UTC)
    fields: dict[str, object] = {
        "id": 1, "organization_id": uuid.uuid4(), "organization_slug": "acme", "name": "A",
        "app_key": key, "app_secret": "s" * 40, "secret_version": 2, "previous_secret": None,
        "previous_secret_expires_at": None, "webhook_url": None, "client_events": False,
        "max_connections": None, "archived_at": None, "created_at": now, "updated_at": now,
    }  # fmt: skip
    fields.update(changes)
    return Application(**fields)  # type: ignore[arg-type]


def test_topics_parse_back_into_what_they_name() -> None:
    assert topics.parse(f"app:{KEY}") == topics.AppTopic(KEY, "broadcast", "")
    assert topics.parse(f"app:{KEY}:news") == topics.AppTopic(KEY, "channel", "news")
    assert topics.parse(f"app:{KEY}:user:u:1") == topics.AppTopic(KEY, "user", "u:1")
    assert topics.parse(f"app:{KEY}:user") == topics.AppTopic(KEY, "channel", "user")
    for bad in ("app", "app:", "apps:k", f"app:{KEY}:", f"app:{KEY}:user:", f"app:{KEY}:a:b"):
        assert topics.parse(bad) is None, bad


def test_an_end_user_may_join_their_broadcast_channels_and_own_topic_only() -> None:
    user = EndUser(1, KEY, "ann", None, None, 1, None)
    assert join_refusal(user, f"app:{KEY}", 200) is None
    assert join_refusal(user, f"app:{KEY}:news", 200) is None
    assert join_refusal(user, f"app:{KEY}:user:ann", 200) is None
    assert join_refusal(user, f"app:{KEY}:user:bob", 200) == "another end user's topic"
    assert join_refusal(user, f"app:{'b' * 20}:news", 200) == "not a topic of this application"
    assert join_refusal(user, f"app:{KEY}:private-x", 200) is not None
    assert join_refusal(user, f"app:{KEY}:{'c' * 201}", 200) == "not a channel name"
    listed = EndUser(1, KEY, "ann", ("private-x", "room-*"), None, 1, None)
    assert join_refusal(listed, f"app:{KEY}:private-x", 200) is None
    assert join_refusal(listed, f"app:{KEY}:room-9", 200) is None
    assert join_refusal(listed, f"app:{KEY}:news", 200) is not None


def test_query_parameters_become_the_data_but_routing_and_signing_ones_do_not() -> None:
    query = [("name", "John"), ("message", "Hello"), ("uid", "akita"), ("direct", "true"),
             ("auth_key", KEY), ("auth_signature", "x")]  # fmt: skip
    trigger = parse_trigger(KEY, "new_message", query, None, LIMITS)
    assert trigger.topics == (f"app:{KEY}:user:akita",)
    assert trigger.payload == {"name": "John", "message": "Hello"}
    broadcast = parse_trigger(KEY, "e", [("channel", "a"), ("channel", "a")], None, LIMITS)
    assert broadcast.topics == (f"app:{KEY}:a",)


@pytest.mark.parametrize(
    ("data", "payload"),
    [
        ({"a": 1}, {"a": 1}),
        ('{"a": 1}', {"a": 1}),
        ("{not json", {"data": "{not json"}),
        ("[1]", {"data": "[1]"}),
        (5, {"data": 5}),
    ],
)
def test_a_body_data_becomes_an_object_payload(data: object, payload: object) -> None:
    assert parse_trigger(KEY, "e", [], {"data": data}, LIMITS).payload == payload


def test_data_of_exactly_ten_kilobytes_passes_and_one_byte_more_is_413() -> None:
    assert parse_trigger(KEY, "e", [], {"data": "x" * 10_240}, LIMITS).payload
    with pytest.raises(TriggerError) as too_big:
        parse_trigger(KEY, "e", [], {"data": "x" * 10_241}, LIMITS)
    assert too_big.value.status == 413
    channels = {"channels": [f"c{i}" for i in range(100)]}
    assert len(parse_trigger(KEY, "e", [], channels, LIMITS).topics) == 100


def test_slugs_and_standing() -> None:
    assert slugify("Acme, Inc.") == "acme-inc"
    assert slugify("Café Ünïcode") == "cafe-unicode"
    assert slugify("!!!") == ""
    assert standing(None, site_admin=False) is Standing.NONE
    assert standing(False, site_admin=False) is Standing.MEMBER
    assert standing(True, site_admin=False) is Standing.ADMIN
    assert standing(None, site_admin=True) is Standing.ADMIN


def test_the_previous_secret_is_accepted_until_its_expiry() -> None:
    now = datetime.now(UTC)
    rotated = app(previous_secret="p" * 40, previous_secret_expires_at=now + timedelta(seconds=5))
    assert [s.version for s in accepted_secrets(rotated, now)] == [2, 1]
    assert [s.version for s in accepted_secrets(rotated, now + timedelta(seconds=6))] == [2]


class CountingStore:
    """The application store's read, counted, with a gate to hold a read half-way."""

    def __init__(self) -> None:
        self.rows: dict[str, Application] = {KEY: app()}
        self.gate: trio.Event | None = None

    async def get(self, app_key: str) -> Application | None:
        if self.gate is not None:
            await self.gate.wait()
        return self.rows.get(app_key)


async def test_the_directory_answers_from_memory_until_forgotten_or_expired() -> None:
    store = CountingStore()
    clock = [0.0]
    settings = IntegrationsSettings(app_cache_seconds=10, unknown_app_cache_size=2)
    directory = ApplicationDirectory(store, settings, clock=lambda: clock[0])  # type: ignore[arg-type]
    assert await directory.get(KEY) is not None
    assert await directory.get(KEY) is not None
    assert directory.reads == 1
    directory.forget([KEY])
    assert await directory.get(KEY) is not None
    assert directory.reads == 2
    clock[0] = 11
    await directory.get(KEY)
    assert directory.reads == 3
    for unknown in ("x", "y", "z", "x"):
        assert await directory.get(unknown) is None
    assert directory.reads == 7  # at most 2 unknown keys: z evicted x (the oldest), read again
    assert await directory.get("z") is None
    assert directory.reads == 7


async def test_a_read_under_way_when_its_key_is_forgotten_is_not_kept() -> None:
    store = CountingStore()
    directory = ApplicationDirectory(store, IntegrationsSettings())  # type: ignore[arg-type]
    store.gate = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(directory.get, KEY)
        await trio.testing.wait_all_tasks_blocked()
        store.rows[KEY] = app(archived_at=datetime.now(UTC))
        directory.forget([KEY])
        store.gate.set()
    store.gate = None
    assert directory.cached(KEY) is None
    fresh = await directory.get(KEY)
    assert fresh is not None and fresh.archived_at is not None


async def test_concurrent_look_ups_of_an_expired_key_share_one_read() -> None:
    store = CountingStore()
    directory = ApplicationDirectory(store, IntegrationsSettings())  # type: ignore[arg-type]
    store.gate = trio.Event()
    found: list[Application | None] = []

    async def look_up() -> None:
        found.append(await directory.get(KEY))

    async with trio.open_nursery() as nursery:
        for _ in range(50):
            nursery.start_soon(look_up)
        await trio.testing.wait_all_tasks_blocked()
        store.gate.set()
    assert directory.reads == 1
    assert len(found) == 50 and all(a is not None and a.app_key == KEY for a in found)


async def test_an_expired_copy_answers_while_one_read_renews_it() -> None:
    store = CountingStore()
    clock = [0.0]
    settings = IntegrationsSettings(app_cache_seconds=10)
    directory = ApplicationDirectory(store, settings, clock=lambda: clock[0])  # type: ignore[arg-type]
    assert await directory.get(KEY) is not None
    clock[0] = 11
    store.gate = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(directory.get, KEY)
        await trio.testing.wait_all_tasks_blocked()
        assert await directory.get(KEY) is not None  # the expired copy, at once
        store.gate.set()
    assert directory.reads == 2
