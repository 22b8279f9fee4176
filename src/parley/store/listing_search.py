"""Listing search as one statement, built from a `ListingQuery` (DESIGN §4.1).

Filters become predicates with bound parameters (never text spliced into SQL), `q` goes through
`websearch_to_tsquery`, which accepts any string (quotes, `-word`, `or`, SQL or regex
metacharacters) without a syntax error, and the order is a keyset over the sort's columns plus the
id, so a page never repeats or skips a listing while new ones arrive. Every search reads only live
rows (not hidden, not deleted) through the partial indexes of migration 0006. `store.listings` runs
the statement under its time bound; the benchmark EXPLAINs the same statement.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from parley.store.listing_records import LISTING_COLUMNS, LISTING_FROM, Listing

Sort = Literal["newest", "price_asc", "price_desc", "relevance"]
Status = Literal["active", "sold", "hidden"]
SORTS: Final = ("newest", "price_asc", "price_desc", "relevance")
STATUSES: Final = ("active", "sold", "hidden")


class SearchTimeout(Exception):
    """A search ran past its time bound and was cancelled by the database."""


@dataclass(frozen=True)
class ListingQuery:
    """A search: filters (None: not filtered), the sort, the page size and where the page starts.

    `make` and `model` are compared case-insensitively (pass them as typed); `q` is the user's text
    as typed. `after` is the keyset position of the last row of the previous page, in the sort's
    own terms (`sort_key`).

    `relevance` ranks the `rank_window` newest listings that match (ranking every match of a
    common word costs time in proportion to the matches; docs/settings.md has the figures), as
    they were at `as_of`: the cursor carries it, so later pages rank the same set however many
    listings arrive meanwhile.
    """

    status: Status = "active"
    make: str | None = None
    model: str | None = None
    year_min: int | None = None
    year_max: int | None = None
    price_min: int | None = None
    price_max: int | None = None
    seller_id: uuid.UUID | None = None
    q: str | None = None
    sort: Sort = "newest"
    limit: int = 20
    after: tuple[Any, uuid.UUID] | None = None
    rank_window: int = 200
    as_of: datetime | None = None


def sort_key(listing: Listing, sort: Sort) -> tuple[Any, uuid.UUID]:
    """The keyset position of `listing` in a search sorted by `sort` (the next page's cursor)."""
    if sort == "newest":
        return listing.created_at, listing.id
    if sort == "relevance":
        return listing.rank, listing.id
    return listing.price_cents, listing.id


_LIVE = "l.hidden_at IS NULL AND l.deleted_at IS NULL"

# Keyset order of each sort: (ORDER BY, the comparison that starts the next page).
_ORDER: Final[dict[str, tuple[str, str]]] = {
    "newest": ("l.created_at DESC, l.id DESC", "(l.created_at, l.id) < ({0}::timestamptz, {1})"),
    "price_asc": ("l.price_cents ASC, l.id ASC", "(l.price_cents, l.id) > ({0}::bigint, {1})"),
    "price_desc": ("l.price_cents DESC, l.id DESC", "(l.price_cents, l.id) < ({0}::bigint, {1})"),
    "relevance": ("rank DESC, l.id DESC", "(ts_rank(l.search, query), l.id) < ({0}::real, {1})"),
}


def search_statement(query: ListingQuery) -> tuple[str, list[Any]]:
    """The SQL and parameters of a search (also what the benchmark EXPLAINs)."""
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    where: list[str] = []
    if query.status == "hidden":
        where.append("l.hidden_at IS NOT NULL AND l.deleted_at IS NULL")
    else:
        where.append(f"{_LIVE} AND l.status = {arg(query.status)}")
    if query.make is not None:
        where.append(f"lower(l.make) = {arg(query.make.lower())}")
    if query.model is not None:
        where.append(f"lower(l.model) = {arg(query.model.lower())}")
    if query.year_min is not None:
        where.append(f"l.year >= {arg(query.year_min)}")
    if query.year_max is not None:
        where.append(f"l.year <= {arg(query.year_max)}")
    if query.price_min is not None:
        where.append(f"l.price_cents >= {arg(query.price_min)}")
    if query.price_max is not None:
        where.append(f"l.price_cents <= {arg(query.price_max)}")
    if query.seller_id is not None:
        where.append(f"l.seller_id = {arg(query.seller_id)}")
    order, start = _ORDER[query.sort]
    if query.q is None:
        if query.after is not None:
            where.append(start.format(arg(query.after[0]), arg(query.after[1])))
        sql = (
            f"SELECT {LISTING_COLUMNS} FROM {LISTING_FROM} WHERE {' AND '.join(where)} "
            f"ORDER BY {order} LIMIT {arg(query.limit)}"
        )
        return sql, args
    text_query = f"websearch_to_tsquery('english', {arg(query.q)}) AS query"
    where.append("l.search @@ query")
    if query.sort != "relevance":
        if query.after is not None:
            where.append(start.format(arg(query.after[0]), arg(query.after[1])))
        sql = (
            f"SELECT {LISTING_COLUMNS} FROM {LISTING_FROM} CROSS JOIN {text_query} "
            f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT {arg(query.limit)}"
        )
        return sql, args
    # Relevance: the newest `rank_window` matches as of `as_of`, then ranked.
    if query.as_of is not None:
        where.append(f"l.created_at <= {arg(query.as_of)}")
    matches = f"SELECT l.* FROM listings l CROSS JOIN {text_query} WHERE {' AND '.join(where)}"
    if _narrowed(query):
        # With other filters the matches are few, but the planner, counting on finding the
        # newest ones early, walks the newest-first index testing every row against the text.
        # OFFSET 0 keeps the subquery's own plan, which intersects the text index with the
        # filters' (the figures: docs/marketplace.md, "Performance").
        matches = f"SELECT m.* FROM ({matches} OFFSET 0) m"
        where_alias = "m"
    else:
        where_alias = "l"
    window = (
        f"{matches} ORDER BY {where_alias}.created_at DESC, {where_alias}.id DESC "
        f"LIMIT {arg(query.rank_window)}"
    )
    page = ""
    if query.after is not None:
        page = "WHERE " + start.format(arg(query.after[0]), arg(query.after[1]))
    sql = (
        f"SELECT {LISTING_COLUMNS}, ts_rank(l.search, query) AS rank "
        f"FROM ({window}) l JOIN users u ON u.id = l.seller_id CROSS JOIN {text_query} "
        f"{page} ORDER BY {order} LIMIT {arg(query.limit)}"
    )
    return sql, args


def _narrowed(query: ListingQuery) -> bool:
    """Whether a search filters on more than its status and text."""
    narrowing = (
        query.make,
        query.model,
        query.year_min,
        query.year_max,
        query.price_min,
        query.price_max,
        query.seller_id,
    )
    return query.status == "hidden" or any(value is not None for value in narrowing)
