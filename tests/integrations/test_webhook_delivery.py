"""The webhook outbox and deliverer against a real PostgreSQL and real local HTTP receivers:
signed as Pusher signs (checked with the PyPI SDK's own `validate_webhook`), retried with back-off
until a 2xx, given up after `give_up_seconds`, batched when the application asks, in order per
application, a slow or unreachable receiver holding up nobody else, and two nodes sharing the
table without sending a row twice. Real clock: each waits on a condition with a deadline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pusher
import pytest
import trio

from parley.config import WebhookSettings
from parley.integrations.applications import new_key, new_secret
from parley.integrations.webhooks.deliverer import WebhookDeliverer
from parley.store import Database
from parley.store.applications import (
    Application,
    ApplicationChanges,
    ApplicationStore,
    NewApplication,
)
from parley.store.organizations import OrganizationStore
from parley.store.users import UserStore
from parley.store.webhooks import NewWebhookEvent, WebhookRow, WebhookStore
from tests.polling import eventually
from tests.webhook_receiver import WebhookReceiver

FAST = replace(WebhookSettings(), backoff_base_seconds=0.2, backoff_max_seconds=0.5)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, min_size=1, max_size=4, command_timeout=30)
    await database.connect()
    try:
        yield database
    finally:
        await database.close()


class Apps:
    def __init__(self, database: Database) -> None:
        self.store = ApplicationStore(database)
        self.database = database
        self.organization: Any = None
        self.owner_id: Any = None

    async def new(self, url: str | None, *, batching: bool = False) -> Application:
        if self.organization is None:
            owner = await UserStore(self.database).create(
                email="hooks@example.com",
                username="hooksowner",
                password_hash="x" * 20,
                role="registered",
                confirmed=True,
            )
            self.owner_id = owner.id
            self.organization = await OrganizationStore(self.database).create(
                "Hooks", "hooks", owner.id
            )
        return await self.store.create(
            NewApplication(
                organization_id=self.organization.id,
                name="hooked",
                app_key=new_key(),
                app_secret=new_secret(),
                webhook_url=url,
                client_events=True,
                max_connections=None,
                webhook_batching=batching,
            )
        )


@pytest.fixture
def apps(database: Database) -> Apps:
    return Apps(database)


async def receiver(nursery: trio.Nursery, plan: list[int | None] | None = None) -> WebhookReceiver:
    found: WebhookReceiver = await nursery.start(WebhookReceiver(plan or []).serve)
    return found


def validated(app: Application, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """The body as the PyPI SDK's own validator accepts it (it raises or returns None else)."""
    client = pusher.Pusher(app_id=str(app.id), key=app.app_key, secret=app.app_secret)
    found = client.validate_webhook(
        key=headers["x-pusher-key"], signature=headers["x-pusher-signature"], body=body.decode()
    )
    assert found is not None, "the pusher SDK refused the webhook"
    result: dict[str, Any] = found
    return result


async def rows(store: WebhookStore, app: Application) -> list[WebhookRow]:
    return await store.recent(100, app.id)


def event(n: int) -> dict[str, Any]:
    return {"name": "cache_miss", "channel": f"cache-{n}"}


async def test_a_receiver_that_fails_twice_gets_the_event_three_times_each_validly_signed(
    database: Database, apps: Apps, nursery: trio.Nursery
) -> None:
    hook = await receiver(nursery, [500, 500])
    app = await apps.new(hook.url)
    store = WebhookStore(database)
    deliverer = WebhookDeliverer(store, WebhookSettings())  # 1 s, then 2 s
    await nursery.start(deliverer.run)
    await store.record([NewWebhookEvent(app.id, event(1))])
    deliverer.wake()
    await hook.wait_for(lambda got: len(got) == 3)
    assert [r.status for r in hook.received] == [500, 500, 200]
    for got in hook.received:
        assert got.headers["content-type"] == "application/json"
        assert got.headers["x-pusher-key"] == app.app_key
        body = validated(app, got.body, got.headers)
        assert body["events"] == [event(1)]
        assert isinstance(body["time_ms"], int)

    async def delivered() -> bool:
        return [r.state for r in await rows(store, app)] == ["delivered"]

    await eventually(delivered)
    row = (await rows(store, app))[0]
    assert row.attempts == 3
    stats = deliverer.statistics()
    assert (stats.requests, stats.failed_requests, stats.retries, stats.delivered) == (3, 2, 2, 1)


async def test_a_receiver_that_keeps_failing_is_given_up_after_give_up_seconds(
    database: Database, apps: Apps, nursery: trio.Nursery
) -> None:
    hook = WebhookReceiver(default=503)
    await nursery.start(hook.serve)
    app = await apps.new(hook.url)
    store = WebhookStore(database)
    deliverer = WebhookDeliverer(store, replace(FAST, give_up_seconds=1.5))
    await nursery.start(deliverer.run)
    await store.record([NewWebhookEvent(app.id, event(1))])
    deliverer.wake()

    async def given_up() -> bool:
        return [r.state for r in await rows(store, app)] == ["given_up"]

    await eventually(given_up)
    row = (await rows(store, app))[0]
    assert row.last_error == "answered 503"
    assert row.attempts == len(hook.received) >= 3
    assert deliverer.statistics().given_up == 1
    assert (await store.counts())["given_up"] == 1


async def test_batching_applications_get_several_events_per_request_others_one_in_order(
    database: Database, apps: Apps, nursery: trio.Nursery
) -> None:
    batched_hook, single_hook = await receiver(nursery), await receiver(nursery)
    batched = await apps.new(batched_hook.url, batching=True)
    single = await apps.new(single_hook.url)
    store = WebhookStore(database)
    await store.record([NewWebhookEvent(batched.id, event(n)) for n in range(5)])
    await store.record([NewWebhookEvent(single.id, event(n)) for n in range(3)])
    deliverer = WebhookDeliverer(store, replace(FAST, batch_size=4))
    await nursery.start(deliverer.run)
    await batched_hook.wait_for(lambda got: sum(len(r.events) for r in got) == 5)
    await single_hook.wait_for(lambda got: len(got) == 3)
    assert [len(r.events) for r in batched_hook.received] == [4, 1]
    assert batched_hook.events() == [event(n) for n in range(5)]
    assert single_hook.events() == [event(n) for n in range(3)]
    for got in batched_hook.received:
        validated(batched, got.body, got.headers)


async def test_a_slow_or_unreachable_receiver_holds_up_no_other_application(
    database: Database, apps: Apps, nursery: trio.Nursery
) -> None:
    slow_hook = await receiver(nursery, [None])  # never answers the first request
    fine_hook = await receiver(nursery)
    closed = trio.socket.socket()
    await closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    slow = await apps.new(slow_hook.url)
    unreachable = await apps.new(f"http://127.0.0.1:{port}/hooks")
    fine = await apps.new(fine_hook.url)
    store = WebhookStore(database)
    settings = replace(FAST, request_timeout_seconds=4.0)
    deliverer = WebhookDeliverer(store, settings)
    await nursery.start(deliverer.run)
    await store.record([NewWebhookEvent(slow.id, event(1))])
    await store.record([NewWebhookEvent(unreachable.id, event(2))])
    await slow_hook.wait_for(lambda got: len(got) == 1)
    await store.record([NewWebhookEvent(fine.id, event(3))])
    deliverer.wake()
    await fine_hook.wait_for(lambda got: len(got) == 1)
    # The slow receiver's request is still open: nothing waited for it.
    assert [r.state for r in await rows(store, slow)] == ["pending"]
    assert slow.id in deliverer.describe()["sending_to_apps"]

    async def failed_twice() -> bool:
        slow_rows, gone_rows = await rows(store, slow), await rows(store, unreachable)
        return bool(
            slow_rows[0].last_error and gone_rows[0].last_error and gone_rows[0].attempts >= 2
        )

    await eventually(failed_twice)
    assert (await rows(store, slow))[0].last_error == "no answer within 4.0 s"
    assert "Connect" in str((await rows(store, unreachable))[0].last_error)
    await slow_hook.wait_for(lambda got: len(got) == 2)  # retried, and answered this time

    async def slow_delivered() -> bool:
        return (await rows(store, slow))[0].state == "delivered"

    await eventually(slow_delivered)


async def test_two_nodes_share_the_outbox_and_never_send_a_row_twice(
    database: Database, apps: Apps, nursery: trio.Nursery
) -> None:
    hooks = [await receiver(nursery) for _ in range(3)]
    hooked = [await apps.new(h.url) for h in hooks]
    store = WebhookStore(database)
    for app in hooked:
        await store.record([NewWebhookEvent(app.id, event(n)) for n in range(20)])
    settings = replace(FAST, claim_size=4, concurrency=2)
    nodes = [WebhookDeliverer(WebhookStore(database), settings) for _ in range(2)]
    for node in nodes:
        await nursery.start(node.run)
    for hook in hooks:
        await hook.wait_for(lambda got: len(got) >= 20)

    async def all_delivered() -> bool:
        return (await store.counts()) == {"pending": 0, "delivered": 60, "given_up": 0}

    await eventually(all_delivered)
    for hook in hooks:
        channels = [e["channel"] for e in hook.events()]
        assert sorted(channels) == sorted(f"cache-{n}" for n in range(20))  # each once
    assert all(node.statistics().delivered > 0 for node in nodes)  # both took part
    assert sum(node.statistics().delivered for node in nodes) == 60


async def test_rows_of_an_application_archived_or_without_a_webhook_url_since_are_given_up(
    database: Database, apps: Apps, nursery: trio.Nursery
) -> None:
    hook = await receiver(nursery)
    unhooked, archived = await apps.new(None), await apps.new(hook.url)
    await apps.store.update(archived.app_key, ApplicationChanges(archived=True), apps.owner_id)
    store = WebhookStore(database)
    await store.record([NewWebhookEvent(unhooked.id, event(1))])
    await store.record([NewWebhookEvent(archived.id, event(2))])
    deliverer = WebhookDeliverer(store, FAST)
    await nursery.start(deliverer.run)

    async def given_up() -> bool:
        errors = [r.last_error for app in (unhooked, archived) for r in await rows(store, app)]
        return errors == ["no webhook_url", "archived"]

    await eventually(given_up)
    assert hook.received == []


@pytest.mark.slow
@pytest.mark.parametrize("batching", [False, True])
async def test_delivery_throughput_figure(
    database: Database, apps: Apps, nursery: trio.Nursery, batching: bool
) -> None:
    """How many events per second one node delivers to ten local receivers (printed, not
    asserted: a figure for docs/pusher.md); every event arrives once."""
    per_app = 300
    hooks = [await receiver(nursery) for _ in range(10)]
    hooked = [await apps.new(h.url, batching=batching) for h in hooks]
    store = WebhookStore(database)
    for app in hooked:
        await store.record([NewWebhookEvent(app.id, event(n)) for n in range(per_app)])
    deliverer = WebhookDeliverer(store, WebhookSettings())
    started = trio.current_time()
    await nursery.start(deliverer.run)
    for hook in hooks:
        await hook.wait_for(lambda got: sum(len(r.events) for r in got) >= per_app, 120)
    seconds = trio.current_time() - started
    total = per_app * len(hooks)
    requests = sum(len(h.received) for h in hooks)
    print(
        f"\nWEBHOOK FIGURE batching={batching} events={total} requests={requests} "
        f"seconds={seconds:.2f} events_per_second={total / seconds:.0f}"
    )
    for hook in hooks:
        assert sorted(e["channel"] for e in hook.events()) == sorted(
            f"cache-{n}" for n in range(per_app)
        )
