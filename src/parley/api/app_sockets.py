"""What happens to an application's end-user sockets when the application changes.

* Archived (or its organization deleted): every socket of its namespace closes at once.
* Secret rotated: the sockets opened with the old secret keep working for the grace period
  (`integrations.secret_grace_seconds`), then close; a second rotation within the grace period
  retires the secret before it at once (only one previous secret is ever accepted).

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

from parley.api.socket.core.close_codes import CLOSE_GOING_AWAY
from parley.api.socket.core.hub import SocketHub
from parley.api.socket.core.principal import SocketPrincipal
from parley.integrations import topics
from parley.integrations.directory import ApplicationDirectory
from parley.integrations.end_users import EndUser

log = logging.getLogger(__name__)


class AppSockets:
    """Closes end-user sockets on archive and after a rotation's grace period."""

    def __init__(self, hub: SocketHub, directory: ApplicationDirectory) -> None:
        self._hub = hub
        self._directory = directory
        self._retirements: list[tuple[float, str, int]] = []
        """(trio deadline, app key, last retired secret version): a heap."""
        self._changed = trio.Event()

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
