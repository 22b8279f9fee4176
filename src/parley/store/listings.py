"""Listings and their reply threads: the marketplace aggregate's SQL (DESIGN §4.1).

The records are `store.listing_records`; a search's statement is built by `store.listing_search`
and run here with a time bound of its own (`time_bound`): past it the database cancels the
statement and `SearchTimeout` is raised.

Moderation writes (hide, unhide, a moderator's delete) take an `AuditEntry` and record it in the
same transaction as the change.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from parley.store.audit import AuditEntry, record
from parley.store.database import Connection, Database, Record
from parley.store.listing_records import (
    EDITABLE,
    LISTING_COLUMNS,
    LISTING_FIELDS,
    LISTING_FROM,
    REPLY_COLUMNS,
    REPLY_FROM,
    Listing,
    NewListing,
    Reply,
    listing_from,
    reply_from,
)
from parley.store.listing_search import ListingQuery, SearchTimeout, search_statement

_NOT_DELETED_BY_ID = (
    f"SELECT {LISTING_COLUMNS} FROM {LISTING_FROM} WHERE l.id = $1 AND l.deleted_at IS NULL"
)


async def _listing_on(conn: Connection, listing_id: uuid.UUID) -> Listing | None:
    row = await conn.fetchrow(_NOT_DELETED_BY_ID, listing_id)
    return listing_from(row) if row else None


async def _reply_on(conn: Connection, reply_id: uuid.UUID) -> Reply:
    row = await conn.fetchrow(f"SELECT {REPLY_COLUMNS} FROM {REPLY_FROM} WHERE r.id = $1", reply_id)
    assert row is not None
    return reply_from(row)


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
                SELECT {LISTING_COLUMNS} FROM l JOIN users u ON u.id = l.seller_id""",
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
        return listing_from(row)

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
        row = await self._db.fetchrow(_NOT_DELETED_BY_ID, listing_id)
        return listing_from(row) if row else None

    async def search(self, query: ListingQuery, *, time_bound: float) -> list[Listing]:
        """One page of a search; raises `SearchTimeout` after `time_bound` seconds (the server
        stops the statement, not only the wait for it).

        asyncpg prepares every statement, and after five runs PostgreSQL may plan it once for
        any values (a generic plan). For searches without `q` that is what we want: with the
        statistics of migration 0006 the generic plans are the right ones, and planning is
        skipped. A text search's best plan depends on how common its words are (walk the
        newest-first index for a common word, intersect the text index for a rare one), so it
        runs with a plan for its own values (`plan_cache_mode`), in a transaction of its own
        (what a generic plan cost: docs/marketplace.md, "Performance").
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
        return [listing_from(row) for row in rows]

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
            f"""SELECT {REPLY_COLUMNS} FROM {REPLY_FROM}
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
        return [reply_from(row) for row in rows]

    async def get_reply(self, listing_id: uuid.UUID, reply_id: uuid.UUID) -> Reply | None:
        row = await self._db.fetchrow(
            f"SELECT {REPLY_COLUMNS} FROM {REPLY_FROM} WHERE r.id = $1 AND r.listing_id = $2",
            reply_id,
            listing_id,
        )
        return reply_from(row) if row else None

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
