"""What happens to an application's end-user sockets when the application changes.

* Archived (or its organization deleted): every socket of its namespace closes at once.
* Secret rotated: the sockets opened with the old secret keep working for the grace period
  (`integrations.secret_grace_seconds`), then close; a second rotation within the grace period
  retires the secret before it at once (only one previous secret is ever accepted).
* One end user terminated (`close_end_user`, Pusher's `terminate_connections`): the sockets of
  that user of that application close with 4009, on every node: Pusher sockets signed in as
  the user and Phoenix sockets opened with a token for them (`sub`). It is a broadcast on
  `END_USER_CLOSES_TOPIC`, which every node's `AppSockets` takes, so one path closes them here
  (synchronously, before `close_end_user` returns) and elsewhere.

The close code is 1001, as for revoked accounts: phoenix.js reconnects, and the upgrade is then
refused with 403 until its backend signs it a token with the new secret (an archived application
refuses every one). `AppSockets.run` is a supervised child that waits for the next grace period
to end; the grace periods are this node's (a rotation made on another node applies here when the
cached application expires, `integrations.app_cache_seconds`, and to new sockets only).
"""

from __future__ import annotations

import heapq
import logging
import math

import trio

from parley.actors.realtime.pubsub import Broadcast
from parley.api.socket.core.close_codes import CLOSE_GOING_AWAY
from parley.api.socket.core.hub import SocketHub
from parley.api.socket.core.principal import SocketPrincipal
from parley.api.socket.pusher.connect import PusherConnection
from parley.api.socket.pusher.frames import CLOSE_UNAUTHORIZED
from parley.integrations import topics
from parley.integrations.directory import ApplicationDirectory
from parley.integrations.end_users import EndUser

log = logging.getLogger(__name__)

END_USER_CLOSES_TOPIC = "parley:end_user_closes"
"""Where `close_end_user` is broadcast to every node (no channel routes it)."""


def is_end_user(principal: SocketPrincipal, app_key: str, user_id: str) -> bool:
    """Whether the socket of `principal` belongs to end user `user_id` of `app_key`: a Phoenix
    socket with their token, or a Pusher socket signed in as them."""
    grant = principal.grant
    if isinstance(grant, EndUser):
        return grant.app_key == app_key and grant.subject == user_id
    if isinstance(grant, PusherConnection):
        return grant.app_key == app_key and grant.user is not None and grant.user.user_id == user_id
    return False


class AppSockets:
    """Closes end-user sockets on archive and after a rotation's grace period."""

    def __init__(self, hub: SocketHub, directory: ApplicationDirectory) -> None:
        self._hub = hub
        self._directory = directory
        self._retirements: list[tuple[float, str, int]] = []
        """(trio deadline, app key, last retired secret version): a heap."""
        self._changed = trio.Event()
        hub.pubsub.subscribe(END_USER_CLOSES_TOPIC, self)

    def close_end_user(self, app_key: str, user_id: str, code: int = CLOSE_UNAUTHORIZED) -> None:
        """Close every socket of end user `user_id` of application `app_key`, on every node,
        with `code` (4009: Pusher's "terminated by the application"; pusher-js does not
        reconnect after it, phoenix.js does and is let in again while its token is good)."""
        self._hub.pubsub.publish(
            END_USER_CLOSES_TOPIC, "close", {"app_key": app_key, "user_id": user_id, "code": code}
        )

    def deliver(self, broadcast: Broadcast) -> None:
        """A `close_end_user` from this node or another: close the sockets here."""
        match broadcast.payload:
            case {"app_key": str(app_key), "user_id": str(user_id), "code": int(code)}:
                closed = self._hub.close_namespace(
                    topics.namespace(app_key),
                    code,
                    "terminated",
                    where=lambda principal: is_end_user(principal, app_key, user_id),
                )
                log.info("end user %s of %s: %d socket(s) closed", user_id, app_key, closed)
            case _:
                log.warning("malformed end-user close: %.200r", broadcast.payload)

    def archived(self, app_keys: list[str]) -> int:
        """These applications were archived or deleted: close all of their sockets now."""
        self._directory.forget(app_keys)
        closed = 0
        for key in app_keys:
            closed += self._hub.close_namespace(
                topics.namespace(key), CLOSE_GOING_AWAY, "application archived"
            )
        return closed

    def rotated(self, app_key: str, new_version: int, grace_seconds: float) -> None:
        """The secret of `app_key` is now `new_version`: close the sockets of secrets older
        than the one just replaced now, and those of the replaced one after `grace_seconds`."""
        self._directory.forget([app_key])
        self._close_older(app_key, new_version - 2)
        deadline = trio.current_time() + grace_seconds
        heapq.heappush(self._retirements, (deadline, app_key, new_version - 1))
        self._changed.set()

    def _close_older(self, app_key: str, retired: int) -> int:
        def signed_with_retired(principal: SocketPrincipal) -> bool:
            grant = principal.grant
            return isinstance(grant, EndUser) and grant.secret_version <= retired

        if retired < 1:
            return 0
        return self._hub.close_namespace(
            topics.namespace(app_key), CLOSE_GOING_AWAY, "secret retired", where=signed_with_retired
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Close the sockets of each retired secret when its grace period ends."""
        task_status.started()
        while True:
            deadline = self._retirements[0][0] if self._retirements else math.inf
            with trio.move_on_at(deadline):
                await self._changed.wait()
            self._changed = trio.Event()
            now = trio.current_time()
            while self._retirements and self._retirements[0][0] <= now:
                _, app_key, version = heapq.heappop(self._retirements)
                closed = self._close_older(app_key, version)
                log.info(
                    "application %s: secret %d retired, %d socket(s) closed",
                    app_key,
                    version,
                    closed,
                )
