"""The marketplace's pure rules: listing fields, changes, replies, reasons (no database)."""

from __future__ import annotations

from typing import Any

import pytest

from parley.marketplace.rules import (
    ListingChanges,
    check_reason,
    check_reply_body,
    validate_listing_changes,
    validate_new_listing,
)
from parley.store.listing_records import NewListing

YEAR = 2026
GOOD: dict[str, Any] = {
    "title": "  Tidy Golf  ",
    "make": "Volkswagen",
    "model": "Golf",
    "year": 2017,
    "price_cents": 850_000,
}


def test_a_good_listing_is_normalised() -> None:
    fields = validate_new_listing({**GOOD, "currency": "eur", "extra": "ignored"}, this_year=YEAR)
    assert fields == NewListing("Tidy Golf", "Volkswagen", "Golf", 2017, 850_000, "EUR")
    assert validate_new_listing({**GOOD, "year": YEAR + 1}, this_year=YEAR) != {}
    assert isinstance(validate_new_listing({**GOOD, "year": 1886}, this_year=YEAR), NewListing)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"year": 1885}, "year"),
        ({"year": YEAR + 2}, "year"),
        ({"year": "2017"}, "year"),
        ({"year": False}, "year"),
        ({"price_cents": -1}, "price_cents"),
        ({"price_cents": 10**11 + 1}, "price_cents"),
        ({"price_cents": 1.5}, "price_cents"),
        ({"currency": "ABC"}, "currency"),
        ({"currency": 840}, "currency"),
        ({"mileage_km": -1}, "mileage_km"),
        ({"mileage_km": 10**9}, "mileage_km"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 121}, "title"),
        ({"title": "tab\there"}, "title"),
        ({"title": "\ud800"}, "title"),
        ({"make": "\x00"}, "make"),
        ({"model": ["Golf"]}, "model"),
        ({"description": "d" * 5001}, "description"),
        ({"description": "bell\x07"}, "description"),
        ({"location": "\x00"}, "location"),
        ({"title": None}, "title"),
    ],
)
def test_each_bad_field_is_named(change: dict[str, Any], field: str) -> None:
    errors = validate_new_listing({**GOOD, **change}, this_year=YEAR)
    assert isinstance(errors, dict)
    assert list(errors) == [field]


def test_missing_and_non_object_bodies() -> None:
    errors = validate_new_listing({}, this_year=YEAR)
    assert isinstance(errors, dict)
    assert set(errors) == {"title", "make", "model", "year", "price_cents"}
    assert validate_new_listing([], this_year=YEAR) == {"_body": ["must be a JSON object"]}


def test_changes_allow_clearing_and_refuse_hidden() -> None:
    changes = validate_listing_changes(
        {"mileage_km": None, "location": None, "description": None, "status": "sold"},
        this_year=YEAR,
    )
    assert changes == ListingChanges(
        {"description": "", "location": None, "mileage_km": None, "status": "sold"}
    )
    refused = validate_listing_changes({"status": "hidden"}, this_year=YEAR)
    assert refused == {"status": ["only moderators hide listings (POST .../hide)"]}
    assert "_body" in validate_listing_changes({"unknown": 1}, this_year=YEAR)  # type: ignore[operator]


def test_replies_and_reasons() -> None:
    assert check_reply_body("fine") == []
    assert check_reply_body("x" * 2001) == ["must be at most 2000 characters"]
    assert check_reply_body(" ") == ["must not be blank"]
    assert check_reason(None, 500, required=True) == ["is required"]
    assert check_reason(None, 500, required=False) == []
    assert check_reason("r" * 501, 500, required=False) == ["must be at most 500 characters"]
