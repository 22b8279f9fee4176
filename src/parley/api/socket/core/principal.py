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
    """`access`, `api_session`, `channel` or `end_user`."""
    only_topic: str | None = None
    """Set for a token that opens one topic only (a conversation's channel token): the socket
    may join that topic and nothing else."""
    namespace: str | None = None
    """Set for a socket confined to one topic namespace (an application's end user: `app:{key}`):
    it may join that topic and the topics under it (`{namespace}:...`) only. The hub counts and
    closes sockets by namespace (an application's connection quota, its archive)."""
    grant: object = None
    """What another issuer's token granted (an application's end user: a
    `parley.integrations.end_users.EndUser`), for the channels that understand it."""
    token_version: int | None = None
    """The user's token version when the token was checked (None: not known), so a node that
    may have missed a revocation can recheck its sockets (`SocketHub.recheck_users`)."""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def signed_in(self) -> bool:
        """A full session (access or API-session token), not a one-topic or end-user token."""
        return self.only_topic is None and self.namespace is None

    def confines(self, topic: str) -> bool:
        """Whether the socket's namespace keeps it out of `topic`."""
        namespace = self.namespace
        if namespace is None:
            return False
        return topic != namespace and not topic.startswith(namespace + ":")
