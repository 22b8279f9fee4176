"""Reading a buyer's search from query parameters, and its cursors (no database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from parley.marketplace.search import (
    Position,
    SearchLimits,
    decode_cursor,
    encode_cursor,
    parse_search,
)
from parley.store.listing_search import ListingQuery, Sort, search_statement

LIMITS = SearchLimits(page_default=20, page_max=100, q_max_chars=200, relevance_window=50)


def parse(**params: str) -> ListingQuery | dict[str, list[str]]:
    return parse_search({k: [v] for k, v in params.items()}, this_year=2026, limits=LIMITS)


def test_defaults_and_relevance_with_q() -> None:
    assert parse() == ListingQuery(rank_window=50)
    query = parse(q="  leather  seats ", make=" Toyota ")
    assert isinstance(query, ListingQuery)
    assert (query.q, query.make, query.sort) == ("leather  seats", "Toyota", "relevance")
    blank = parse(q="   ")
    assert isinstance(blank, ListingQuery) and blank.q is None and blank.sort == "newest"


def test_every_cursor_round_trips_and_is_tied_to_its_sort() -> None:
    row = uuid.uuid4()
    now = datetime.now(UTC)
    for sort, position in (
        ("newest", Position((now, row))),
        ("price_asc", Position((125_000, row))),
        ("relevance", Position((0.0607927, row), now)),
    ):
        cursor = encode_cursor(sort, position)  # type: ignore[arg-type]
        assert decode_cursor(cursor, sort) == position  # type: ignore[arg-type]
        other: Sort = "price_desc"
        assert decode_cursor(cursor, other) == ["belongs to a search with another sort"]
    for bad in ("", "!!!", "bnVsbA", encode_cursor("relevance", Position((1.0, row)))):
        assert decode_cursor(bad, "relevance") == ["is not a valid cursor"], bad


def test_search_sql_binds_every_value() -> None:
    query = parse(q="'; DROP TABLE listings; --", make="x' OR 1=1", year_min="2000")
    assert isinstance(query, ListingQuery)
    sql, args = search_statement(query)
    assert "DROP" not in sql and "OR 1=1" not in sql
    assert "'; DROP TABLE listings; --" in args and "x' or 1=1" in args
