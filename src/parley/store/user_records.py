"""The user row as every store that returns one reads it: `User`, its columns and its mapping.

Its own module because two aggregates hand users back: `store.users` (the account itself) and
`store.tokens` (a refresh, a redeemed link or an API token resolves to its user, in the token's
transaction). Both import this; neither imports the other's SQL the wrong way round.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from parley.store.database import Record


class DuplicateUser(Exception):
    """The e-mail address or the username is taken; `field` says which."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} already taken")
        self.field = field


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    email: str
    username: str
    name: str | None
    subname: str | None
    job: str | None
    display_name: str | None
    bio: str | None
    settings: dict[str, Any]
    password_hash: str
    role: str
    token_version: int
    confirmed_at: datetime | None
    banned_at: datetime | None
    inserted_at: datetime
    updated_at: datetime


USER_COLUMNS = ", ".join(User.__dataclass_fields__)
"""The `users` columns a `User` is read from, for `SELECT` and `RETURNING` lists."""


def user_from(row: Record) -> User:
    return User(**{field: row[field] for field in User.__dataclass_fields__})
