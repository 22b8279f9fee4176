"""Reading request input: JSON bodies and query parameters, with errors in the documented shape."""

from __future__ import annotations

from typing import Any

import orjson
from quart import request

from parley.api.errors import ApiError, bad_request, invalid


async def json_object() -> dict[str, Any]:
    """The request body as a JSON object, or a 400 (not JSON, not an object) / 413 (too large)."""
    mimetype = request.mimetype
    if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "expected an application/json body")
    raw = await request.get_data(cache=True, as_text=False)
    if not raw:
        raise bad_request("expected a JSON object body")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request("body is not valid JSON") from None
    if not isinstance(value, dict):
        raise bad_request("expected a JSON object body")
    return value


def query_int(name: str, default: int, *, minimum: int, maximum: int) -> int:
    """An integer query parameter within bounds, or a 422 naming it."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid({name: ["must be an integer"]}) from None
    if not minimum <= value <= maximum:
        raise invalid({name: [f"must be between {minimum} and {maximum}"]})
    return value


def query_optional_int(name: str, *, minimum: int = 0) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise invalid({name: ["must be an integer"]}) from None
    if value < minimum or value > 2**62:
        raise invalid({name: [f"must be an integer >= {minimum}"]})
    return value
