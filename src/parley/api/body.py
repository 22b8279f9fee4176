"""Reading request input: JSON bodies, form bodies and query parameters, with errors in the
documented shape."""

from __future__ import annotations

from typing import Any, Final

import orjson
from quart import request

from parley.api.errors import ApiError, bad_request, invalid

JSON: Final = "application/json"
FORM: Final = "application/x-www-form-urlencoded"


def _is_json(mimetype: str) -> bool:
    # No Content-Type at all reads as JSON: scripts often leave it out.
    return not mimetype or mimetype == JSON or mimetype.endswith("+json")


async def json_object() -> dict[str, Any]:
    """The request body as a JSON object, or a 400 (not JSON, not an object) / 413 (too large)."""
    if not _is_json(request.mimetype):
        raise ApiError(415, "unsupported_media_type", f"expected an {JSON} body")
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


async def json_or_form_object() -> dict[str, Any]:
    """The body as a JSON object or as an HTML form (`application/x-www-form-urlencoded`, what
    `curl --data` sends).

    A form reads as a dict of strings; a field given twice reads as a list of them, which the
    handler's string check then refuses (422). Anything else is a 415 naming both media types.
    """
    if request.mimetype == FORM:
        form = await request.form
        return {key: values[0] if len(values) == 1 else values for key, values in form.lists()}
    if not _is_json(request.mimetype):
        raise ApiError(415, "unsupported_media_type", f"expected an {JSON} or {FORM} body")
    return await json_object()


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
