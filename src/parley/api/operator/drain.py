"""Draining a node: stop taking sockets, close the open ones gradually, then say it is drained.

What an operator does before taking a node out (a deploy, a move): `start` refuses every new
socket at once (the upgrade gets 503, `SocketHub.gate`; `/health` answers 503 so a load balancer
stops sending), then `run` closes the open sockets with 1012 ("service restart": every phoenix.js
version reconnects, and lands on another node), spread evenly over `debug.drain_seconds` so the
other nodes take the reconnects gradually rather than all at once. Once none is left open (or
`server.shutdown_grace_seconds` after the last close, for sockets whose transport is slow to
notice), the node is `drained`. `resume` undoes it at any point: new sockets are accepted again
(the ones already closed have moved on).

HTTP requests, the console's included, are served throughout: draining is about sockets.
"""

from __future__ import annotations

import enum
import math
from datetime import UTC, datetime
from typing import Final

import trio

from parley.api.socket.core.close_codes import CLOSE_SERVICE_RESTART
from parley.api.socket.core.hub import SocketHub

DRAIN_STEP_SECONDS: Final = 0.25
"""How often a drain closes its next share of the sockets."""


class DrainState(enum.StrEnum):
    SERVING = "serving"
    DRAINING = "draining"
    DRAINED = "drained"


class NodeDrain:
    """The node's drain state and the task that carries a drain out (a supervised child)."""

    def __init__(self, hub: SocketHub, *, period_seconds: float, grace_seconds: float) -> None:
        self._hub = hub
        self.period_seconds = period_seconds
        self._grace_seconds = grace_seconds
        self.state = DrainState.SERVING
        self.started_at: datetime | None = None
        self.finished_at: datetime | None = None
        self.closed = 0
        """Sockets this drain has closed so far."""
        self._requested = trio.Event()
        self._scope: trio.CancelScope | None = None

    def start(self) -> bool:
        """Begin draining; False (nothing done) if the node is not serving."""
        if self.state is not DrainState.SERVING:
            return False
        self._hub.accepting = False
        self.state = DrainState.DRAINING
        self.started_at = datetime.now(UTC)
        self.finished_at = None
        self.closed = 0
        self._requested.set()
        return True

    def resume(self) -> bool:
        """Accept sockets again, stopping a drain under way; False if the node is serving."""
        if self.state is DrainState.SERVING:
            return False
        self._hub.accepting = True
        self.state = DrainState.SERVING
        self.finished_at = datetime.now(UTC)
        self._requested = trio.Event()
        if self._scope is not None:
            self._scope.cancel()
        return True

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Carry out each drain that `start` asks for, until stopped."""
        task_status.started()
        while True:
            await self._requested.wait()
            self._requested = trio.Event()
            if self.state is not DrainState.DRAINING:
                continue  # resumed before this task got to it
            with trio.CancelScope() as scope:
                self._scope = scope
                await self._close_spread()
                await self._wait_until_empty()
                self.state = DrainState.DRAINED
                self.finished_at = datetime.now(UTC)
            self._scope = None

    async def _close_spread(self) -> None:
        deadline = trio.current_time() + self.period_seconds
        while True:
            open_sockets = [h for h in self._hub.sessions() if not h.outbound.closing]
            if not open_sockets:
                return
            steps_left = max(1, math.ceil((deadline - trio.current_time()) / DRAIN_STEP_SECONDS))
            share = math.ceil(len(open_sockets) / steps_left)
            for handle in open_sockets[:share]:
                handle.close(CLOSE_SERVICE_RESTART, "node draining")
                self.closed += 1
            if share == len(open_sockets):
                return
            await trio.sleep(DRAIN_STEP_SECONDS)

    async def _wait_until_empty(self) -> None:
        with trio.move_on_after(self._grace_seconds):
            await self._hub.wait_until_empty()

    def describe(self) -> dict[str, object]:
        return {
            "state": self.state.value,
            "accepting": self._hub.accepting,
            "period_seconds": self.period_seconds,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "closed": self.closed,
            "open": self._hub.connection_count,
        }
