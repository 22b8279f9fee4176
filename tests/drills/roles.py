"""The identities the authorization drills try every door with (A10, W7)."""

from __future__ import annotations

from dataclasses import dataclass

from tests.socket.conftest import Realtime, User

ROLES = ("anonymous", "registered", "owner", "other", "moderator", "admin", "banned")
"""`owner` owns what the drill's paths name (its user, conversation, listing, token); `other` is a
second registered user, a member of nothing the owner has; `registered` is a third, ordinary one;
`banned` was banned by an admin (its token carries the version after the ban)."""


@dataclass(frozen=True)
class Cast:
    """One user per role (anonymous has none)."""

    users: dict[str, User]

    def token(self, role: str) -> str | None:
        user = self.users.get(role)
        return None if user is None else user.token

    def headers(self, role: str) -> dict[str, str]:
        token = self.token(role)
        return {} if token is None else {"Authorization": f"Bearer {token}"}


async def cast_of_roles(live: Realtime) -> Cast:
    users = {
        "registered": await live.user(),
        "owner": await live.user(),
        "other": await live.user(),
        "moderator": await live.user("moderator"),
        "admin": await live.user("admin"),
    }
    banned = await live.user()
    changed = await live.context.stores.users.set_role_and_ban(banned.id, role=None, banned=True)
    assert changed is not None
    token, _ = live.context.tokens.issue_access(changed.id, changed.role, changed.token_version)
    users["banned"] = User(banned.id, banned.username, banned.role, token)
    return Cast(users)
