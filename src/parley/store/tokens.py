"""Refresh-token families, one-time tokens (confirm, reset, e-mail change), API tokens: their SQL.

Only digests are stored (`parley.accounts.hash_opaque`); every look-up is by digest. The rules that
make these tokens safe live in the statements here: a refresh token is used once and rotated, and
one that comes back used revokes its whole family; a one-time token is consumed by the same
statement that checks it, so two concurrent redemptions cannot both succeed; an API token resolves
only while it is live and its owner is not banned.

Redeeming a token that changes its user (a confirmation, an e-mail change, a password reset) is one
transaction here, token and user row together. `store.users` takes `insert_one_time` and
`revoke_all_refresh` to do the same inside its own transactions (registration, a password change, a
ban, logout_all).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import asyncpg

from parley.store.outbox import Mail, enqueue
from parley.store.user_records import USER_COLUMNS, DuplicateUser, User, user_from

if TYPE_CHECKING:
    from datetime import datetime

    from parley.store.database import Connection, Database, Record

RevokedReason = Literal["logout", "logout_all", "password", "ban", "reuse"]
"""What revoked a refresh token (`refresh_tokens.revoked_reason`): a logout of its session,
logout_all, a password change or reset, a ban, or a reuse detected in its family."""
ONE_TIME_PURPOSES = ("confirm", "reset", "email_change")

_API_TOKEN_COLUMNS = "id, user_id, name, inserted_at, last_used_at, revoked_at"


@dataclass(frozen=True)
class ApiToken:
    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    inserted_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class NewOneTimeToken:
    """A one-time token to store (hashed) alongside the change that mails it."""

    purpose: str
    token_hash: bytes
    expires_at: datetime
    payload: dict[str, Any] | None = None


@dataclass(frozen=True)
class ConfirmOutcome:
    """What redeeming a confirmation token did: `purpose` is "confirm" or "email_change"."""

    user: User
    purpose: str


@dataclass(frozen=True)
class RefreshOutcome:
    """What presenting a refresh token led to: a user to issue new tokens for, or why not.

    `reason`: "unknown", "expired" (or the owner is banned), "reused" (the token was used before:
    its family is revoked now), or "revoked" (it was revoked before, for `revoked_by`; None for
    tokens revoked before the reason was recorded).
    """

    user: User | None
    family_id: uuid.UUID | None
    reason: Literal["unknown", "expired", "reused", "revoked"] | None = None
    revoked_by: RevokedReason | None = None


class TokenStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    # --- refresh tokens -------------------------------------------------------------------------

    async def add_refresh_token(
        self,
        user_id: uuid.UUID,
        token_hash: bytes,
        expires_at: datetime,
        family_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        """Store a refresh token (a new family unless one is given); returns its family id."""
        family = family_id or uuid.uuid4()
        await self._db.execute(
            """INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at)
               VALUES ($1, $2, $3, $4)""",
            user_id,
            family,
            token_hash,
            expires_at,
        )
        return family

    async def rotate_refresh_token(
        self, presented_hash: bytes, successor_hash: bytes, successor_expires_at: datetime
    ) -> RefreshOutcome:
        """Use a refresh token once: mark it used and store its successor in the same family.

        A token already used means it was copied (a rotated token came back): the whole family is
        revoked, and the caller refuses the request. A token revoked but never used (its session
        logged out, say) is refused with the recorded reason; its family is revoked already.
        """

        async def rotate(conn: Connection) -> RefreshOutcome:
            row = await conn.fetchrow(
                """SELECT r.id, r.family_id, r.used_at, r.revoked_at, r.revoked_reason,
                          r.expires_at < now() AS expired, u.banned_at
                   FROM refresh_tokens r JOIN users u ON u.id = r.user_id
                   WHERE r.token_hash = $1 FOR UPDATE OF r""",
                presented_hash,
            )
            if row is None:
                return RefreshOutcome(None, None, "unknown")
            if row["used_at"] is not None:
                await conn.execute(
                    """UPDATE refresh_tokens SET revoked_at = now(), revoked_reason = 'reuse'
                       WHERE family_id = $1 AND revoked_at IS NULL""",
                    row["family_id"],
                )
                return RefreshOutcome(None, row["family_id"], "reused")
            if row["revoked_at"] is not None:
                return RefreshOutcome(None, row["family_id"], "revoked", row["revoked_reason"])
            if row["expired"] or row["banned_at"] is not None:
                return RefreshOutcome(None, row["family_id"], "expired")
            user_row = await conn.fetchrow(
                f"""WITH used AS (UPDATE refresh_tokens SET used_at = now() WHERE id = $1
                                  RETURNING user_id)
                    SELECT {USER_COLUMNS} FROM users WHERE id = (SELECT user_id FROM used)""",
                row["id"],
            )
            assert user_row is not None
            await conn.execute(
                """INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at)
                   VALUES ($1, $2, $3, $4)""",
                user_row["id"],
                row["family_id"],
                successor_hash,
                successor_expires_at,
            )
            return RefreshOutcome(user_from(user_row), row["family_id"])

        return await self._db.transaction(rotate)

    async def revoke_refresh_family_of(self, token_hash: bytes) -> bool:
        """logout: revoke the family the presented refresh token belongs to (its tokens not
        revoked yet); False when there was none."""
        status = await self._db.execute(
            """UPDATE refresh_tokens SET revoked_at = now(), revoked_reason = 'logout'
               WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)
                     AND revoked_at IS NULL""",
            token_hash,
        )
        return status != "UPDATE 0"

    # --- one-time tokens ------------------------------------------------------------------------

    async def add_one_time_token(
        self,
        user_id: uuid.UUID,
        purpose: str,
        token_hash: bytes,
        expires_at: datetime,
        payload: dict[str, Any] | None = None,
    ) -> None:
        await self._db.execute(
            """INSERT INTO one_time_tokens (token_hash, user_id, purpose, payload, expires_at)
               VALUES ($1, $2, $3, $4, $5)""",
            token_hash,
            user_id,
            purpose,
            payload or {},
            expires_at,
        )

    async def use_one_time_token(
        self, token_hash: bytes, purpose: str
    ) -> tuple[uuid.UUID, dict[str, Any]] | None:
        """Consume a valid, unexpired token of that purpose once; None if it is not (any more)."""
        row = await self._db.fetchrow(
            """UPDATE one_time_tokens SET used_at = now()
               WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
               RETURNING user_id, payload""",
            token_hash,
            purpose,
        )
        return (row["user_id"], row["payload"]) if row else None

    async def issue_one_time_token(
        self, user_id: uuid.UUID, token: NewOneTimeToken, mail: Mail
    ) -> None:
        """Store a one-time token and queue the mail carrying it, in one transaction.

        Earlier unused tokens of the same purpose are retired first, so only the newest reset
        (or e-mail change, or confirmation) link works: a mailbox full of old links is harmless.
        """

        async def issue(conn: Connection) -> None:
            await conn.execute(
                """UPDATE one_time_tokens SET used_at = now()
                   WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL""",
                user_id,
                token.purpose,
            )
            await insert_one_time(conn, user_id, token)
            await enqueue(conn, mail)

        await self._db.transaction(issue)

    async def one_time_token_valid(self, token_hash: bytes, purpose: str) -> bool:
        """Whether a token of that purpose is unused and unexpired (checked again on redeeming)."""
        return bool(
            await self._db.fetchval(
                """SELECT EXISTS (SELECT 1 FROM one_time_tokens
                   WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL
                         AND expires_at > now())""",
                token_hash,
                purpose,
            )
        )

    async def redeem_confirmation(self, token_hash: bytes) -> ConfirmOutcome | None:
        """Use a 'confirm' or 'email_change' token once and apply it, in one transaction.

        'confirm' marks the address confirmed; 'email_change' switches the account to the address
        in the token's payload (confirmed, since the mail reached it). None if the token is unknown,
        used or expired. Raises `DuplicateUser("email")` if the new address was taken meanwhile; the
        token then stays unused (the transaction rolls back).
        """

        async def redeem(conn: Connection) -> ConfirmOutcome | None:
            token = await conn.fetchrow(
                """UPDATE one_time_tokens SET used_at = now()
                   WHERE token_hash = $1 AND purpose IN ('confirm', 'email_change')
                         AND used_at IS NULL AND expires_at > now()
                   RETURNING user_id, purpose, payload""",
                token_hash,
            )
            if token is None:
                return None
            if token["purpose"] == "confirm":
                row = await conn.fetchrow(
                    f"""UPDATE users SET confirmed_at = COALESCE(confirmed_at, now()),
                               updated_at = now()
                        WHERE id = $1 RETURNING {USER_COLUMNS}""",
                    token["user_id"],
                )
            else:
                row = await conn.fetchrow(
                    f"""UPDATE users SET email = $2, confirmed_at = now(), updated_at = now()
                        WHERE id = $1 RETURNING {USER_COLUMNS}""",
                    token["user_id"],
                    token["payload"]["email"],
                )
            assert row is not None
            return ConfirmOutcome(user_from(row), token["purpose"])

        try:
            return await self._db.transaction(redeem)
        except asyncpg.UniqueViolationError:
            raise DuplicateUser("email") from None

    async def reset_password(self, token_hash: bytes, password_hash: str) -> User | None:
        """Redeem a 'reset' token once and set the new hash, killing every session (one
        transaction). None if the token is unknown, used or expired (e.g. redeemed concurrently)."""

        async def reset(conn: Connection) -> Record | None:
            user_id = await conn.fetchval(
                """UPDATE one_time_tokens SET used_at = now()
                   WHERE token_hash = $1 AND purpose = 'reset' AND used_at IS NULL
                         AND expires_at > now()
                   RETURNING user_id""",
                token_hash,
            )
            if user_id is None:
                return None
            await revoke_all_refresh(conn, user_id, "password")
            # The reset link reached the mailbox, which also proves the address.
            return await conn.fetchrow(
                f"""UPDATE users SET password_hash = $2, token_version = token_version + 1,
                           confirmed_at = COALESCE(confirmed_at, now()), updated_at = now()
                    WHERE id = $1 RETURNING {USER_COLUMNS}""",
                user_id,
                password_hash,
            )

        row = await self._db.transaction(reset)
        return user_from(row) if row else None

    # --- API tokens -----------------------------------------------------------------------------

    async def add_api_token(self, user_id: uuid.UUID, name: str, token_hash: bytes) -> ApiToken:
        row = await self._db.fetchrow(
            f"""INSERT INTO api_tokens (user_id, name, token_hash) VALUES ($1, $2, $3)
                RETURNING {_API_TOKEN_COLUMNS}""",
            user_id,
            name,
            token_hash,
        )
        assert row is not None
        return ApiToken(**dict(row))

    async def api_tokens(self, user_id: uuid.UUID) -> list[ApiToken]:
        rows = await self._db.fetch(
            f"""SELECT {_API_TOKEN_COLUMNS} FROM api_tokens
                WHERE user_id = $1 AND revoked_at IS NULL ORDER BY inserted_at DESC""",
            user_id,
        )
        return [ApiToken(**dict(row)) for row in rows]

    async def count_api_tokens(self, user_id: uuid.UUID) -> int:
        count: int = await self._db.fetchval(
            "SELECT count(*) FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL", user_id
        )
        return count

    async def revoke_api_token(self, user_id: uuid.UUID, token_id: uuid.UUID) -> bool:
        status = await self._db.execute(
            """UPDATE api_tokens SET revoked_at = now()
               WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL""",
            token_id,
            user_id,
        )
        return status == "UPDATE 1"

    async def use_api_token(self, token_hash: bytes) -> tuple[ApiToken, User] | None:
        """Resolve a live API token to its owner (not banned), recording its use."""
        row = await self._db.fetchrow(
            """UPDATE api_tokens t SET last_used_at = now() FROM users u
               WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.id = t.user_id
                     AND u.banned_at IS NULL
               RETURNING t.id""",
            token_hash,
        )
        if row is None:
            return None
        token_row = await self._db.fetchrow(
            f"SELECT {_API_TOKEN_COLUMNS} FROM api_tokens WHERE id = $1", row["id"]
        )
        assert token_row is not None
        token = ApiToken(**dict(token_row))
        user_row = await self._db.fetchrow(
            f"SELECT {USER_COLUMNS} FROM users WHERE id = $1", token.user_id
        )
        assert user_row is not None
        return token, user_from(user_row)

    async def api_token_live(self, token_id: uuid.UUID) -> bool:
        return bool(
            await self._db.fetchval(
                "SELECT EXISTS (SELECT 1 FROM api_tokens WHERE id = $1 AND revoked_at IS NULL)",
                token_id,
            )
        )


async def insert_one_time(conn: Connection, user_id: uuid.UUID, token: NewOneTimeToken) -> None:
    """Store a one-time token inside the caller's transaction (registration mails one)."""
    assert token.purpose in ONE_TIME_PURPOSES, token.purpose
    await conn.execute(
        """INSERT INTO one_time_tokens (token_hash, user_id, purpose, payload, expires_at)
           VALUES ($1, $2, $3, $4, $5)""",
        token.token_hash,
        user_id,
        token.purpose,
        token.payload or {},
        token.expires_at,
    )


async def revoke_all_refresh(conn: Connection, user_id: uuid.UUID, reason: RevokedReason) -> None:
    """Revoke every live refresh token of the user inside the caller's transaction."""
    await conn.execute(
        """UPDATE refresh_tokens SET revoked_at = now(), revoked_reason = $2
           WHERE user_id = $1 AND revoked_at IS NULL""",
        user_id,
        reason,
    )
