"""What a listing, a reply and a moderation reason must be (DESIGN §4.1), as pure validators.

Each `validate_*` returns the checked values or `FieldErrors` (`{"year": ["must be between 1886
and 2027"]}`), which the API puts under `error.fields` of a 422; nothing here raises for bad input.
Sizes count Unicode code points, as users see them. Text that PostgreSQL cannot store (NUL, lone
surrogates) is refused, and so are control characters in one-line fields; one-line fields are
stored without surrounding whitespace, so that "Toyota " finds "Toyota".

Bounds fixed by the contract are constants here (and CHECK constraints in migration 0006); the
operational ones (page sizes, the length of a search) are settings (`marketplace.*`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from parley.actors.message_rules import check_text
from parley.marketplace.currencies import DEFAULT_CURRENCY, ISO_4217
from parley.store.listing_records import EDITABLE, NewListing

FieldErrors = dict[str, list[str]]

TITLE_MAX_CHARS: Final = 120
MAKE_MAX_CHARS: Final = 40
MODEL_MAX_CHARS: Final = 40
DESCRIPTION_MAX_CHARS: Final = 5000
LOCATION_MAX_CHARS: Final = 120
REPLY_MAX_CHARS: Final = 2000
YEAR_MIN: Final = 1886
"""Benz's Patent-Motorwagen; next year is the most (a car sold before its model year starts)."""
PRICE_MAX_CENTS: Final = 10**11
MILEAGE_MAX_KM: Final = 100_000_000
"""Far above any odometer (the record is under 5 million km); keeps the column an integer."""
SELLER_STATUSES: Final = ("active", "sold")
BODY_FIELD: Final = "_body"


def max_year(this_year: int) -> int:
    return this_year + 1


def _storable(value: str) -> str | None:
    if "\x00" in value:
        return "must not contain NUL characters"
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        return "must not contain lone surrogates"
    return None


def check_line(value: object, max_chars: int, *, required: bool = True) -> list[str]:
    """A one-line string of at most `max_chars` (after trimming), non-blank when `required`."""
    if not isinstance(value, str):
        return ["must be a string"]
    text = value.strip()
    if required and not text:
        return ["must not be blank"]
    if len(text) > max_chars:
        return [f"must be at most {max_chars} characters"]
    problem = _storable(text)
    if problem:
        return [problem]
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in text):
        return ["must be a single line of text"]
    return []


def check_description(value: object) -> list[str]:
    """Free text of at most 5,000 characters: newlines and tabs allowed, may be empty."""
    if not isinstance(value, str):
        return ["must be a string"]
    if len(value) > DESCRIPTION_MAX_CHARS:
        return [f"must be at most {DESCRIPTION_MAX_CHARS} characters"]
    problem = _storable(value)
    if problem:
        return [problem]
    if any((ord(ch) < 0x20 and ch not in "\n\r\t") or 0x7F <= ord(ch) < 0xA0 for ch in value):
        return ["must not contain control characters"]
    return []


def check_int(value: object, minimum: int, maximum: int) -> list[str]:
    """An integer from `minimum` to `maximum`: a JSON number without a fraction (`12.0` too, as
    JSON Schema's `integer` counts it; not true/false)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return ["must be an integer"]
    if not minimum <= value <= maximum:
        return [f"must be between {minimum} and {maximum}"]
    return []


def check_currency(value: object) -> list[str]:
    if not isinstance(value, str) or value.upper() not in ISO_4217:
        return ["must be an ISO 4217 currency code, e.g. USD or EUR"]
    return []


def check_reply_body(value: object) -> list[str]:
    """A reply: the message text rule (`message_rules.check_text`) at 2,000 characters."""
    return check_text(value, REPLY_MAX_CHARS)


def check_reason(value: object, max_chars: int, *, required: bool) -> list[str]:
    """A moderator's reason: one line of at most `max_chars`; None allowed unless `required`."""
    if value is None:
        return ["is required"] if required else []
    return check_line(value, max_chars)


def _field_checks(this_year: int) -> dict[str, Any]:
    return {
        "title": lambda v: check_line(v, TITLE_MAX_CHARS),
        "make": lambda v: check_line(v, MAKE_MAX_CHARS),
        "model": lambda v: check_line(v, MODEL_MAX_CHARS),
        "year": lambda v: check_int(v, YEAR_MIN, max_year(this_year)),
        "price_cents": lambda v: check_int(v, 0, PRICE_MAX_CENTS),
        "currency": check_currency,
        "mileage_km": lambda v: check_int(v, 0, MILEAGE_MAX_KM),
        "description": check_description,
        "location": lambda v: check_line(v, LOCATION_MAX_CHARS, required=False),
        "status": lambda v: (
            []
            if v in SELLER_STATUSES
            else ["only moderators hide listings (POST .../hide)"]
            if v == "hidden"
            else [f"must be one of: {', '.join(SELLER_STATUSES)}"]
        ),
    }


_NULLABLE: Final = frozenset({"mileage_km", "location", "description"})
_INTEGERS: Final = frozenset({"year", "price_cents", "mileage_km"})
_REQUIRED: Final = ("title", "make", "model", "year", "price_cents")


def _normalized(name: str, value: Any) -> Any:
    if value is None:
        return "" if name == "description" else None
    if name == "currency":
        return value.upper()
    if name in _INTEGERS:
        return int(value)  # 12.0 was checked as an integer (`check_int`)
    if name in ("title", "make", "model", "location"):
        stripped = value.strip()
        return stripped if stripped or name != "location" else None
    return value


def _checked(body: Mapping[str, Any], names: list[str], this_year: int) -> FieldErrors:
    checks = _field_checks(this_year)
    errors: FieldErrors = {}
    for name in names:
        value = body[name]
        if value is None:
            if name not in _NULLABLE:
                errors[name] = ["must not be null"]
            continue
        problems = checks[name](value)
        if problems:
            errors[name] = problems
    return errors


def validate_new_listing(body: object, *, this_year: int) -> NewListing | FieldErrors:
    """POST /api/listings {title, make, model, year, price_cents, currency?, mileage_km?,
    description?, location?}. Unknown fields are ignored (clients may send more than we read);
    `status` is not taken here: a new listing is active."""
    if not isinstance(body, Mapping):
        return {BODY_FIELD: ["must be a JSON object"]}
    errors: FieldErrors = {name: ["is required"] for name in _REQUIRED if body.get(name) is None}
    present = [n for n in EDITABLE - {"status"} if n in body and n not in errors]
    errors.update(_checked(body, sorted(present), this_year))
    if errors:
        return errors
    values = {name: _normalized(name, body[name]) for name in present}
    values.setdefault("currency", DEFAULT_CURRENCY)
    return NewListing(**values)


@dataclass(frozen=True)
class ListingChanges:
    """A seller's checked changes: column -> new value (columns of `listing_records.EDITABLE`)."""

    values: dict[str, Any]


def validate_listing_changes(body: object, *, this_year: int) -> ListingChanges | FieldErrors:
    """PATCH /api/listings/{id}: any of the editable fields, and `status` active or sold.
    `null` clears mileage_km, location and description."""
    if not isinstance(body, Mapping):
        return {BODY_FIELD: ["must be a JSON object"]}
    present = sorted(n for n in EDITABLE if n in body)
    if not present:
        return {BODY_FIELD: [f"give at least one of: {', '.join(sorted(EDITABLE))}"]}
    errors = _checked(body, present, this_year)
    if errors:
        return errors
    return ListingChanges({name: _normalized(name, body[name]) for name in present})
