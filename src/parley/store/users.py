"""Users, profiles, refresh-token families, one-time and API tokens: the account aggregate's SQL."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import asyncpg

from parley.store.audit import AuditEntry, record
from parley.store.outbox import Mail, enqueue

if TYPE_CHECKING:
    from datetime import datetime

    from parley.store.database import Connection, Database, Record

ROLES = ("registered", "moderator", "admin")
RevokedReason = Literal["logout", "logout_all", "password", "ban", "reuse"]
"""What revoked a refresh token (`refresh_tokens.revoked_reason`): a logout of its session,
logout_all, a password change or reset, a ban, or a reuse detected in its family."""
ONE_TIME_PURPOSES = ("confirm", "reset", "email_change")


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


def _user(row: Record) -> User:
    return User(**{field: row[field] for field in User.__dataclass_fields__})


_USER_COLUMNS = ", ".join(User.__dataclass_fields__)


def _duplicate_field(error: asyncpg.UniqueViolationError) -> str:
    return "email" if "email" in (error.constraint_name or "") else "username"


class UserStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def create(
        self,
        *,
        email: str,
        username: str,
        password_hash: str,
        role: str = "registered",
        name: str | None = None,
        subname: str | None = None,
        job: str | None = None,
        confirmed: bool = False,
        one_time: NewOneTimeToken | None = None,
        mail: Mail | None = None,
    ) -> User:
        """Insert a user; with `one_time` and `mail`, store the token and queue the mail in the same
        transaction (registration: nothing is mailed for a user that was not created, and no user
        exists whose confirmation mail was lost)."""

        async def insert(conn: Connection) -> Record:
            row = await conn.fetchrow(
                f"""INSERT INTO users (email, username, password_hash, role, name, subname, job,
                                       confirmed_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $8 THEN now() END)
                    RETURNING {_USER_COLUMNS}""",
                email,
                username,
                password_hash,
                role,
                name,
                subname,
                job,
                confirmed,
            )
            assert row is not None
            if one_time is not None:
                await _insert_one_time(conn, row["id"], one_time)
            if mail is not None:
                await enqueue(conn, mail)
            return row

        try:
            row = await self._db.transaction(insert)
        except asyncpg.UniqueViolationError as error:
            raise DuplicateUser(_duplicate_field(error)) from None
        return _user(row)

    async def get(self, user_id: uuid.UUID) -> User | None:
        row = await self._db.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE id = $1", user_id)
        return _user(row) if row else None

    async def get_many(self, user_ids: list[uuid.UUID]) -> list[User]:
        rows = await self._db.fetch(
            f"SELECT {_USER_COLUMNS} FROM users WHERE id = ANY($1::uuid[])", user_ids
        )
        return [_user(row) for row in rows]

    async def by_email(self, email: str) -> User | None:
        row = await self._db.fetchrow(
            f"SELECT {_USER_COLUMNS} FROM users WHERE lower(email) = lower($1)", email
        )
        return _user(row) if row else None

    async def page(self, *, limit: int, before: tuple[datetime, uuid.UUID] | None) -> list[User]:
        """Newest first, keyset-paginated on (inserted_at, id); banned users are left out."""
        if before is None:
            rows = await self._db.fetch(
                f"""SELECT {_USER_COLUMNS} FROM users WHERE banned_at IS NULL
                    ORDER BY inserted_at DESC, id DESC LIMIT $1""",
                limit,
            )
        else:
            rows = await self._db.fetch(
                f"""SELECT {_USER_COLUMNS} FROM users
                    WHERE banned_at IS NULL AND (inserted_at, id) < ($2, $3)
                    ORDER BY inserted_at DESC, id DESC LIMIT $1""",
                limit,
                before[0],
                before[1],
            )
        return [_user(row) for row in rows]

    async def update_profile(self, user_id: uuid.UUID, changes: dict[str, Any]) -> User:
        """Set the given profile columns (names come from the API's fixed allow-list)."""
        allowed = {"display_name", "bio", "name", "subname", "job", "settings"}
        assert set(changes) <= allowed, set(changes) - allowed
        assignments = ", ".join(f"{column} = ${i + 2}" for i, column in enumerate(changes))
        row = await self._db.fetchrow(
            f"""UPDATE users SET {assignments}, updated_at = now() WHERE id = $1
                RETURNING {_USER_COLUMNS}""",
            user_id,
            *changes.values(),
        )
        assert row is not None
        return _user(row)

    async def set_password(
        self, user_id: uuid.UUID, password_hash: str, *, revoke_sessions: bool
    ) -> User:
        """Store a new hash; with `revoke_sessions`, every token and refresh family dies too."""

        async def update(conn: Connection) -> Record:
            if revoke_sessions:
                await _revoke_all_refresh(conn, user_id, "password")
            row = await conn.fetchrow(
                f"""UPDATE users SET password_hash = $2, updated_at = now(),
                        token_version = token_version + CASE WHEN $3 THEN 1 ELSE 0 END
                    WHERE id = $1 RETURNING {_USER_COLUMNS}""",
                user_id,
                password_hash,
                revoke_sessions,
            )
            assert row is not None
            return row

        return _user(await self._db.transaction(update))

    async def bump_token_version(self, user_id: uuid.UUID) -> User:
        """logout_all: every access token of the user is refused from now on, refresh tokens too."""

        async def bump(conn: Connection) -> Record:
            await _revoke_all_refresh(conn, user_id, "logout_all")
            row = await conn.fetchrow(
                f"""UPDATE users SET token_version = token_version + 1, updated_at = now()
                    WHERE id = $1 RETURNING {_USER_COLUMNS}""",
                user_id,
            )
            assert row is not None
            return row

        return _user(await self._db.transaction(bump))

    async def set_role_and_ban(
        self,
        user_id: uuid.UUID,
        *,
        role: str | None,
        banned: bool | None,
        audit_actor: uuid.UUID | None = None,
        reason: str | None = None,
    ) -> User | None:
        """Admin change; a ban (or a role change) bumps token_version so old tokens stop at once.

        With `audit_actor` (the admin), each change that happened is recorded in the audit log in
        the same transaction: `user.ban` / `user.unban`, and `user.role` {from, to}.
        """

        async def change(conn: Connection) -> Record | None:
            before = await conn.fetchrow(
                "SELECT role, banned_at FROM users WHERE id = $1 FOR UPDATE", user_id
            )
            if before is None:
                return None
            if banned:
                await _revoke_all_refresh(conn, user_id, "ban")
            if audit_actor is not None:
                target = str(user_id)
                if banned is not None and banned != (before["banned_at"] is not None):
                    action = "user.ban" if banned else "user.unban"
                    await record(conn, AuditEntry(audit_actor, action, "user", target, reason))
                if role is not None and role != before["role"]:
                    details = {"from": before["role"], "to": role}
                    entry = AuditEntry(audit_actor, "user.role", "user", target, reason, details)
                    await record(conn, entry)
            return await conn.fetchrow(
                f"""UPDATE users SET
                        role = COALESCE($2, role),
                        banned_at = CASE WHEN $3::boolean IS NULL THEN banned_at
                                         WHEN $3 THEN COALESCE(banned_at, now()) ELSE NULL END,
                        token_version = token_version + 1,
                        updated_at = now()
                    WHERE id = $1 RETURNING {_USER_COLUMNS}""",
                user_id,
                role,
                banned,
            )

        row = await self._db.transaction(change)
        return _user(row) if row else None

    async def change_email(self, user_id: uuid.UUID, email: str) -> User:
        try:
            row = await self._db.fetchrow(
                f"""UPDATE users SET email = $2, confirmed_at = now(), updated_at = now()
                    WHERE id = $1 RETURNING {_USER_COLUMNS}""",
                user_id,
                email,
            )
        except asyncpg.UniqueViolationError:
            raise DuplicateUser("email") from None
        assert row is not None
        return _user(row)

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
                    SELECT {_USER_COLUMNS} FROM users WHERE id = (SELECT user_id FROM used)""",
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
            return RefreshOutcome(_user(user_row), row["family_id"])

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

    async def confirm(self, user_id: uuid.UUID) -> None:
        await self._db.execute(
            "UPDATE users SET confirmed_at = COALESCE(confirmed_at, now()) WHERE id = $1", user_id
        )

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
            await _insert_one_time(conn, user_id, token)
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
                        WHERE id = $1 RETURNING {_USER_COLUMNS}""",
                    token["user_id"],
                )
            else:
                row = await conn.fetchrow(
                    f"""UPDATE users SET email = $2, confirmed_at = now(), updated_at = now()
                        WHERE id = $1 RETURNING {_USER_COLUMNS}""",
                    token["user_id"],
                    token["payload"]["email"],
                )
            assert row is not None
            return ConfirmOutcome(_user(row), token["purpose"])

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
            await _revoke_all_refresh(conn, user_id, "password")
            # The reset link reached the mailbox, which also proves the address.
            return await conn.fetchrow(
                f"""UPDATE users SET password_hash = $2, token_version = token_version + 1,
                           confirmed_at = COALESCE(confirmed_at, now()), updated_at = now()
                    WHERE id = $1 RETURNING {_USER_COLUMNS}""",
                user_id,
                password_hash,
            )

        row = await self._db.transaction(reset)
        return _user(row) if row else None

    async def email_taken(self, email: str, *, except_user: uuid.UUID | None = None) -> bool:
        return bool(
            await self._db.fetchval(
                """SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($1)
                                  AND id IS DISTINCT FROM $2)""",
                email,
                except_user,
            )
        )

    # --- API tokens -----------------------------------------------------------------------------

    async def add_api_token(self, user_id: uuid.UUID, name: str, token_hash: bytes) -> ApiToken:
        row = await self._db.fetchrow(
            """INSERT INTO api_tokens (user_id, name, token_hash) VALUES ($1, $2, $3)
               RETURNING id, user_id, name, inserted_at, last_used_at, revoked_at""",
            user_id,
            name,
            token_hash,
        )
        assert row is not None
        return ApiToken(**dict(row))

    async def api_tokens(self, user_id: uuid.UUID) -> list[ApiToken]:
        rows = await self._db.fetch(
            """SELECT id, user_id, name, inserted_at, last_used_at, revoked_at FROM api_tokens
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
            """SELECT id, user_id, name, inserted_at, last_used_at, revoked_at FROM api_tokens
               WHERE id = $1""",
            row["id"],
        )
        assert token_row is not None
        token = ApiToken(**dict(token_row))
        user = await self.get(token.user_id)
        assert user is not None
        return token, user

    async def api_token_live(self, token_id: uuid.UUID) -> bool:
        return bool(
            await self._db.fetchval(
                "SELECT EXISTS (SELECT 1 FROM api_tokens WHERE id = $1 AND revoked_at IS NULL)",
                token_id,
            )
        )


async def _insert_one_time(conn: Connection, user_id: uuid.UUID, token: NewOneTimeToken) -> None:
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


async def _revoke_all_refresh(conn: Connection, user_id: uuid.UUID, reason: RevokedReason) -> None:
    await conn.execute(
        """UPDATE refresh_tokens SET revoked_at = now(), revoked_reason = $2
           WHERE user_id = $1 AND revoked_at IS NULL""",
        user_id,
        reason,
    )
