"""Listings and their reply threads: the marketplace aggregate's SQL (DESIGN §4.1).

Search is one statement built from a `ListingQuery`: filters become predicates with bound
parameters (never text spliced into SQL), `q` goes through `websearch_to_tsquery`, which accepts any
string (quotes, `-word`, `or`, SQL or regex metacharacters) without a syntax error, and the order
is a keyset over the sort's columns plus the id, so a page never repeats or skips a listing while
new ones arrive. Every search reads only live rows (not hidden, not deleted) through the partial
indexes of migration 0006, and has a time bound of its own (`time_bound`): past it the
database cancels the statement and `SearchTimeout` is raised.

Moderation writes (hide, unhide, a moderator's delete) take an `AuditEntry` and record it in the
same transaction as the change.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import asyncpg

from parley.store.audit import AuditEntry, record
from parley.store.database import Connection, Database, Record

Sort = Literal["newest", "price_asc", "price_desc", "relevance"]
Status = Literal["active", "sold", "hidden"]
SORTS: Final = ("newest", "price_asc", "price_desc", "relevance")
STATUSES: Final = ("active", "sold", "hidden")
"""The columns a seller may change (`ListingStore.update`)."""


class SearchTimeout(Exception):
    """A search ran past its time bound and was cancelled by the database."""


@dataclass(frozen=True)
class PublicUser:
    """A seller or reply author as everyone sees them."""

    id: uuid.UUID
    username: str
    display_name: str | None


@dataclass(frozen=True)
class NewListing:
    """A listing's fields once they passed `parley.marketplace.rules`."""

    title: str
    make: str
    model: str
    year: int
    price_cents: int
    currency: str = "USD"
    mileage_km: int | None = None
    description: str = ""
    location: str | None = None


LISTING_FIELDS: Final = tuple(field.name for field in dataclasses.fields(NewListing))
"""A listing's own fields, in the order of `NewListing` (and of its columns)."""
EDITABLE: Final = frozenset({*LISTING_FIELDS, "status"})
"""What a seller may change."""


@dataclass(frozen=True)
class Listing:
    id: uuid.UUID
    seller: PublicUser
    title: str
    make: str
    model: str
    year: int
    price_cents: int
    currency: str
    mileage_km: int | None
    description: str
    location: str | None
    status: str
    """What the seller set: "active" or "sold" (see `shown_status`)."""
    hidden_at: datetime | None
    hidden_reason: str | None
    deleted_at: datetime | None
    reply_count: int
    created_at: datetime
    updated_at: datetime
    rank: float | None = None
    """The text-search rank, in searches with `q` sorted by relevance (the cursor carries it)."""

    @property
    def shown_status(self) -> str:
        """The status clients see: "hidden" while a moderator hides it, else the seller's."""
        return "hidden" if self.hidden_at is not None else self.status


@dataclass(frozen=True)
class Reply:
    id: uuid.UUID
    listing_id: uuid.UUID
    author: PublicUser | None
    """None once the author's account is gone."""
    body: str
    hidden_at: datetime | None
    hidden_reason: str | None
    deleted_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class ListingQuery:
    """A search: filters (None: not filtered), the sort, the page size and where the page starts.

    `make` and `model` are compared case-insensitively (pass them as typed); `q` is the user's text
    as typed. `after` is the keyset position of the last row of the previous page, in the sort's
    own terms (`sort_key`).

    `relevance` ranks the `rank_window` newest listings that match (ranking every match of a
    common word costs time in proportion to the matches: tens of milliseconds at 100,000
    listings), as they were at `as_of`: the cursor carries it, so later pages rank the same set
    however many listings arrive meanwhile.
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


_LISTING_COLUMNS = (
    "l.id, l.title, l.make, l.model, l.year, l.price_cents, l.currency, l.mileage_km, "
    "l.description, l.location, l.status, l.hidden_at, l.hidden_reason, l.deleted_at, "
    "l.reply_count, l.created_at, l.updated_at, "
    "u.id AS seller_id, u.username AS seller_username, u.display_name AS seller_display_name"
)
_FROM = "listings l JOIN users u ON u.id = l.seller_id"
_LIVE = "l.hidden_at IS NULL AND l.deleted_at IS NULL"

# Keyset order of each sort: (ORDER BY, the comparison that starts the next page).
_ORDER: Final[dict[str, tuple[str, str]]] = {
    "newest": ("l.created_at DESC, l.id DESC", "(l.created_at, l.id) < ({0}::timestamptz, {1})"),
    "price_asc": ("l.price_cents ASC, l.id ASC", "(l.price_cents, l.id) > ({0}::bigint, {1})"),
    "price_desc": ("l.price_cents DESC, l.id DESC", "(l.price_cents, l.id) < ({0}::bigint, {1})"),
    "relevance": ("rank DESC, l.id DESC", "(ts_rank(l.search, query), l.id) < ({0}::real, {1})"),
}


_NOT_COLUMNS = ("seller", "rank")


def _listing(row: Record) -> Listing:
    seller = PublicUser(row["seller_id"], row["seller_username"], row["seller_display_name"])
    values = {name: row[name] for name in Listing.__dataclass_fields__ if name not in _NOT_COLUMNS}
    return Listing(seller=seller, rank=row.get("rank"), **values)


_REPLY_COLUMNS = (
    "r.id, r.listing_id, r.body, r.hidden_at, r.hidden_reason, r.deleted_at, r.created_at, "
    "a.id AS author_id, a.username AS author_username, a.display_name AS author_display_name"
)
_REPLY_FROM = "listing_replies r LEFT JOIN users a ON a.id = r.author_id"


def _reply(row: Record) -> Reply:
    author = None
    if row["author_id"] is not None:
        author = PublicUser(row["author_id"], row["author_username"], row["author_display_name"])
    return Reply(
        id=row["id"],
        listing_id=row["listing_id"],
        author=author,
        body=row["body"],
        hidden_at=row["hidden_at"],
        hidden_reason=row["hidden_reason"],
        deleted_at=row["deleted_at"],
        created_at=row["created_at"],
    )


async def _listing_on(conn: Connection, listing_id: uuid.UUID) -> Listing | None:
    row = await conn.fetchrow(
        f"SELECT {_LISTING_COLUMNS} FROM {_FROM} WHERE l.id = $1 AND l.deleted_at IS NULL",
        listing_id,
    )
    return _listing(row) if row else None


async def _reply_on(conn: Connection, reply_id: uuid.UUID) -> Reply:
    row = await conn.fetchrow(
        f"SELECT {_REPLY_COLUMNS} FROM {_REPLY_FROM} WHERE r.id = $1", reply_id
    )
    assert row is not None
    return _reply(row)


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
            f"SELECT {_LISTING_COLUMNS} FROM {_FROM} WHERE {' AND '.join(where)} "
            f"ORDER BY {order} LIMIT {arg(query.limit)}"
        )
        return sql, args
    text_query = f"websearch_to_tsquery('english', {arg(query.q)}) AS query"
    where.append("l.search @@ query")
    if query.sort != "relevance":
        if query.after is not None:
            where.append(start.format(arg(query.after[0]), arg(query.after[1])))
        sql = (
            f"SELECT {_LISTING_COLUMNS} FROM {_FROM} CROSS JOIN {text_query} "
            f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT {arg(query.limit)}"
        )
        return sql, args
    # Relevance: the newest `rank_window` matches as of `as_of`, then ranked.
    if query.as_of is not None:
        where.append(f"l.created_at <= {arg(query.as_of)}")
    matches = f"SELECT l.* FROM listings l CROSS JOIN {text_query} WHERE {' AND '.join(where)}"
    if _narrowed(query):
        # With other filters the matches are few, but the planner, counting on finding the
        # newest ones early, walks the newest-first index testing every row against the text
        # (measured: 20-70 ms for "porsche" built 2010-2015). OFFSET 0 keeps the subquery's
        # own plan, which intersects the text index with the filters' (1-3 ms).
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
        f"SELECT {_LISTING_COLUMNS}, ts_rank(l.search, query) AS rank "
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


class ListingStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    # --- listings -------------------------------------------------------------------------------

    async def create(self, seller_id: uuid.UUID, fields: NewListing) -> Listing:
        row = await self._db.fetchrow(
            f"""WITH l AS (
                    INSERT INTO listings (seller_id, title, make, model, year, price_cents,
                                          currency, mileage_km, description, location)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *)
                SELECT {_LISTING_COLUMNS} FROM l JOIN users u ON u.id = l.seller_id""",
            seller_id,
            fields.title,
            fields.make,
            fields.model,
            fields.year,
            fields.price_cents,
            fields.currency,
            fields.mileage_km,
            fields.description,
            fields.location,
        )
        assert row is not None
        return _listing(row)

    async def insert_many(self, rows: Sequence[tuple[uuid.UUID, NewListing, datetime, str]]) -> int:
        """Bulk-load listings (the demo and the benchmark): (seller, fields, created_at, status)
        per row, with COPY; returns how many were written."""
        columns = ["seller_id", *LISTING_FIELDS, "status", "created_at", "updated_at"]
        records = [
            (seller, *(getattr(f, name) for name in LISTING_FIELDS), status, created_at, created_at)
            for seller, f, created_at, status in rows
        ]

        async def copy(conn: Connection) -> int:
            await conn.copy_records_to_table("listings", records=records, columns=columns)
            return len(records)

        return await self._db.transaction(copy)

    async def analyze(self) -> None:
        """Refresh the planner's statistics after a bulk load (autovacuum would, later)."""
        await self._db.execute("ANALYZE listings")

    async def get(self, listing_id: uuid.UUID) -> Listing | None:
        """The listing, hidden or not; None when it does not exist or was deleted."""
        row = await self._db.fetchrow(
            f"SELECT {_LISTING_COLUMNS} FROM {_FROM} WHERE l.id = $1 AND l.deleted_at IS NULL",
            listing_id,
        )
        return _listing(row) if row else None

    async def search(self, query: ListingQuery, *, time_bound: float) -> list[Listing]:
        """One page of a search; raises `SearchTimeout` after `time_bound` seconds (the server
        stops the statement, not only the wait for it).

        asyncpg prepares every statement, and after five runs PostgreSQL may plan it once for
        any values (a generic plan). For searches without `q` that is what we want: with the
        statistics of migration 0006 the generic plans are the right ones, and planning is
        skipped. A text search's best plan depends on how common its words are (walk the
        newest-first index for a common word, intersect the text index for a rare one), so it
        runs with a plan for its own values (`plan_cache_mode`), in a transaction of its own:
        measured on 100,000 listings, a generic plan made "porsche" built 2010-2015 take 70 ms
        instead of 20-30.
        """
        sql, args = search_statement(query)
        try:
            if query.q is None:
                rows = await self._db.run(lambda pool: pool.fetch(sql, *args, timeout=time_bound))
            else:
                settings = (
                    "SET LOCAL plan_cache_mode = force_custom_plan; "
                    f"SET LOCAL statement_timeout = {max(1, round(time_bound * 1000))}"
                )

                async def run(conn: Connection) -> list[Record]:
                    await conn.execute(settings)
                    return await conn.fetch(sql, *args)

                rows = await self._db.transaction(run)
        except (TimeoutError, asyncpg.QueryCanceledError):
            raise SearchTimeout(f"the search took longer than {time_bound} s") from None
        return [_listing(row) for row in rows]

    async def update(
        self, listing_id: uuid.UUID, seller_id: uuid.UUID, changes: Mapping[str, Any]
    ) -> tuple[Listing, str] | None:
        """Apply a seller's changes (columns from `EDITABLE`); (the listing now, the status it had
        before), or None when it is not theirs or is gone."""
        assert changes and set(changes) <= EDITABLE, set(changes) - EDITABLE
        assignments = ", ".join(f"{column} = ${i + 3}" for i, column in enumerate(changes))

        async def change(conn: Connection) -> tuple[Listing, str] | None:
            before = await conn.fetchval(
                """SELECT status FROM listings
                   WHERE id = $1 AND seller_id = $2 AND deleted_at IS NULL FOR UPDATE""",
                listing_id,
                seller_id,
            )
            if before is None:
                return None
            await conn.execute(
                f"UPDATE listings SET {assignments}, updated_at = now() WHERE id = $1 AND "
                "seller_id = $2",
                listing_id,
                seller_id,
                *changes.values(),
            )
            listing = await _listing_on(conn, listing_id)
            assert listing is not None
            return listing, before

        return await self._db.transaction(change)

    async def delete(self, listing_id: uuid.UUID, audit: AuditEntry | None) -> Listing | None:
        """Mark the listing deleted (and record `audit`, a moderator's delete); the listing as it
        was, or None when it did not exist (or was deleted already)."""

        async def remove(conn: Connection) -> Listing | None:
            listing = await _listing_on(conn, listing_id)
            if listing is None:
                return None
            await conn.execute(
                "UPDATE listings SET deleted_at = now(), updated_at = now() WHERE id = $1",
                listing_id,
            )
            if audit is not None:
                await record(conn, audit)
            return listing

        return await self._db.transaction(remove)

    async def set_hidden(
        self, listing_id: uuid.UUID, *, hidden: bool, reason: str | None, audit: AuditEntry
    ) -> Listing | None:
        """Hide (with `reason`) or unhide a listing and record `audit`; None when it is gone."""

        async def moderate(conn: Connection) -> Listing | None:
            status = await conn.execute(
                """UPDATE listings SET
                       hidden_at = CASE WHEN $2 THEN COALESCE(hidden_at, now()) END,
                       hidden_reason = CASE WHEN $2 THEN $3 END,
                       updated_at = now()
                   WHERE id = $1 AND deleted_at IS NULL""",
                listing_id,
                hidden,
                reason,
            )
            if status != "UPDATE 1":
                return None
            await record(conn, audit)
            return await _listing_on(conn, listing_id)

        return await self._db.transaction(moderate)

    # --- replies --------------------------------------------------------------------------------

    async def replies(
        self,
        listing_id: uuid.UUID,
        *,
        limit: int,
        after: tuple[datetime, uuid.UUID] | None,
        viewer_id: uuid.UUID | None,
        see_hidden: bool,
    ) -> list[Reply]:
        """The thread oldest first, keyset-paginated on (created_at, id). Tombstones keep their
        place; hidden replies are shown only to `see_hidden` viewers and to their author."""
        rows = await self._db.fetch(
            f"""SELECT {_REPLY_COLUMNS} FROM {_REPLY_FROM}
                WHERE r.listing_id = $1
                  AND (r.hidden_at IS NULL OR $3 OR r.author_id = $2)
                  AND ($5::timestamptz IS NULL OR (r.created_at, r.id) > ($5, $6::uuid))
                ORDER BY r.created_at, r.id LIMIT $4""",
            listing_id,
            viewer_id,
            see_hidden,
            limit,
            after[0] if after else None,
            after[1] if after else None,
        )
        return [_reply(row) for row in rows]

    async def get_reply(self, listing_id: uuid.UUID, reply_id: uuid.UUID) -> Reply | None:
        row = await self._db.fetchrow(
            f"SELECT {_REPLY_COLUMNS} FROM {_REPLY_FROM} WHERE r.id = $1 AND r.listing_id = $2",
            reply_id,
            listing_id,
        )
        return _reply(row) if row else None

    async def add_reply(
        self, listing_id: uuid.UUID, author_id: uuid.UUID, body: str
    ) -> tuple[Reply, Listing] | None:
        """Append a reply and count it; (the reply, the listing after it), or None when the
        listing is gone."""

        async def add(conn: Connection) -> tuple[Reply, Listing] | None:
            counted = await conn.execute(
                """UPDATE listings SET reply_count = reply_count + 1
                   WHERE id = $1 AND deleted_at IS NULL""",
                listing_id,
            )
            if counted != "UPDATE 1":
                return None
            reply_id = await conn.fetchval(
                """INSERT INTO listing_replies (listing_id, author_id, body) VALUES ($1, $2, $3)
                   RETURNING id""",
                listing_id,
                author_id,
                body,
            )
            listing = await _listing_on(conn, listing_id)
            assert listing is not None
            return await _reply_on(conn, reply_id), listing

        return await self._db.transaction(add)

    async def delete_reply(
        self, listing_id: uuid.UUID, reply_id: uuid.UUID, audit: AuditEntry | None
    ) -> Reply | None:
        """Turn the reply into a tombstone (body emptied, `deleted_at` set) and uncount it; the
        tombstone, or None when there is no such reply (or it was deleted already)."""

        async def remove(conn: Connection) -> Reply | None:
            was_hidden = await conn.fetchval(
                """UPDATE listing_replies r SET body = '', deleted_at = now()
                   FROM listing_replies old
                   WHERE r.id = $1 AND r.listing_id = $2 AND r.deleted_at IS NULL
                         AND old.id = r.id
                   RETURNING old.hidden_at IS NOT NULL""",
                reply_id,
                listing_id,
            )
            if was_hidden is None:
                return None
            if not was_hidden:
                await _uncount(conn, listing_id)
            if audit is not None:
                await record(conn, audit)
            return await _reply_on(conn, reply_id)

        return await self._db.transaction(remove)

    async def set_reply_hidden(
        self,
        listing_id: uuid.UUID,
        reply_id: uuid.UUID,
        *,
        hidden: bool,
        reason: str | None,
        audit: AuditEntry,
    ) -> Reply | None:
        """Hide or unhide a reply (the listing's `reply_count` follows) and record `audit`."""

        async def moderate(conn: Connection) -> Reply | None:
            was_hidden = await conn.fetchval(
                """UPDATE listing_replies r SET
                       hidden_at = CASE WHEN $3 THEN COALESCE(r.hidden_at, now()) END,
                       hidden_reason = CASE WHEN $3 THEN $4 END
                   FROM listing_replies old
                   WHERE r.id = $1 AND r.listing_id = $2 AND r.deleted_at IS NULL
                         AND old.id = r.id
                   RETURNING old.hidden_at IS NOT NULL""",
                reply_id,
                listing_id,
                hidden,
                reason,
            )
            if was_hidden is None:
                return None
            if hidden and not was_hidden:
                await _uncount(conn, listing_id)
            elif was_hidden and not hidden:
                await conn.execute(
                    "UPDATE listings SET reply_count = reply_count + 1 WHERE id = $1", listing_id
                )
            await record(conn, audit)
            return await _reply_on(conn, reply_id)

        return await self._db.transaction(moderate)


async def _uncount(conn: Connection, listing_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE listings SET reply_count = GREATEST(reply_count - 1, 0) WHERE id = $1", listing_id
    )
