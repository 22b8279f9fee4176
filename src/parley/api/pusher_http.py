"""Pusher's HTTP API (PUSHER_PROTOCOL.md §9, docs/pusher.md "HTTP API"), whichever edge received
the request: Quart's routes (`api.pusher_routes`) or, for `POST /apps/{app_id}/events` and
`batch_events`, the public listener's fast path (`api.server.triggers`).

`PusherApi` holds the rules' order for every call: the application (by the path's numeric id
from the node's in-memory directory, 404 if there is none; on the Python SDK's short path
`/users/{id}/terminate_connections`, by `auth_key`, 401 if unknown), the request signature
(`integrations.signing.verify_request`: key, version, `auth_timestamp` within
`integrations.timestamp_window_seconds`, `body_md5`, the HMAC; 401), the archive (403), then the
call itself. Triggers go through `TriggerPublisher.publish`, the one publish path (a Phoenix
socket on `app:K:C` gets the event as a Pusher socket on `C` does); counts come from
`integrations.channel_info`. Failures are `ApiError`s in Parley's error shape with Pusher's real
statuses (400, 401, 403, 404, 413): the SDKs read the status, and show the body as text.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from parley.api.errors import ApiError, bad_request, forbidden, not_found
from parley.integrations.applications import accepted_secrets
from parley.integrations.channel_info import ChannelInfo
from parley.integrations.pusher_events import parse_batch, parse_events, parse_info
from parley.integrations.signing import BadSignature, verify_request
from parley.integrations.triggers import TriggerError, TriggerLimits, channel_target

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from parley.api.app_sockets import AppSockets
    from parley.config import IntegrationsSettings
    from parley.integrations.directory import ApplicationDirectory
    from parley.integrations.pusher_events import PusherEvent
    from parley.integrations.triggers import TriggerPublisher
    from parley.store.applications import Application


MAX_APP_ID: Final = 2**63 - 1
"""Application ids are PostgreSQL bigints: a larger one names no application."""


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What a signature covers: the method, the path as signed (unescaped), the query
    parameters (decoded) and the body's bytes."""

    method: str
    path: str
    query: Sequence[tuple[str, str]]
    body: bytes

    def param(self, name: str) -> str | None:
        for key, value in self.query:
            if key == name:
                return value
        return None


class PusherApi:
    """Answers Pusher's HTTP API for the applications of `directory` (see the module doc)."""

    def __init__(
        self,
        directory: ApplicationDirectory,
        publisher: TriggerPublisher,
        info: ChannelInfo,
        app_sockets: AppSockets,
        settings: IntegrationsSettings,
    ) -> None:
        self._directory = directory
        self._publisher = publisher
        self._info = info
        self._app_sockets = app_sockets
        self._window = settings.timestamp_window_seconds
        self._max_batch = settings.max_batch_events
        self._max_subject = settings.max_subject_chars
        self._limits = TriggerLimits(
            max_data_bytes=settings.max_data_bytes,
            max_channels=settings.max_channels_per_trigger,
            max_channel_chars=settings.max_channel_name_chars,
            max_subject_chars=settings.max_subject_chars,
        )

    # -- the calls -------------------------------------------------------------------------

    async def events(self, app_id: int, request: SignedRequest) -> dict[str, Any]:
        """`POST /apps/{app_id}/events`: `{}`, or with `info` the counts of each channel."""
        app = await self.application(app_id, request)
        with _refusals():
            event = parse_events(app.app_key, request.body, self._limits)
        self._publisher.publish(event.trigger)
        if not event.info:
            return {}
        return {"channels": self._triggered(event)}

    async def batch_events(self, app_id: int, request: SignedRequest) -> dict[str, Any]:
        """`POST /apps/{app_id}/batch_events`: every event checked, then all published; `{}`,
        or when any asked for `info`, `{"batch": [...]}` with each event's channel counts."""
        app = await self.application(app_id, request)
        with _refusals():
            events = parse_batch(app.app_key, request.body, self._limits, self._max_batch)
        for event in events:
            self._publisher.publish(event.trigger)
        if not any(event.info for event in events):
            return {}
        return {"batch": [self._triggered(event).get(event.channels[0], {}) for event in events]}

    async def channels(self, app_id: int, request: SignedRequest) -> dict[str, Any]:
        """`GET /apps/{app_id}/channels?filter_by_prefix=&info=`."""
        app = await self.application(app_id, request)
        with _refusals():
            wanted = parse_info(request.param("info"))
            return self._info.channels(app.app_key, request.param("filter_by_prefix") or "", wanted)

    async def channel(self, app_id: int, channel: str, request: SignedRequest) -> dict[str, Any]:
        """`GET /apps/{app_id}/channels/{channel}?info=`."""
        app = await self.application(app_id, request)
        with _refusals():
            wanted = parse_info(request.param("info"))
            topic = channel_target(app.app_key, channel, self._limits)
            return self._info.channel(topic, channel, wanted)

    async def users(self, app_id: int, channel: str, request: SignedRequest) -> dict[str, Any]:
        """`GET /apps/{app_id}/channels/{channel}/users` (presence channels only)."""
        app = await self.application(app_id, request)
        with _refusals():
            topic = channel_target(app.app_key, channel, self._limits)
            return self._info.users(topic, channel)

    async def terminate(
        self, app_id: int | None, user_id: str, request: SignedRequest
    ) -> dict[str, Any]:
        """`POST /apps/{app_id}/users/{user_id}/terminate_connections` (and the Python SDK's
        `/users/{user_id}/terminate_connections`, `app_id` None): that end user's sockets close
        with 4009 on every node (`AppSockets.close_end_user`)."""
        app = await self.application(app_id, request)
        if not 1 <= len(user_id) <= self._max_subject:
            raise bad_request(f"user ids have 1 to {self._max_subject} characters")
        self._app_sockets.close_end_user(app.app_key, user_id)
        return {}

    # -- the rules before every call ------------------------------------------------------

    async def application(self, app_id: int | None, request: SignedRequest) -> Application:
        """The application a signed request is for, once its signature is verified."""
        if app_id is None:
            key = request.param("auth_key")
            app = await self._directory.get(key) if key else None
            if app is None:
                raise ApiError(401, "invalid_signature", "auth_key is no application's key")
        else:
            app = await self._directory.get_by_id(app_id) if 0 < app_id <= MAX_APP_ID else None
            if app is None:
                raise not_found("no such application")
        try:
            verify_request(
                key=app.app_key,
                secrets=accepted_secrets(app, datetime.now(UTC)),
                method=request.method,
                path=request.path,
                params=request.query,
                body=request.body,
                now=time.time(),
                window_seconds=self._window,
            )
        except BadSignature as exc:
            raise ApiError(401, "invalid_signature", exc.message) from None
        if app.archived_at is not None:
            raise forbidden("the application is disabled (archived)")
        return app

    def _triggered(self, event: PusherEvent) -> dict[str, dict[str, int]]:
        return self._info.triggered(event.channels, event.trigger.topics, event.info)


@contextmanager
def _refusals() -> Iterator[None]:
    """`TriggerError` -> `ApiError`: 413 stays, every other refusal is Pusher's 400."""
    try:
        yield
    except TriggerError as exc:
        status = 413 if exc.status == 413 else 400
        code = "too_large" if status == 413 else "bad_request"
        raise ApiError(status, code, exc.message, fields={exc.field: [exc.message]}) from None
