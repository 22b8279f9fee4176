"""Pusher's HTTP API on Quart (docs/pusher.md "HTTP API"): the routes, each a thin translation of
the request into `pusher_http.SignedRequest` for `PusherApi`.

These are Pusher's routes, not Parley's REST API: they sit outside `/api`, are signed rather than
authenticated by a Bearer token, answer 200 as Pusher does, and are not in the OpenAPI document
(their reference is Pusher's, PUSHER_PROTOCOL.md §9). A non-numeric `app_id` is no route (404).
The signed path is the request's path as received, percent-decoded, as the SDKs sign it.
"""

from __future__ import annotations

from typing import Any

import orjson
from quart import Blueprint, Response, request

from parley.api.body import JSON
from parley.api.context import parley_context
from parley.api.pusher_http import SignedRequest

blueprint = Blueprint("pusher_api", __name__)


async def _signed() -> SignedRequest:
    raw: bytes = await request.get_data(cache=True, as_text=False)  # type: ignore[assignment]
    return SignedRequest(request.method, request.path, list(request.args.items(multi=True)), raw)


def _answer(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), status=200, content_type=JSON)


@blueprint.post("/apps/<int:app_id>/events")
async def events(app_id: int) -> Response:
    return _answer(await parley_context().pusher_api.events(app_id, await _signed()))


@blueprint.post("/apps/<int:app_id>/batch_events")
async def batch_events(app_id: int) -> Response:
    return _answer(await parley_context().pusher_api.batch_events(app_id, await _signed()))


@blueprint.get("/apps/<int:app_id>/channels")
async def channels(app_id: int) -> Response:
    return _answer(await parley_context().pusher_api.channels(app_id, await _signed()))


@blueprint.get("/apps/<int:app_id>/channels/<channel>")
async def channel(app_id: int, channel: str) -> Response:
    return _answer(await parley_context().pusher_api.channel(app_id, channel, await _signed()))


@blueprint.get("/apps/<int:app_id>/channels/<channel>/users")
async def users(app_id: int, channel: str) -> Response:
    return _answer(await parley_context().pusher_api.users(app_id, channel, await _signed()))


@blueprint.post("/apps/<int:app_id>/users/<user_id>/terminate_connections")
async def terminate(app_id: int, user_id: str) -> Response:
    api = parley_context().pusher_api
    return _answer(await api.terminate(app_id, user_id, await _signed()))


@blueprint.post("/users/<user_id>/terminate_connections")
async def terminate_short(user_id: str) -> Response:
    """The Python SDK 3.3.4's path (no `/apps/{app_id}`): the application is its `auth_key`."""
    api = parley_context().pusher_api
    return _answer(await api.terminate(None, user_id, await _signed()))
