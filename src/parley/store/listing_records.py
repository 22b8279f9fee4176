"""Listings and replies as the marketplace stores read them: records, columns, row mapping.

`NewListing` is what a seller writes (checked by `parley.marketplace.rules`); `Listing` and `Reply`
are what comes back, each with its author as everyone sees them (`PublicUser`). Shared by
`store.listings` (the writes and reads) and `store.listing_search` (the search statement), which
select the same columns.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from datetime import datetime

    from parley.store.database import Record


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


LISTING_COLUMNS = (
    "l.id, l.title, l.make, l.model, l.year, l.price_cents, l.currency, l.mileage_km, "
    "l.description, l.location, l.status, l.hidden_at, l.hidden_reason, l.deleted_at, "
    "l.reply_count, l.created_at, l.updated_at, "
    "u.id AS seller_id, u.username AS seller_username, u.display_name AS seller_display_name"
)
LISTING_FROM = "listings l JOIN users u ON u.id = l.seller_id"

_NOT_COLUMNS = ("seller", "rank")


def listing_from(row: Record) -> Listing:
    seller = PublicUser(row["seller_id"], row["seller_username"], row["seller_display_name"])
    values = {name: row[name] for name in Listing.__dataclass_fields__ if name not in _NOT_COLUMNS}
    return Listing(seller=seller, rank=row.get("rank"), **values)


REPLY_COLUMNS = (
    "r.id, r.listing_id, r.body, r.hidden_at, r.hidden_reason, r.deleted_at, r.created_at, "
    "a.id AS author_id, a.username AS author_username, a.display_name AS author_display_name"
)
REPLY_FROM = "listing_replies r LEFT JOIN users a ON a.id = r.author_id"


def reply_from(row: Record) -> Reply:
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
