"""Delivering a trigger, whichever way its request came: Quart's route (`api.events`) or, for
Pusher-signed triggers, the public listener's fast path (`api.server.triggers`).

`Triggers` holds the rules' order: the application from the node's in-memory directory (no
query), the signature (for signed requests), the organization's slug, the archive, then
`integrations.triggers.parse_trigger`, and `TriggerPublisher.publish` (one broadcast per topic,
the cache channels, the `socket_id` exclusion). Failures are `ApiError`s
in the documented shape, whichever edge answers them.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from parley.api.body import FORM, JSON
from parley.api.errors import ApiError, bad_request, forbidden, not_found
from parley.integrations.applications import accepted_secrets
from parley.integrations.signing import BadSignature, verify_request
from parley.integrations.triggers import (
    TriggerError,
    TriggerLimits,
    TriggerPublisher,
    parse_trigger,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from parley.config import IntegrationsSettings
    from parley.integrations.directory import ApplicationDirectory
    from parley.store.applications import Application


class Triggers:
    """Verifies and delivers triggers for the applications of `directory`."""

    def __init__(
        self,
        directory: ApplicationDirectory,
        publisher: TriggerPublisher,
        settings: IntegrationsSettings,
    ) -> None:
        self.directory = directory
        self.publisher = publisher
        self._window = settings.timestamp_window_seconds
        self._limits = TriggerLimits(
            max_data_bytes=settings.max_data_bytes,
            max_channels=settings.max_channels_per_trigger,
            max_channel_chars=settings.max_channel_name_chars,
            max_subject_chars=settings.max_subject_chars,
        )

    async def signed(
        self,
        slug: str,
        app_key: str,
        event: str,
        *,
        path: str,
        query: Sequence[tuple[str, str]],
        raw: bytes,
        mimetype: str,
    ) -> dict[str, Any]:
        """A Pusher-signed trigger (PUSHER_PROTOCOL.md §9): verified, then delivered."""
        application = await self.directory.get(app_key)
        if application is None:
            raise not_found("no such application")
        try:
            verify_request(
                key=application.app_key,
                secrets=accepted_secrets(application, datetime.now(UTC)),
                method="POST",
                path=path,
                params=query,
                body=raw,
                now=time.time(),
                window_seconds=self._window,
            )
        except BadSignature as exc:
            raise ApiError(401, "invalid_signature", exc.message) from None
        return self.deliver(application, slug, event, query, raw, mimetype)

    def deliver(
        self,
        application: Application | None,
        slug: str,
        event: str,
        query: Sequence[tuple[str, str]],
        raw: bytes,
        mimetype: str,
    ) -> dict[str, Any]:
        """Publish an authenticated trigger; the answer's body (202)."""
        if application is None or application.organization_slug != slug:
            raise not_found("no such application")
        if application.archived_at is not None:
            raise forbidden("the application is archived")
        try:
            triggered = parse_trigger(
                application.app_key, event, query, _body(raw, mimetype), self._limits
            )
        except TriggerError as exc:
            code = "too_large" if exc.status == 413 else "invalid"
            raise ApiError(
                exc.status, code, exc.message, fields={exc.field: [exc.message]}
            ) from None
        self.publisher.publish(triggered)
        return {"event": event, "channel": triggered.topics[0], "channels": list(triggered.topics)}


def _body(raw: bytes, mimetype: str) -> dict[str, Any] | None:
    if not raw:
        return None
    if mimetype == FORM or (mimetype and mimetype != JSON and not mimetype.endswith("+json")):
        raise ApiError(415, "unsupported_media_type", f"expected an {JSON} body (or none)")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request("body is not valid JSON") from None
    if not isinstance(value, dict):
        raise bad_request("expected a JSON object body")
    return value
