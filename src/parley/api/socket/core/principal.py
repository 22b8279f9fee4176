"""Who a socket connection belongs to, fixed for its lifetime (decided before the upgrade)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SocketPrincipal:
    """The signed-in user of a connection and what their token allows."""

    user_id: uuid.UUID
    role: str
    username: str
    token_kind: str
    """`access`, `api_session` or `channel`."""
    only_topic: str | None = None
    """Set for a token that opens one topic only (a conversation's channel token): the socket
    may join that topic and nothing else."""
    token_version: int | None = None
    """The user's token version when the token was checked (None: not known), so a node that
    may have missed a revocation can recheck its sockets (`SocketHub.recheck_users`)."""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def signed_in(self) -> bool:
        """A full session (access or API-session token), not a one-topic token."""
        return self.only_topic is None
