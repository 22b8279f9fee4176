"""The trigger API as ExPusherLite has it (DESIGN §4.2):
`POST /api/organizations/{slug}/applications/{app_key}/event/{event}`.

Authenticated by either

* a Pusher request signature with the application's key and secret (PUSHER_PROTOCOL.md §9,
  `integrations.signing`; the path is signed as it is, the query unescaped): no database at all,
  the application comes from the node's in-memory directory; or
* the Bearer JWT of a user enrolled in the organization (an access token, or the seed's
  `POST /api/session` JWT), or of a site admin: the token check reads the user's row, as every
  authenticated request does, and the enrollment is one indexed read.

What is triggered is `integrations.triggers.parse_trigger`'s business (data from the JSON body's
`data` or from the query, channels, a direct user, Pusher's limits). Delivery is one pubsub
publish per topic: pubsub hands the one `Broadcast` to every subscriber and each socket
serializer encodes it once for all of them (the fastlane). Nothing is written to the database.
"""

from __future__ import annotations

from typing import Any

import orjson
from quart import Blueprint, Response, request

from parley.api.body import JSON
from parley.api.context import parley_context
from parley.api.endpoint import ERROR_RESPONSE, Auth, endpoint, ok, optional_principal
from parley.api.errors import not_found, unauthorized
from parley.api.schemas import obj, query_parameter
from parley.integrations.organizations import Standing, standing
from parley.integrations.signing import is_signed
from parley.store.applications import Application

blueprint = Blueprint("events", __name__)

TRIGGER_BODY: dict[str, Any] = {
    "type": "object",
    "description": "All optional. Without a body the query parameters are the data (the seed's "
    "curl). data: an object, or a string (a JSON object in it is delivered as that object).",
    "properties": {
        "data": {},
        "channel": {"type": "string"},
        "channels": {"type": "array", "items": {"type": "string"}, "maxItems": 100},
        "user_id": {"type": "string", "description": "send to this end user only"},
        "socket_id": {"type": "string"},
    },
    "additionalProperties": False,
}
TRIGGERED = obj(
    {
        "event": {"type": "string"},
        "channel": {"type": "string", "description": "the (first) topic it went to"},
        "channels": {"type": "array", "items": {"type": "string"}},
    }
)
_TEXT = {"type": "string"}
QUERY = [
    query_parameter("channel", _TEXT, "a channel of the application (repeatable); none: app:{key}"),
    query_parameter(
        "uid", _TEXT, "with direct=true: the end user to send to, app:{key}:user:{uid}"
    ),
    query_parameter("direct", {"type": "string", "enum": ["true", "false"]}, "see uid"),
    query_parameter("socket_id", _TEXT, "a Pusher socket to leave out"),
    query_parameter("auth_key", _TEXT, "Pusher signature: the app key"),
    query_parameter("auth_timestamp", _TEXT, "Pusher signature: Unix seconds (within 600 s)"),
    query_parameter("auth_version", _TEXT, "Pusher signature: 1.0"),
    query_parameter("body_md5", _TEXT, "Pusher signature: hex MD5 of the body"),
    query_parameter("auth_signature", _TEXT, "Pusher signature: hex HMAC-SHA256"),
]


@endpoint(
    blueprint,
    "POST",
    "/api/organizations/<slug>/applications/<app_key>/event/<event>",
    summary="Trigger an event on the application's channels (ExPusherLite); any other query "
    "parameter is a string field of the data when there is no body",
    auth=Auth.ANONYMOUS,
    optional_auth=True,
    body=TRIGGER_BODY,
    body_required=False,
    query=QUERY,
    responses={
        202: ok("published", TRIGGERED),
        403: ERROR_RESPONSE,
        413: ERROR_RESPONSE,
        422: ERROR_RESPONSE,
    },
)
async def trigger(slug: str, app_key: str, event: str) -> Response:
    triggers = parley_context().triggers
    query = list(request.args.items(multi=True))
    raw: bytes = await request.get_data(cache=True, as_text=False)  # type: ignore[assignment]
    if is_signed(query):
        answer = await triggers.signed(
            slug, app_key, event, path=request.path, query=query, raw=raw, mimetype=request.mimetype
        )
    else:
        application = await triggers.directory.get(app_key)
        await _require_member(application)
        answer = triggers.deliver(application, slug, event, query, raw, request.mimetype)
    return Response(orjson.dumps(answer), status=202, content_type=JSON)


async def _require_member(application: Application | None) -> None:
    """A Bearer caller must be enrolled in the application's organization (or a site admin);
    anybody else learns nothing about it (404)."""
    principal = optional_principal()
    if principal is None:
        raise unauthorized("a Bearer token or a Pusher signature is required")
    if application is None:
        raise not_found("no such application")
    enrolled = await parley_context().stores.organizations.enrollment(
        application.organization_id, principal.user.id
    )
    if standing(enrolled, site_admin=principal.level >= Auth.ADMIN) < Standing.MEMBER:
        raise not_found("no such application")
