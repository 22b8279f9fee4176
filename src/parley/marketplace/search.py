"""The search a buyer runs (`GET /api/listings`), read from query parameters into a `ListingQuery`.

Every parameter is checked before anything reaches the database: an unknown parameter, a value of
the wrong type or out of range, a `q` longer than `marketplace.q_max_chars` or holding NUL, an
unknown sort or status, a malformed cursor: each is a field error naming the parameter (422),
never a query that fails or runs long.

Sorts: `newest` (the default), `price_asc`, `price_desc`, and `relevance` (the text-search rank;
the default when `q` is given, and only with `q`). Cursors are opaque: the sort and the keyset
position of the last listing of the page (`store.listing_search.sort_key`), in URL-safe base64. A
cursor made for another sort is refused rather than misread. `relevance` ranks the newest
`marketplace.relevance_window` matches, taken as of the first page (`ListingQuery.as_of`).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast

import orjson

from parley.marketplace.rules import (
    MAKE_MAX_CHARS,
    MODEL_MAX_CHARS,
    PRICE_MAX_CENTS,
    YEAR_MIN,
    FieldErrors,
    max_year,
)
from parley.store.listing_search import SORTS, STATUSES, ListingQuery, Sort, Status

PARAMETERS: Final = (
    "make",
    "model",
    "year_min",
    "year_max",
    "price_min",
    "price_max",
    "q",
    "seller_id",
    "status",
    "sort",
    "limit",
    "before",
)


@dataclass(frozen=True)
class SearchLimits:
    """The operational bounds of a search (`marketplace.*` settings)."""

    page_default: int
    page_max: int
    q_max_chars: int
    relevance_window: int = 200


def _text(raw: str, max_chars: int) -> list[str]:
    if len(raw) > max_chars:
        return [f"must be at most {max_chars} characters"]
    if "\x00" in raw or any("\ud800" <= ch <= "\udfff" for ch in raw):
        return ["must not contain NUL characters or lone surrogates"]
    return []


def _int(raw: str, minimum: int, maximum: int) -> int | list[str]:
    try:
        value = int(raw, 10) if raw.strip().lstrip("+-").isdigit() else None
    except ValueError:
        value = None
    if value is None:
        return ["must be an integer"]
    if not minimum <= value <= maximum:
        return [f"must be between {minimum} and {maximum}"]
    return value


@dataclass(frozen=True)
class Position:
    """Where a page starts: the keyset of the last listing before it, and for `relevance` the
    time its ranked set was taken at."""

    key: tuple[Any, uuid.UUID]
    as_of: datetime | None = None


def _time(value: object) -> datetime | None:
    try:
        at = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return at if at is not None and at.tzinfo is not None else None


def encode_cursor(sort: Sort, position: Position) -> str:
    value, row_id = position.key
    if isinstance(value, datetime):
        value = value.isoformat()
    parts = [sort, value, str(row_id)]
    if position.as_of is not None:
        parts.append(position.as_of.isoformat())
    return base64.urlsafe_b64encode(orjson.dumps(parts)).decode().rstrip("=")


def decode_cursor(cursor: str, sort: Sort) -> Position | list[str]:
    """The position in `cursor`, or the field errors of `before`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_for, value, row_id, *rest = orjson.loads(raw)
        parsed_id = uuid.UUID(row_id)
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        return ["is not a valid cursor"]
    if made_for != sort:
        return ["belongs to a search with another sort"]
    if sort == "newest":
        at = _time(value)
        return ["is not a valid cursor"] if at is None or rest else Position((at, parsed_id))
    if sort == "relevance":
        as_of = _time(rest[0]) if len(rest) == 1 else None
        if isinstance(value, bool) or not isinstance(value, int | float) or as_of is None:
            return ["is not a valid cursor"]
        return Position((float(value), parsed_id), as_of)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= PRICE_MAX_CENTS:
        return ["is not a valid cursor"]
    return ["is not a valid cursor"] if rest else Position((value, parsed_id))


def parse_search(
    params: Mapping[str, Sequence[str]], *, this_year: int, limits: SearchLimits
) -> ListingQuery | FieldErrors:
    """`params`: each query parameter with every value it was given (a parameter given twice is
    refused: which one would win is not obvious)."""
    errors: FieldErrors = {}
    values: dict[str, str] = {}
    for name, given in params.items():
        if name not in PARAMETERS:
            errors[name] = [f"is not a search parameter (known: {', '.join(PARAMETERS)})"]
        elif len(given) != 1:
            errors[name] = ["must be given once"]
        elif given[0] != "":
            values[name] = given[0]
    found: dict[str, Any] = {}
    for name, max_chars in (("make", MAKE_MAX_CHARS), ("model", MODEL_MAX_CHARS)):
        if name in values:
            problems = _text(values[name], max_chars)
            if problems:
                errors[name] = problems
            else:
                found[name] = values[name].strip()
    if "q" in values:
        problems = _text(values["q"], limits.q_max_chars)
        if problems:
            errors["q"] = problems
        elif values["q"].strip():
            found["q"] = values["q"].strip()
    bounds = {
        "year_min": (YEAR_MIN, max_year(this_year)),
        "year_max": (YEAR_MIN, max_year(this_year)),
        "price_min": (0, PRICE_MAX_CENTS),
        "price_max": (0, PRICE_MAX_CENTS),
        "limit": (1, limits.page_max),
    }
    for name, (low, high) in bounds.items():
        if name in values:
            parsed = _int(values[name], low, high)
            if isinstance(parsed, list):
                errors[name] = parsed
            else:
                found[name] = parsed
    for low_name, high_name in (("year_min", "year_max"), ("price_min", "price_max")):
        if low_name in found and high_name in found and found[low_name] > found[high_name]:
            errors[high_name] = [f"must not be less than {low_name}"]
    if "seller_id" in values:
        try:
            found["seller_id"] = uuid.UUID(values["seller_id"])
        except ValueError:
            errors["seller_id"] = ["must be a user id (a UUID)"]
    status = values.get("status", "active")
    if status not in STATUSES:
        errors["status"] = [f"must be one of: {', '.join(STATUSES)}"]
    sort = values.get("sort", "relevance" if "q" in found else "newest")
    if sort not in SORTS:
        errors["sort"] = [f"must be one of: {', '.join(SORTS)}"]
    elif sort == "relevance" and "q" not in found and "q" not in errors:
        errors["sort"] = ["relevance needs q"]
    if "before" in values and "sort" not in errors:
        position = decode_cursor(values["before"], cast(Sort, sort))
        if isinstance(position, list):
            errors["before"] = position
        else:
            found["after"] = position.key
            found["as_of"] = position.as_of
    if errors:
        return errors
    return ListingQuery(
        status=cast(Status, status),
        sort=cast(Sort, sort),
        limit=found.pop("limit", limits.page_default),
        rank_window=limits.relevance_window,
        **found,
    )
