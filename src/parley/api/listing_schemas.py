"""The OpenAPI shapes of the marketplace's REST routes (`api.listings`): records, bodies, queries.

Kept apart from the handlers so the routes read as what they do; the bounds in these schemas are
the ones `parley.marketplace.rules` enforces (the same constants), so the document and the checks
cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from parley.actors.message_rules import CLIENT_ID_MAX_CHARS
from parley.api.conversations import CONVERSATION_DETAIL
from parley.api.pagination import PAGE_QUERY
from parley.api.schemas import CLIENT_ID, MESSAGE, TEXT, TIME, UUID, obj, query_parameter
from parley.marketplace import rules
from parley.marketplace.currencies import ISO_4217
from parley.store.listing_search import SORTS, STATUSES

PERSON = obj(
    {"id": UUID, "username": {"type": "string"}, "display_name": {"type": ["string", "null"]}}
)
LISTING = obj(
    {
        "id": UUID,
        "seller": PERSON,
        "title": {"type": "string", "minLength": 1, "maxLength": rules.TITLE_MAX_CHARS},
        "make": {"type": "string"},
        "model": {"type": "string"},
        "year": {"type": "integer"},
        "price_cents": {"type": "integer", "minimum": 0},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "mileage_km": {"type": ["integer", "null"], "minimum": 0},
        "description": {"type": "string"},
        "location": {"type": ["string", "null"]},
        "status": {"type": "string", "enum": ["active", "sold", "hidden"]},
        "hidden_reason": {"type": ["string", "null"]},
        "reply_count": {"type": "integer", "minimum": 0},
        "created_at": TIME,
        "updated_at": TIME,
    }
)
REPLY = obj(
    {
        "id": UUID,
        "listing_id": UUID,
        "author": {"anyOf": [PERSON, {"type": "null"}]},
        "body": {"type": "string"},
        "hidden": {"type": "boolean"},
        "created_at": TIME,
        "deleted_at": {"type": ["string", "null"], "format": "date-time"},
    }
)
_FIELDS: dict[str, Any] = {
    "title": {"type": "string", "minLength": 1, "maxLength": rules.TITLE_MAX_CHARS},
    "make": {"type": "string", "minLength": 1, "maxLength": rules.MAKE_MAX_CHARS},
    "model": {"type": "string", "minLength": 1, "maxLength": rules.MODEL_MAX_CHARS},
    "year": {"type": "integer", "minimum": rules.YEAR_MIN},
    "price_cents": {"type": "integer", "minimum": 0, "maximum": rules.PRICE_MAX_CENTS},
    "currency": {
        "type": "string",
        "enum": sorted(ISO_4217),
        "description": "ISO 4217 (any case), default USD",
    },
    "mileage_km": {"type": ["integer", "null"], "minimum": 0, "maximum": rules.MILEAGE_MAX_KM},
    "description": {"type": ["string", "null"], "maxLength": rules.DESCRIPTION_MAX_CHARS},
    "location": {"type": ["string", "null"], "maxLength": rules.LOCATION_MAX_CHARS},
}
CREATE_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["title", "make", "model", "year", "price_cents"],
    "properties": _FIELDS,
}
PATCH_BODY: dict[str, Any] = {
    "type": "object",
    "description": "at least one field",
    "properties": {**_FIELDS, "status": {"type": "string", "enum": ["active", "sold"]}},
}
REASON_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["reason"],
    "properties": {"reason": {"type": "string", "minLength": 1}},
}
OPTIONAL_REASON_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {"reason": {"type": "string", "minLength": 1}},
}
REPLY_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["body"],
    "properties": {"body": {**TEXT, "maxLength": rules.REPLY_MAX_CHARS}},
}
CONTACT_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "body": TEXT,
        "client_id": {**CLIENT_ID, "maxLength": CLIENT_ID_MAX_CHARS},
    },
    # A client_id names the first message: it comes with a body or not at all.
    "anyOf": [{"required": ["body"]}, {"properties": {"client_id": False}}],
}
CONTACT = obj(
    {"conversation": CONVERSATION_DETAIL, "message": {"anyOf": [MESSAGE, {"type": "null"}]}}
)
SEARCH_QUERY = [
    query_parameter("make", {"type": "string"}, "exactly this make, any case"),
    query_parameter("model", {"type": "string"}, "exactly this model, any case"),
    query_parameter("year_min", {"type": "integer"}, "built in or after"),
    query_parameter("year_max", {"type": "integer"}, "built in or before"),
    query_parameter("price_min", {"type": "integer", "minimum": 0}, "cents, at least"),
    query_parameter("price_max", {"type": "integer", "minimum": 0}, "cents, at most"),
    query_parameter("q", {"type": "string"}, "full text over title, make, model, description"),
    query_parameter("seller_id", UUID, "one seller's listings"),
    query_parameter(
        "status",
        {"type": "string", "enum": list(STATUSES)},
        "active (default), sold, or hidden (moderators; sellers with their own seller_id)",
    ),
    query_parameter(
        "sort",
        {"type": "string", "enum": list(SORTS)},
        "newest (default), price_asc, price_desc, relevance (the default with q; needs q)",
    ),
    *PAGE_QUERY,
]
DELETE_QUERY = [
    query_parameter(
        "reason",
        {"type": "string"},
        "why (required when a moderator deletes what is not theirs; recorded in the audit log)",
    )
]
