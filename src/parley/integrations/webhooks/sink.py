"""Where the recorder writes: the outbox, for applications that asked for webhooks.

Events are noted by application key (that is what topics and Pusher sockets name); here each key
is resolved once per write through the node's application directory (memory, read again every
`integrations.app_cache_seconds`) into the application's numeric id and its webhook settings.
An event is dropped when its application is unknown, archived, has no `webhook_url`, or did not
turn `webhook_subscription_count` on (for `subscription_count`). The rest go into
`webhook_outbox` in one statement, and the deliverer is woken.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from parley.integrations.webhooks.events import SUBSCRIPTION_COUNT, Noted
from parley.store.webhooks import NewWebhookEvent

if TYPE_CHECKING:
    from parley.integrations.directory import ApplicationDirectory
    from parley.store.applications import Application
    from parley.store.webhooks import WebhookStore


class OutboxSink:
    """`await sink(noted)`: the recorder's `Write`."""

    def __init__(
        self,
        directory: ApplicationDirectory,
        store: WebhookStore,
        written: Callable[[], object] = lambda: None,
    ) -> None:
        self._directory = directory
        self._store = store
        self._written = written

    def wants(self, app_key: str) -> bool:
        """False when the cached application surely wants no webhooks (no URL, archived): the
        recorder then does not even note its events. Unknown to the cache: maybe."""
        app = self._directory.cached(app_key)
        return app is None or (bool(app.webhook_url) and app.archived_at is None)

    async def __call__(self, noted: list[Noted]) -> list[Noted]:
        """Write what the applications want of `noted`; returns that."""
        apps: dict[str, Application | None] = {}
        rows: list[NewWebhookEvent] = []
        written: list[Noted] = []
        for item in noted:
            if item.app_key not in apps:
                apps[item.app_key] = await self._directory.get(item.app_key)
            app = apps[item.app_key]
            if app is None or app.archived_at is not None or not app.webhook_url:
                continue
            if item.name == SUBSCRIPTION_COUNT and not app.webhook_subscription_count:
                continue
            rows.append(NewWebhookEvent(app.id, item.event))
            written.append(item)
        if rows:
            await self._store.record(rows)
            self._written()
        return written
