"""`OperatorConsole`: the console's parts, built once at the composition root.

It holds what the console's handlers reach (the app's context, this node, its drain, metrics,
monitor and sign-in sessions) and the children it adds to the supervision tree (the monitor and
the drain task). `install` (in `routes`) serves it from a Quart app.
"""

from __future__ import annotations

import logging

import trio

from parley.api.context import AppContext
from parley.api.operator.access import ConsoleSessions, Gate, Operator
from parley.api.operator.drain import NodeDrain
from parley.api.operator.metrics import NodeMetrics
from parley.api.operator.monitor import Monitor
from parley.api.operator.node import Node
from parley.store.audit import AuditEntry
from parley.supervision import ChildSpec

log = logging.getLogger(__name__)

AUDIT_TIMEOUT_SECONDS = 5.0
"""An action is not held up longer than this by its audit entry (see `record`)."""


class OperatorConsole:
    """This node's console: its parts, and the audit of what operators do through it."""

    def __init__(self, context: AppContext, node: Node | None = None) -> None:
        self.context = context
        self.node = node or Node.this_process()
        settings = context.settings
        self.drain = NodeDrain(
            context.sockets,
            period_seconds=settings.debug.drain_seconds,
            grace_seconds=settings.server.shutdown_grace_seconds,
        )
        self.metrics = NodeMetrics(
            self.node, context.runtime, context.sockets, self.drain, context.webhooks
        )
        self.monitor = Monitor(settings.debug, self.metrics, context.sockets)
        self.gate = Gate(context, ConsoleSessions(settings.debug))

    def children(self) -> list[ChildSpec]:
        """What the console runs under the root supervisor."""
        grace = self.context.settings.supervision.child_shutdown_seconds
        return [
            ChildSpec("operator-monitor", self.monitor.run, shutdown_timeout=grace),
            ChildSpec(
                "operator-drain",
                self.drain.run,
                shutdown_timeout=grace,
                describe=self.drain.describe,
            ),
        ]

    async def record(
        self,
        operator: Operator,
        action: str,
        target_type: str,
        target_id: str,
        *,
        reason: str | None = None,
        details: dict[str, object] | None = None,
    ) -> bool:
        """Write an operator's action to the audit log (who, what, when); False if it could not be.

        The action has been carried out by then: an operator draining a node whose database is
        down must not be stopped by the audit. A failed write is logged at ERROR with the same
        facts, and the answer says `"audited": false`.
        """
        entry = AuditEntry(
            operator.user_id,
            action,
            target_type,
            target_id,
            reason,
            {"node": self.node.name, "by": operator.label, "via": operator.via, "ip": operator.ip}
            | (details or {}),
        )
        with trio.move_on_after(AUDIT_TIMEOUT_SECONDS):
            try:
                await self.context.stores.audit.add(entry)
            except Exception as exc:
                log.error(
                    "could not audit %s of %s %s by %s: %r",
                    action,
                    target_type,
                    target_id,
                    operator.label,
                    exc,
                )
                return False
            return True
        log.error(
            "auditing %s of %s %s by %s timed out", action, target_type, target_id, operator.label
        )
        return False
