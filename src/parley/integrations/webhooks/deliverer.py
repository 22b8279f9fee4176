"""The webhook deliverer: one supervised actor per node that POSTs the outbox's rows to the
applications' webhook URLs (PUSHER_PROTOCOL.md §10).

Its loop claims due rows (`WebhookStore.claim_due`: FOR UPDATE SKIP LOCKED and a lease of
`webhooks.lease_seconds`, so the nodes of a cluster share the table and never send a row twice
at once) of applications it is not already sending to, and starts one task per application, at
most `webhooks.concurrency` at once; rows of applications beyond that are given back at once.
An application's task sends its rows in order, `webhooks.batch_size` events per request when the
application asked for `webhook_batching`, else one per request, each bounded by
`webhooks.request_timeout_seconds` as a whole (connect, send, answer; the answer's body is never
read). So a slow or unreachable receiver costs its own application one task and nothing else.

A 2xx answer delivers the request's rows. Anything else (another status, a timeout, a refused
connection) fails them: they are tried again after `retry.retry_delay`, and given up
`webhooks.give_up_seconds` after they were recorded; the rows after a failure are given back
untried, to keep the application's order. Rows of an application archived, or without a
`webhook_url` any more, since they were recorded are given up unsent. The loop sleeps until it
is woken (`wake`: the recorder wrote rows, a task ended), the next retry it scheduled, or
`webhooks.poll_seconds` (rows of other nodes), whichever comes first; and it deletes finished
rows older than `webhooks.keep_seconds` every `poll_seconds * CLEANUP_POLLS`.

httpx (on trio through anyio) is the HTTP client: it is the well-kept async client that runs on
trio unchanged, with connection pooling and TLS; aiohttp is asyncio-only.

Database errors are logged and the round skipped (the lease brings the rows back); any other
error crashes the deliverer and its supervisor restarts it, which loses nothing.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import trio

from parley.integrations.webhooks import events
from parley.integrations.webhooks.retry import retry_delay
from parley.store.database import database_unavailable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Sequence

    from parley.config import WebhookSettings
    from parley.store.webhooks import DueWebhook, WebhookStore

log = logging.getLogger(__name__)

CLEANUP_POLLS = 30
"""Finished rows are deleted once per this many polls (a minute at the default 2 s)."""


@dataclass(frozen=True, slots=True)
class DelivererStats:
    delivered: int
    """Events delivered (a 2xx answer)."""
    requests: int
    """Requests made, whatever their outcome."""
    failed_requests: int
    """Requests answered with another status, timed out, or not connected."""
    retries: int
    """Events scheduled for another attempt after a failure."""
    given_up: int
    """Events given up (too old, or their application lost its webhook_url)."""
    sending: int
    """Applications being sent to now."""


class WebhookDeliverer:
    """Delivers the webhook outbox; run it under a supervisor with `run`."""

    def __init__(
        self,
        store: WebhookStore,
        settings: WebhookSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._transport = transport
        self._wakeup = trio.Event()
        self._retry_times: list[float] = []
        """When scheduled retries fall due (a heap): the loop wakes for each."""
        self._busy: set[int] = set()
        self._last_errors: dict[int, str] = {}
        self.delivered = 0
        self.requests = 0
        self.failed_requests = 0
        self.retries = 0
        self.given_up = 0

    def wake(self) -> None:
        """Rows were just written: look for them now rather than at the next poll."""
        self._wakeup.set()

    def statistics(self) -> DelivererStats:
        return DelivererStats(
            self.delivered,
            self.requests,
            self.failed_requests,
            self.retries,
            self.given_up,
            len(self._busy),
        )

    def describe(self) -> dict[str, Any]:
        stats = self.statistics()
        return {
            "delivered": stats.delivered,
            "requests": stats.requests,
            "failed_requests": stats.failed_requests,
            "retries": stats.retries,
            "given_up": stats.given_up,
            "sending_to_apps": sorted(self._busy),
            "last_errors": {str(app): error for app, error in self._last_errors.items()},
        }

    # -- the loop -------------------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[WebhookDeliverer] = trio.TASK_STATUS_IGNORED
    ) -> None:
        settings = self._settings
        timeout = httpx.Timeout(settings.request_timeout_seconds)
        limits = httpx.Limits(max_connections=settings.concurrency * 2)
        async with (
            httpx.AsyncClient(
                timeout=timeout, limits=limits, follow_redirects=False, transport=self._transport
            ) as client,
            trio.open_nursery() as nursery,
        ):
            task_status.started(self)
            polls = 0
            while True:
                self._wakeup = trio.Event()
                claimed = await self._claim()
                for rows in await self._assign(claimed):
                    self._busy.add(rows[0].app_id)
                    nursery.start_soon(self._deliver_app, client, rows)
                if claimed:
                    continue  # more may be due: look again before sleeping
                polls += 1
                if polls % CLEANUP_POLLS == 0:
                    await self._cleanup()
                now = trio.current_time()
                while self._retry_times and self._retry_times[0] <= now:
                    heapq.heappop(self._retry_times)
                soonest = self._retry_times[0] if self._retry_times else math.inf
                with trio.move_on_at(min(now + settings.poll_seconds, soonest)):
                    await self._wakeup.wait()

    async def _claim(self) -> list[DueWebhook]:
        if len(self._busy) >= self._settings.concurrency:
            return []
        try:
            return await self._store.claim_due(
                self._settings.claim_size, self._settings.lease_seconds, sorted(self._busy)
            )
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            log.warning("webhooks: cannot claim (%r); retrying later", exc)
            return []

    async def _assign(self, claimed: list[DueWebhook]) -> list[list[DueWebhook]]:
        """The claimed rows by application, as many applications as there are free tasks; the
        others' rows are given back untried (they are looked for again when a task ends)."""
        by_app: dict[int, list[DueWebhook]] = defaultdict(list)
        for row in claimed:
            by_app[row.app_id].append(row)
        groups = list(by_app.values())
        free = self._settings.concurrency - len(self._busy)
        extra = [row.id for rows in groups[free:] for row in rows]
        if extra:
            await self._record(self._store.release(extra))
        return groups[:free]

    # -- one application ------------------------------------------------------------------------

    async def _deliver_app(self, client: httpx.AsyncClient, rows: list[DueWebhook]) -> None:
        """Send one application's claimed rows in order; the delivered ones are marked in one
        statement when the task ends (one round trip, not one per request)."""
        app_id = rows[0].app_id
        done: list[int] = []
        try:
            await self._send_in_order(client, rows, done)
        finally:
            self._busy.discard(app_id)
            self._wakeup.set()
            if done:  # also when stopping: those were sent, and must not be sent again
                with (
                    trio.CancelScope(shield=True),
                    trio.move_on_after(self._settings.request_timeout_seconds),
                ):
                    await self._record(self._store.mark_delivered(done))

    async def _send_in_order(
        self, client: httpx.AsyncClient, rows: list[DueWebhook], done: list[int]
    ) -> None:
        app_id = rows[0].app_id
        settings = self._settings
        lease_end = trio.current_time() + settings.lease_seconds
        size = settings.batch_size if rows[0].batching else 1
        units = [rows[i : i + size] for i in range(0, len(rows), size)]
        for index, unit in enumerate(units):
            untried = [row.id for later in units[index:] for row in later]
            gone = "archived" if unit[0].archived else None
            gone = "no webhook_url" if unit[0].webhook_url is None else gone
            if gone is not None:
                await self._record(self._store.mark_given_up(untried, gone))
                self.given_up += len(untried)
                return
            if trio.current_time() + settings.request_timeout_seconds >= lease_end:
                await self._record(self._store.release(untried))
                return
            error = await self._post(client, unit)
            if error is None:
                self.delivered += len(unit)
                self._last_errors.pop(app_id, None)
                done.extend(row.id for row in unit)
                continue
            self._last_errors[app_id] = error
            await self._failed(unit, error)
            rest = [row.id for later in units[index + 1 :] for row in later]
            if rest:
                await self._record(self._store.release(rest))
            return

    async def _post(self, client: httpx.AsyncClient, unit: Sequence[DueWebhook]) -> str | None:
        """POST one request; None when answered 2xx, else what went wrong."""
        first = unit[0]
        assert first.webhook_url is not None
        raw = events.body([row.event for row in unit], int(time.time() * 1000))
        headers = events.headers(first.app_key, first.app_secret, raw)
        self.requests += 1
        error: str | None
        with trio.move_on_after(self._settings.request_timeout_seconds) as scope:
            try:
                async with client.stream(
                    "POST", first.webhook_url, content=raw, headers=headers
                ) as response:
                    status = response.status_code
                error = None if 200 <= status < 300 else f"answered {status}"
            except Exception as exc:
                # Whatever one request meets (httpx's errors, a URL it cannot use, a TLS
                # failure) is that request's failure, never the deliverer's crash.
                error = f"{type(exc).__name__}: {exc}"  # the store keeps its first 1,000
        if scope.cancelled_caught:
            error = f"no answer within {self._settings.request_timeout_seconds} s"
        if error is not None:
            self.failed_requests += 1
        return error

    async def _failed(self, unit: Sequence[DueWebhook], error: str) -> None:
        now = datetime.now(UTC)
        age = max((now - row.inserted_at).total_seconds() for row in unit)
        attempts = max(row.attempts for row in unit)
        delay = retry_delay(attempts, age, self._settings)
        ids = [row.id for row in unit]
        if delay is None:
            log.warning(
                "webhooks: giving up %d event(s) of app %d: %s", len(ids), unit[0].app_id, error
            )
            self.given_up += len(ids)
            await self._record(self._store.mark_given_up(ids, error))
            return
        self.retries += len(ids)
        await self._record(self._store.mark_failed(ids, error, delay))
        # Timed from after the update: the row is due `delay` after the database's now(), and
        # waking before that would find nothing due and wait for the next poll instead.
        heapq.heappush(self._retry_times, trio.current_time() + delay)

    async def _record(self, outcome: Awaitable[object]) -> None:
        """Await a store update; a database that cannot answer leaves the row to its lease."""
        try:
            await outcome
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            log.warning("webhooks: cannot record an outcome (%r); the lease will expire", exc)

    async def _cleanup(self) -> None:
        await self._record(self._store.delete_finished(self._settings.keep_seconds))
