"""Users and their profiles, roles and bans: the account aggregate's SQL.

The tokens an account holds (refresh families, one-time links, API tokens) are `store.tokens`;
changes here that must end a user's sessions (a password change, logout_all, a ban) revoke the
refresh tokens in their own transaction with `store.tokens.revoke_all_refresh`, and registration
stores its confirmation token with `store.tokens.insert_one_time` beside the user it creates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg

from parley.store.audit import AuditEntry, record
from parley.store.outbox import Mail, enqueue
from parley.store.tokens import NewOneTimeToken, insert_one_time, revoke_all_refresh
from parley.store.user_records import USER_COLUMNS, DuplicateUser, User, user_from

if TYPE_CHECKING:
    import uuid
    from datetime import datetime

    from parley.store.database import Connection, Database, Record


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
                    RETURNING {USER_COLUMNS}""",
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
                await insert_one_time(conn, row["id"], one_time)
            if mail is not None:
                await enqueue(conn, mail)
            return row

        try:
            row = await self._db.transaction(insert)
        except asyncpg.UniqueViolationError as error:
            raise DuplicateUser(_duplicate_field(error)) from None
        return user_from(row)

    async def get(self, user_id: uuid.UUID) -> User | None:
        row = await self._db.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1", user_id)
        return user_from(row) if row else None

    async def get_many(self, user_ids: list[uuid.UUID]) -> list[User]:
        rows = await self._db.fetch(
            f"SELECT {USER_COLUMNS} FROM users WHERE id = ANY($1::uuid[])", user_ids
        )
        return [user_from(row) for row in rows]

    async def by_email(self, email: str) -> User | None:
        row = await self._db.fetchrow(
            f"SELECT {USER_COLUMNS} FROM users WHERE lower(email) = lower($1)", email
        )
        return user_from(row) if row else None

    async def page(self, *, limit: int, before: tuple[datetime, uuid.UUID] | None) -> list[User]:
        """Newest first, keyset-paginated on (inserted_at, id); banned users are left out."""
        if before is None:
            rows = await self._db.fetch(
                f"""SELECT {USER_COLUMNS} FROM users WHERE banned_at IS NULL
                    ORDER BY inserted_at DESC, id DESC LIMIT $1""",
                limit,
            )
        else:
            rows = await self._db.fetch(
                f"""SELECT {USER_COLUMNS} FROM users
                    WHERE banned_at IS NULL AND (inserted_at, id) < ($2, $3)
                    ORDER BY inserted_at DESC, id DESC LIMIT $1""",
                limit,
                before[0],
                before[1],
            )
        return [user_from(row) for row in rows]

    async def update_profile(self, user_id: uuid.UUID, changes: dict[str, Any]) -> User:
        """Set the given profile columns (names come from the API's fixed allow-list)."""
        allowed = {"display_name", "bio", "name", "subname", "job", "settings"}
        assert set(changes) <= allowed, set(changes) - allowed
        assignments = ", ".join(f"{column} = ${i + 2}" for i, column in enumerate(changes))
        row = await self._db.fetchrow(
            f"""UPDATE users SET {assignments}, updated_at = now() WHERE id = $1
                RETURNING {USER_COLUMNS}""",
            user_id,
            *changes.values(),
        )
        assert row is not None
        return user_from(row)

    async def set_password(
        self, user_id: uuid.UUID, password_hash: str, *, revoke_sessions: bool
    ) -> User:
        """Store a new hash; with `revoke_sessions`, every token and refresh family dies too."""

        async def update(conn: Connection) -> Record:
            if revoke_sessions:
                await revoke_all_refresh(conn, user_id, "password")
            row = await conn.fetchrow(
                f"""UPDATE users SET password_hash = $2, updated_at = now(),
                        token_version = token_version + CASE WHEN $3 THEN 1 ELSE 0 END
                    WHERE id = $1 RETURNING {USER_COLUMNS}""",
                user_id,
                password_hash,
                revoke_sessions,
            )
            assert row is not None
            return row

        return user_from(await self._db.transaction(update))

    async def bump_token_version(self, user_id: uuid.UUID) -> User:
        """logout_all: every access token of the user is refused from now on, refresh tokens too."""

        async def bump(conn: Connection) -> Record:
            await revoke_all_refresh(conn, user_id, "logout_all")
            row = await conn.fetchrow(
                f"""UPDATE users SET token_version = token_version + 1, updated_at = now()
                    WHERE id = $1 RETURNING {USER_COLUMNS}""",
                user_id,
            )
            assert row is not None
            return row

        return user_from(await self._db.transaction(bump))

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
                await revoke_all_refresh(conn, user_id, "ban")
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
                    WHERE id = $1 RETURNING {USER_COLUMNS}""",
                user_id,
                role,
                banned,
            )

        row = await self._db.transaction(change)
        return user_from(row) if row else None

    async def change_email(self, user_id: uuid.UUID, email: str) -> User:
        try:
            row = await self._db.fetchrow(
                f"""UPDATE users SET email = $2, confirmed_at = now(), updated_at = now()
                    WHERE id = $1 RETURNING {USER_COLUMNS}""",
                user_id,
                email,
            )
        except asyncpg.UniqueViolationError:
            raise DuplicateUser("email") from None
        assert row is not None
        return user_from(row)

    async def confirm(self, user_id: uuid.UUID) -> None:
        await self._db.execute(
            "UPDATE users SET confirmed_at = COALESCE(confirmed_at, now()) WHERE id = $1", user_id
        )

    async def email_taken(self, email: str, *, except_user: uuid.UUID | None = None) -> bool:
        return bool(
            await self._db.fetchval(
                """SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($1)
                                  AND id IS DISTINCT FROM $2)""",
                email,
                except_user,
            )
        )
