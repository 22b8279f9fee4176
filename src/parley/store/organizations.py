"""Organizations and their enrollments (who belongs to one, and who administers it): the SQL.

An organization always keeps an admin: the changes that could take its last one away (demoting or
removing an admin) lock the organization's row and count its admins in the same transaction, so
two concurrent removals cannot both pass (`LastAdmin`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg

if TYPE_CHECKING:
    from datetime import datetime

    from parley.store.database import Connection, Database, Record


class DuplicateSlug(Exception):
    """Another organization has this slug."""


class LastAdmin(Exception):
    """The change would leave the organization without an admin."""


class AlreadyMember(Exception):
    """The user is enrolled in the organization already."""


class UnknownUser(Exception):
    """No user has this id."""


@dataclass(frozen=True)
class Organization:
    id: uuid.UUID
    name: str
    slug: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Member:
    """An enrollment, with the user's public names."""

    user_id: uuid.UUID
    username: str
    display_name: str | None
    admin: bool
    created_at: datetime


_ORG_COLUMNS = "o.id, o.name, o.slug, o.created_at, o.updated_at"
_MEMBER_SELECT = """SELECT e.user_id, u.username, u.display_name, e.admin, e.created_at
                    FROM enrollments e JOIN users u ON u.id = e.user_id"""


def _organization(row: Record) -> Organization:
    return Organization(row["id"], row["name"], row["slug"], row["created_at"], row["updated_at"])


def _member(row: Record) -> Member:
    return Member(
        row["user_id"], row["username"], row["display_name"], row["admin"], row["created_at"]
    )


class OrganizationStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def create(self, name: str, slug: str, creator_id: uuid.UUID) -> Organization:
        """A new organization with its creator enrolled as its admin (raises `DuplicateSlug`)."""

        async def create(conn: Connection) -> Organization:
            row = await conn.fetchrow(
                f"INSERT INTO organizations AS o (name, slug) VALUES ($1, $2) "
                f"RETURNING {_ORG_COLUMNS}",
                name,
                slug,
            )
            assert row is not None
            await conn.execute(
                "INSERT INTO enrollments (organization_id, user_id, admin) VALUES ($1, $2, true)",
                row["id"],
                creator_id,
            )
            return _organization(row)

        try:
            return await self._db.transaction(create)
        except asyncpg.UniqueViolationError:
            raise DuplicateSlug(slug) from None

    async def get(self, slug: str) -> Organization | None:
        row = await self._db.fetchrow(
            f"SELECT {_ORG_COLUMNS} FROM organizations o WHERE o.slug = $1", slug
        )
        return None if row is None else _organization(row)

    async def enrollment(self, organization_id: uuid.UUID, user_id: uuid.UUID) -> bool | None:
        """Whether `user_id` administers the organization; None when not enrolled at all."""
        admin: bool | None = await self._db.fetchval(
            "SELECT admin FROM enrollments WHERE organization_id = $1 AND user_id = $2",
            organization_id,
            user_id,
        )
        return admin

    async def count_for_user(self, user_id: uuid.UUID) -> int:
        count: int = await self._db.fetchval(
            "SELECT count(*) FROM enrollments WHERE user_id = $1 AND admin", user_id
        )
        return count

    async def page(
        self,
        *,
        member_id: uuid.UUID | None,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None,
    ) -> list[Organization]:
        """Newest first; those `member_id` is enrolled in, or all of them when None."""
        rows = await self._db.fetch(
            f"""SELECT {_ORG_COLUMNS} FROM organizations o
                WHERE ($2::uuid IS NULL OR EXISTS (
                          SELECT 1 FROM enrollments e
                          WHERE e.organization_id = o.id AND e.user_id = $2))
                  AND ($3::timestamptz IS NULL OR (o.created_at, o.id) < ($3, $4::uuid))
                ORDER BY o.created_at DESC, o.id DESC LIMIT $1""",
            limit,
            member_id,
            before[0] if before else None,
            before[1] if before else None,
        )
        return [_organization(row) for row in rows]

    async def update(
        self, organization_id: uuid.UUID, *, name: str | None, slug: str | None
    ) -> Organization | None:
        try:
            row = await self._db.fetchrow(
                f"""UPDATE organizations o SET name = coalesce($2, name), slug = coalesce($3, slug),
                       updated_at = now()
                    WHERE o.id = $1 RETURNING {_ORG_COLUMNS}""",
                organization_id,
                name,
                slug,
            )
        except asyncpg.UniqueViolationError:
            raise DuplicateSlug(slug or "") from None
        return None if row is None else _organization(row)

    async def delete(self, organization_id: uuid.UUID) -> list[str]:
        """Delete the organization with its enrollments and applications; their app keys."""

        async def delete(conn: Connection) -> list[str]:
            rows = await conn.fetch(
                "SELECT app_key FROM applications WHERE organization_id = $1", organization_id
            )
            await conn.execute("DELETE FROM organizations WHERE id = $1", organization_id)
            return [row["app_key"] for row in rows]

        return await self._db.transaction(delete)

    async def members(
        self,
        organization_id: uuid.UUID,
        *,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None,
    ) -> list[Member]:
        """Newest enrollment first."""
        rows = await self._db.fetch(
            f"""{_MEMBER_SELECT}
                WHERE e.organization_id = $1
                  AND ($3::timestamptz IS NULL OR (e.created_at, e.user_id) < ($3, $4::uuid))
                ORDER BY e.created_at DESC, e.user_id DESC LIMIT $2""",
            organization_id,
            limit,
            before[0] if before else None,
            before[1] if before else None,
        )
        return [_member(row) for row in rows]

    async def add_member(
        self, organization_id: uuid.UUID, user_id: uuid.UUID, admin: bool
    ) -> Member:
        """Enroll a user (raises `UnknownUser`, `AlreadyMember`)."""
        try:
            await self._db.execute(
                "INSERT INTO enrollments (organization_id, user_id, admin) VALUES ($1, $2, $3)",
                organization_id,
                user_id,
                admin,
            )
        except asyncpg.UniqueViolationError:
            raise AlreadyMember() from None
        except asyncpg.ForeignKeyViolationError:
            raise UnknownUser() from None
        member = await self._member(organization_id, user_id)
        assert member is not None
        return member

    async def _member(self, organization_id: uuid.UUID, user_id: uuid.UUID) -> Member | None:
        row = await self._db.fetchrow(
            f"{_MEMBER_SELECT} WHERE e.organization_id = $1 AND e.user_id = $2",
            organization_id,
            user_id,
        )
        return None if row is None else _member(row)

    async def set_admin(
        self, organization_id: uuid.UUID, user_id: uuid.UUID, admin: bool
    ) -> Member | None:
        """Make a member an admin or not (None: not a member; raises `LastAdmin`)."""

        async def change(conn: Connection) -> bool:
            await _lock(conn, organization_id)
            if not admin:
                await _keep_an_admin(conn, organization_id, user_id)
            status: str = await conn.execute(
                "UPDATE enrollments SET admin = $3 WHERE organization_id = $1 AND user_id = $2",
                organization_id,
                user_id,
                admin,
            )
            return status != "UPDATE 0"

        if not await self._db.transaction(change):
            return None
        return await self._member(organization_id, user_id)

    async def remove_member(self, organization_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """Unenroll a member (False: was none; raises `LastAdmin`)."""

        async def remove(conn: Connection) -> bool:
            await _lock(conn, organization_id)
            await _keep_an_admin(conn, organization_id, user_id)
            status: str = await conn.execute(
                "DELETE FROM enrollments WHERE organization_id = $1 AND user_id = $2",
                organization_id,
                user_id,
            )
            return status != "DELETE 0"

        return await self._db.transaction(remove)


async def _lock(conn: Connection, organization_id: uuid.UUID) -> None:
    await conn.execute("SELECT 1 FROM organizations WHERE id = $1 FOR UPDATE", organization_id)


async def _keep_an_admin(conn: Connection, organization_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Raise `LastAdmin` when `user_id` is the organization's only admin."""
    others = await conn.fetchval(
        """SELECT count(*) FROM enrollments
           WHERE organization_id = $1 AND admin AND user_id <> $2""",
        organization_id,
        user_id,
    )
    is_admin = await conn.fetchval(
        "SELECT admin FROM enrollments WHERE organization_id = $1 AND user_id = $2",
        organization_id,
        user_id,
    )
    if is_admin and others == 0:
        raise LastAdmin()
