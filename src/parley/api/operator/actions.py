"""The console's safe actions (DESIGN §6), each checked, carried out, then audited.

* `POST /debug/actors/{id}/kill` {reason?}: crash one actor on purpose; its supervisor restarts
  it by its restart type (a conversation comes back, a session does not: its client reconnects).
* `POST /debug/actors/{id}/end_idle`: end an actor that is waiting for work, as its idle timeout
  would (a conversation then starts again on its next message). Refused while it is busy, and for
  actors that never idle out.
* `POST /debug/sockets/{id}/close` {code?}: close one socket (its session's id), or every socket
  of a user (a user's id), with 1012 (clients reconnect) or 1001.
* `POST /debug/nodes/{node}/drain`, `.../resume`: see `drain`.

A refusal (no such actor, socket or node; a bad body; an actor that is not running) does nothing
and is not audited. Every action done is written to the audit log as `<target>.<verb>`
(`actor.kill`, `socket.close`, `node.drain`, ...) with who did it, from where, and on which node.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from quart import Blueprint, Response, jsonify, request

from parley.actors import ActorUnavailable
from parley.api.body import json_object
from parley.api.errors import ApiError, invalid, not_found
from parley.api.operator.access import Operator
from parley.api.operator.console import OperatorConsole
from parley.api.socket.core.close_codes import CLOSE_GOING_AWAY, CLOSE_SERVICE_RESTART

CLOSE_CODES: Final = (CLOSE_SERVICE_RESTART, CLOSE_GOING_AWAY)


class ConsoleActions:
    """The actions; each handler takes its caller from the gate with `unsafe=True`."""

    def __init__(self, console: OperatorConsole) -> None:
        self.console = console
        self.gate = console.gate
        self.context = console.context

    def register(self, blueprint: Blueprint) -> None:
        for rule, view in (
            ("/debug/actors/<actor_id>/kill", self.kill_actor),
            ("/debug/actors/<actor_id>/end_idle", self.end_idle),
            ("/debug/sockets/<socket_id>/close", self.close_socket),
            ("/debug/nodes/<node>/drain", self.drain),
            ("/debug/nodes/<node>/resume", self.resume),
        ):
            blueprint.add_url_rule(rule, view.__name__, view, methods=["POST"])

    async def _body(self) -> dict[str, Any]:
        """The optional JSON object body (scripts may send none)."""
        if not await request.get_data(cache=True):
            return {}
        return await json_object()

    def _reason(self, body: dict[str, Any], default: str) -> str:
        reason = body.get("reason")
        if reason is None or reason == "":
            return default
        limit = self.context.settings.debug.reason_max_chars
        if not isinstance(reason, str) or len(reason) > limit:
            raise invalid({"reason": [f"a string of at most {limit} characters"]})
        return reason

    async def _done(
        self,
        operator: Operator,
        action: str,
        target_type: str,
        target_id: str,
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> tuple[Response, int]:
        audited = await self.console.record(
            operator, action, target_type, target_id, reason=reason, details=details
        )
        answer = {
            "node": self.console.node.name,
            "action": action,
            "target": {"type": target_type, "id": target_id},
            "audited": audited,
            **(details or {}),
        }
        return jsonify(answer), 202

    # -- actors -------------------------------------------------------------------------------

    async def kill_actor(self, actor_id: str) -> tuple[Response, int]:
        operator = await self.gate.operator(unsafe=True)
        body = await self._body()
        reason = self._reason(body, f"killed by {operator.label} from the console")
        ref = self.context.runtime.system.directory.get(actor_id)
        if ref is None:
            raise not_found(f"no actor {actor_id!r} on this node")
        if not ref.running:
            raise ApiError(409, "not_running", f"{actor_id} is not running (it is restarting)")
        try:
            ref.kill(reason)
        except ActorUnavailable:
            raise not_found(f"no actor {actor_id!r} on this node") from None
        return await self._done(
            operator,
            "actor.kill",
            "actor",
            actor_id,
            reason=reason,
            details={"kind": ref.kind, "key": ref.key},
        )

    async def end_idle(self, actor_id: str) -> tuple[Response, int]:
        operator = await self.gate.operator(unsafe=True)
        ref = self.context.runtime.system.directory.get(actor_id)
        if ref is None:
            raise not_found(f"no actor {actor_id!r} on this node")
        if ref.idle_timeout is None:
            raise ApiError(
                409, "never_idle", f"{actor_id} ({ref.kind}) never idles out; kill it instead"
            )
        if not ref.end_if_idle():
            raise ApiError(409, "busy", f"{actor_id} is not waiting for work now; try again")
        return await self._done(
            operator,
            "actor.end_idle",
            "actor",
            actor_id,
            details={"kind": ref.kind, "key": ref.key},
        )

    # -- sockets ------------------------------------------------------------------------------

    async def close_socket(self, socket_id: str) -> tuple[Response, int]:
        operator = await self.gate.operator(unsafe=True)
        body = await self._body()
        code = body.get("code", CLOSE_SERVICE_RESTART)
        if not isinstance(code, int) or isinstance(code, bool) or code not in CLOSE_CODES:
            raise invalid({"code": [f"one of {', '.join(map(str, CLOSE_CODES))}"]})
        hub = self.context.sockets
        reason = f"closed by {operator.label}"
        try:
            user_id = uuid.UUID(socket_id)
        except ValueError:
            handle = hub.session(socket_id)
            if handle is None:
                raise not_found(f"no open socket {socket_id!r} on this node") from None
            handle.close(code, reason)
            details: dict[str, Any] = {
                "code": code,
                "closed": 1,
                "user_id": str(handle.principal.user_id),
            }
            return await self._done(operator, "socket.close", "socket", socket_id, details=details)
        closed = hub.close_user(user_id, code, reason)
        if not closed:
            raise not_found(f"user {socket_id} has no open socket on this node")
        return await self._done(
            operator, "socket.close", "user", socket_id, details={"code": code, "closed": closed}
        )

    # -- the node -----------------------------------------------------------------------------

    def _this_node(self, node: str) -> None:
        if node != self.console.node.name:
            raise not_found(f"no node {node!r} (this is {self.console.node.name})")

    async def drain(self, node: str) -> tuple[Response, int]:
        operator = await self.gate.operator(unsafe=True)
        self._this_node(node)
        drain = self.console.drain
        if not drain.start():
            raise ApiError(409, "not_serving", f"the node is {drain.state.value} already")
        return await self._done(
            operator,
            "node.drain",
            "node",
            node,
            details={
                "open_sockets": self.context.sockets.connection_count,
                "period_seconds": drain.period_seconds,
            },
        )

    async def resume(self, node: str) -> tuple[Response, int]:
        operator = await self.gate.operator(unsafe=True)
        self._this_node(node)
        if not self.console.drain.resume():
            raise ApiError(409, "serving", "the node is serving already")
        return await self._done(operator, "node.resume", "node", node)
