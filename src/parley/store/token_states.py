"""What a connected socket's token still stands for: one query for all the users of a node.

A node that lost its cluster bus may have missed revocations (logout_all, a password change, a
ban, a role change) broadcast meanwhile; after the bus is back it rechecks every connected user
with this, in one round trip (DESIGN §8).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from parley.store.database import Database


@dataclass(frozen=True, slots=True)
class TokenState:
    token_version: int
    role: str
    banned: bool


async def token_states(
    database: Database, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, TokenState]:
    """The current token version, role and ban of each user that exists (absent: deleted)."""
    if not user_ids:
        return {}
    rows = await database.fetch(
        """SELECT id, token_version, role, banned_at IS NOT NULL AS banned
           FROM users WHERE id = ANY($1::uuid[])""",
        list(user_ids),
    )
    return {row["id"]: TokenState(row["token_version"], row["role"], row["banned"]) for row in rows}
