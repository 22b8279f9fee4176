"""The socket layer's one shared place per node: open sessions, the user -> sessions index,
counters, and the per-turn write flusher.

`SocketHub` is built once, at the composition root (`parley.service`), from typed parts, and
handed to the transports and the REST handlers that close sockets (revocation, operators). The
index of live sessions by user is owned here and only here: sessions are added when they start
and leave when they end, and `close_user` reads it synchronously (no await between the look-up
and the closes, so no session can slip in or out half-way). The actors layer never imports it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import trio

from parley.actors import ActorUnavailable
from parley.actors.realtime.presence import Presence
from parley.actors.realtime.pubsub import Broadcast, PubSub
from parley.actors.runtime import ActorSystem
from parley.api.socket.core.close_codes import CLOSE_GOING_AWAY, CLOSE_SERVICE_RESTART
from parley.api.socket.core.outbound import OutboundQueue
from parley.api.socket.core.principal import SocketPrincipal
from parley.api.socket.core.router import Router
from parley.api.socket.core.serializer import Serializer
from parley.api.socket.core.services import SocketServices
from parley.api.socket.core.session import Inbound, SessionRef, Stop, session_child_spec
from parley.api.socket.core.transport import (
    PHOENIX_WIRE,
    Accepted,
    Authorize,
    ConnectionInfo,
    ConnectRequest,
    Dismissed,
    InboundFrame,
    Refused,
    Wire,
)
from parley.config import Settings
from parley.store.token_states import TokenState
from parley.supervision import DynamicSupervisor, UnknownChildError

log = logging.getLogger(__name__)


CurrentTokens = Callable[[list[uuid.UUID]], Awaitable[Mapping[uuid.UUID, TokenState]]]
"""The users' token states now (`parley.store.token_states`), for `SocketHub.recheck_users`."""

REVOCATIONS_TOPIC = "parley:revocations"
"""Where revocations are broadcast (no channel routes it, so no client can join it)."""
REVOKE = "revoke"


@dataclass(frozen=True, eq=False)
class _Revocations:
    """The hub's subscription to revocations, from this node or any other."""

    hub: SocketHub

    def deliver(self, broadcast: Broadcast) -> None:
        try:
            user_id = uuid.UUID(broadcast.payload["user_id"])
        except (TypeError, KeyError, ValueError):
            log.warning("malformed revocation: %.200r", broadcast.payload)
            return
        self.hub.close_user(user_id, CLOSE_GOING_AWAY, "revoked")


@dataclass(eq=False, slots=True)
class SessionHandle:
    """What the transport holds for one connection: the actor's ref, its queue, its name."""

    ref: SessionRef
    name: str
    outbound: OutboundQueue
    principal: SocketPrincipal
    info: ConnectionInfo
    vsn: str
    """The protocol version the client speaks (its serializer's)."""
    connected_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_frame_at: float = field(default_factory=trio.current_time)
    """When the client last sent a frame (trio's clock), for `SocketHub.watch_liveness`."""
    frames_in: int = 0
    idle_timeout: float = math.inf
    """Silence after which `watch_liveness` closes it (its protocol's, `Wire.idle_timeout`)."""
    idle_close: int = CLOSE_GOING_AWAY

    async def inbound(self, frame: InboundFrame) -> bool:
        """Hand a frame to the session, waiting for mailbox space; False once it is gone."""
        self.last_frame_at = trio.current_time()
        self.frames_in += 1
        if self.outbound.closing:
            return True  # keep reading (and discarding) until the close goes out
        try:
            await self.ref.send(Inbound(frame))
        except ActorUnavailable:  # the session ended
            return False
        return True

    def transport_closed(self) -> None:
        self.outbound.close(CLOSE_GOING_AWAY, "transport closed", discard=True)

    def close(self, code: int, reason: str) -> None:
        """Close this socket with `code` after what is queued, and stop the session."""
        self.outbound.close(code, reason)
        try:
            self.ref.info(Stop(reason))
        except ActorUnavailable:
            log.debug("session %s already gone", self.name)


class SocketHub:
    """Sessions of this node, the user index, counters, and the parts sessions share."""

    def __init__(
        self,
        settings: Settings,
        *,
        pubsub: PubSub,
        presence: Presence,
        router: Router,
        system: ActorSystem,
        sessions: DynamicSupervisor,
    ) -> None:
        self.settings = settings
        self.pubsub = pubsub
        self.presence = presence
        self._sessions = sessions
        self.services = SocketServices(settings, pubsub, presence, router, system, self.count)
        self._services_by_router: dict[Router, SocketServices] = {router: self.services}
        """The services of each protocol's route table (`Wire.router`), made once each."""
        self._handles: dict[str, SessionHandle] = {}
        self._handles_by_user: dict[uuid.UUID, SessionHandle | dict[str, SessionHandle]] = {}
        """A user's one socket, or their sockets by name when they have several: most users
        (every Pusher socket's principal) have one, and a dict for it cost every idle socket
        0.2 KB."""
        self._handles_by_namespace: dict[str, dict[str, SessionHandle]] = {}
        self._opening: dict[str, int] = {}
        """Sessions of each namespace being started (counted before the await, so a quota
        checked just before `open_session` cannot be overshot by concurrent connects)."""
        self.counters: dict[str, int] = {}
        self.accepting = True
        """New sockets are accepted; False while the node drains (upgrades get 503)."""
        self.open_by_kind: Counter[tuple[str, str]] = Counter()
        """Open sockets by (transport, protocol)."""
        self._closed_frames_in = 0
        self._closed_frames_out = 0
        self._emptied: trio.Event | None = None
        """Set when the last open socket ends, for `wait_until_empty`."""
        # Outbound queues with frames for the flusher (`flush_writes`), and the flusher while it
        # waits for some; while it is not running, deferred writes happen at once.
        self._deferred_writes: list[OutboundQueue] = []
        self._flusher: trio.lowlevel.Task | None = None
        self._flushing = False
        self._defer = self._defer_write
        """One bound method for every socket's `OutboundQueue.defer` (not one each)."""
        pubsub.subscribe(REVOCATIONS_TOPIC, _Revocations(self))

    # -- sessions ---------------------------------------------------------------------------

    def gate(self, authorize: Authorize) -> Authorize:
        """`authorize`, preceded by the drain check: while not `accepting`, every upgrade is
        refused with 503 before its token is even looked at (clients retry, elsewhere)."""

        async def decide(request: ConnectRequest) -> Accepted | Refused | Dismissed:
            if not self.accepting:
                return Refused(503, "draining")
            return await authorize(request)

        return decide

    async def open_session(
        self,
        principal: SocketPrincipal,
        serializer: Serializer,
        info: ConnectionInfo,
        wire: Wire = PHOENIX_WIRE,
    ) -> SessionHandle:
        """Start a session actor under the sessions supervisor (temporary), speaking `wire`'s
        protocol (its routes, first frames, idle timeout and close codes)."""
        socket = self.settings.socket
        outbound = OutboundQueue(socket.outbound_max_messages, socket.outbound_max_bytes)
        outbound.defer = self._defer
        outbound.closing_map = wire.closing
        for frame in wire.greeting:
            outbound.put(frame)
        services = self.services
        if wire.router is not None:
            services = self._services_by_router.get(wire.router) or dataclasses.replace(
                self.services, router=wire.router
            )
            self._services_by_router[wire.router] = services
        ref, spec = session_child_spec(services, principal, serializer, outbound)
        namespace = principal.namespace
        if namespace is not None:
            self._opening[namespace] = self._opening.get(namespace, 0) + 1
        try:
            await self._sessions.start_child(spec)
        finally:
            if namespace is not None:
                self._opening[namespace] -= 1
                if not self._opening[namespace]:
                    del self._opening[namespace]
        handle = SessionHandle(ref, spec.name, outbound, principal, info, serializer.vsn)
        timeout = (
            socket.heartbeat_timeout_seconds if wire.idle_timeout is None else wire.idle_timeout
        )
        handle.idle_timeout = timeout if 0 < timeout < math.inf else math.inf  # 0: none
        if wire.idle_close is not None:
            handle.idle_close = wire.idle_close
        self._handles[handle.name] = handle
        by_user = self._handles_by_user
        held = by_user.get(principal.user_id)
        if held is None:
            by_user[principal.user_id] = handle
        elif isinstance(held, SessionHandle):
            by_user[principal.user_id] = {held.name: held, handle.name: handle}
        else:
            held[handle.name] = handle
        if namespace is not None:
            self._handles_by_namespace.setdefault(namespace, {})[handle.name] = handle
        self.open_by_kind[(info.transport, info.protocol)] += 1
        self.count("connections_opened")
        return handle

    async def end_session(self, handle: SessionHandle) -> None:
        """The transport is done: stop the session (bounded) and forget the handle."""
        self._forget(handle)
        supervisor = self._sessions
        if handle.name in supervisor:
            grace = self.settings.supervision.child_shutdown_seconds
            with trio.move_on_after(grace * 2 if grace > 0 else math.inf):
                try:
                    await supervisor.terminate_child(handle.name)
                except UnknownChildError:  # it ended on its own meanwhile
                    log.debug("session %s already ended", handle.name)

    def _forget(self, handle: SessionHandle) -> None:
        if self._handles.pop(handle.name, None) is None:
            return
        kind = (handle.info.transport, handle.info.protocol)
        self.open_by_kind[kind] -= 1
        if not self.open_by_kind[kind]:
            del self.open_by_kind[kind]
        # The closed socket's frames join the node's totals (`frame_totals`).
        self._closed_frames_in += handle.frames_in
        self._closed_frames_out += handle.outbound.sent_frames
        user_id = handle.principal.user_id
        by_user = self._handles_by_user.get(user_id)
        if by_user is handle:
            del self._handles_by_user[user_id]
        elif isinstance(by_user, dict):
            by_user.pop(handle.name, None)
            if len(by_user) == 1:
                self._handles_by_user[user_id] = next(iter(by_user.values()))
        namespace = handle.principal.namespace
        in_namespace = self._handles_by_namespace.get(namespace) if namespace else None
        if namespace is not None and in_namespace is not None:
            in_namespace.pop(handle.name, None)
            if not in_namespace:
                del self._handles_by_namespace[namespace]
        if not self._handles and self._emptied is not None:
            self._emptied.set()

    async def wait_until_empty(self) -> None:
        """Return once this node has no open socket (at once if it has none)."""
        while self._handles:
            self._emptied = trio.Event()
            await self._emptied.wait()
        await trio.lowlevel.checkpoint()

    def sessions_of(self, user_id: uuid.UUID) -> list[SessionHandle]:
        held = self._handles_by_user.get(user_id)
        if held is None:
            return []
        return [held] if isinstance(held, SessionHandle) else list(held.values())

    def sessions(self) -> list[SessionHandle]:
        """Every open socket of this node, oldest first."""
        return list(self._handles.values())

    def session(self, name: str) -> SessionHandle | None:
        """The open socket whose session is named `name` (its actor id), if any."""
        return self._handles.get(name)

    def frame_totals(self) -> tuple[int, int]:
        """(frames received, frames sent) over every socket this node has had, open ones too."""
        frames_in, frames_out = self._closed_frames_in, self._closed_frames_out
        for handle in self._handles.values():
            frames_in += handle.frames_in
            frames_out += handle.outbound.sent_frames
        return frames_in, frames_out

    @property
    def connection_count(self) -> int:
        return len(self._handles)

    def close_user(self, user_id: uuid.UUID, code: int, reason: str) -> int:
        """Close every socket of `user_id` with `code`; returns how many."""
        handles = self.sessions_of(user_id)
        for handle in handles:
            handle.close(code, reason)
        if handles:
            self.count("forced_closes")
        return len(handles)

    def namespace_count(self, namespace: str) -> int:
        """Sockets confined to `namespace` (an application's end users), open or opening."""
        return len(self._handles_by_namespace.get(namespace, ())) + self._opening.get(namespace, 0)

    def close_namespace(
        self,
        namespace: str,
        code: int,
        reason: str,
        *,
        where: Callable[[SocketPrincipal], bool] | None = None,
    ) -> int:
        """Close the sockets confined to `namespace` (those `where` picks); returns how many."""
        handles = [
            handle
            for handle in self._handles_by_namespace.get(namespace, {}).values()
            if where is None or where(handle.principal)
        ]
        for handle in handles:
            handle.close(code, reason)
        if handles:
            self.count("forced_closes")
        return len(handles)

    def revoke_user(self, user_id: uuid.UUID) -> None:
        """Tokens of `user_id` were revoked (logout_all, password change, ban, role change):
        close their sockets with 1001, on this node now and on every node of a cluster.

        It is a broadcast on `REVOCATIONS_TOPIC`, which every node's hub subscribes to, so one
        path closes the sockets here (synchronously, before this returns) and elsewhere.
        1001 as Phoenix's `disconnect` (§3.6): clients reconnect, and the upgrade is refused with
        403 because their token is dead, which is the signal apps act on (§3.4).
        """
        self.pubsub.publish(REVOCATIONS_TOPIC, REVOKE, {"user_id": str(user_id)})

    async def recheck_users(self, current: CurrentTokens) -> int:
        """Close the sockets whose token no longer holds (run after a cluster bus reconnect,
        when revocations broadcast meanwhile may have been missed); returns how many."""
        users = list(self._handles_by_user)
        states = await current(users)
        closed = 0
        for user_id in users:
            state = states.get(user_id)
            for handle in self.sessions_of(user_id):
                principal = handle.principal
                if principal.token_version is None:
                    continue
                if (
                    state is None
                    or state.banned
                    or state.token_version != principal.token_version
                    or state.role != principal.role
                ):
                    handle.close(CLOSE_GOING_AWAY, "revoked")
                    closed += 1
        if closed:
            self.count("forced_closes", closed)
        return closed

    async def watch_liveness(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Close every socket that sent nothing for its idle timeout (Phoenix sockets:
        `socket.heartbeat_timeout_seconds`, with 1001; other protocols: their `Wire`'s).

        One task checks all sockets, every second (every quarter of the timeout when that is
        shorter), so a silent socket is closed between the timeout and the timeout plus that
        period. A timer per socket (a cancel scope around each session's wait) cost ~1 KB per
        idle connection and a scope per inbound frame.
        """
        timeout = self.settings.socket.heartbeat_timeout_seconds
        task_status.started()
        if not 0 < timeout < math.inf:
            timeout = 4.0  # sockets of other protocols may still have a timeout of their own
        period = min(1.0, timeout / 4)
        while True:
            await trio.sleep(period)
            now = trio.current_time()
            for handle in [
                h for h in self._handles.values() if h.last_frame_at < now - h.idle_timeout
            ]:
                self.count("idle_timeouts")
                handle.close(handle.idle_close, "idle timeout")

    async def flush_writes(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Write the frames each connection got during a scheduler turn with one system call.

        Woken by the first deferred frame of a turn, this task runs in the next one, after every
        task of the turn had its go, so what a commit published to a socket, plus the replies
        sent meanwhile, leaves in one write (see `OutboundQueue.defer`).
        """
        self._flushing = True
        task_status.started()
        try:
            while True:
                while not self._deferred_writes:
                    self._flusher = trio.lowlevel.current_task()
                    await trio.lowlevel.wait_task_rescheduled(self._abort_flusher_wait)
                queues, self._deferred_writes = self._deferred_writes, []
                done = 0
                try:
                    for queue in queues:
                        queue.write_deferred()
                        done += 1
                except BaseException:
                    # The rest are written on the way out (below) rather than forgotten.
                    self._deferred_writes[:0] = queues[done + 1 :]
                    raise
        finally:
            self._flushing = False
            self._flusher = None
            # Nothing waits for a flusher that is gone (stopped, or crashed and restarting).
            queues, self._deferred_writes = self._deferred_writes, []
            for queue in queues:
                queue.write_deferred()

    def _defer_write(self, queue: OutboundQueue) -> None:
        if not self._flushing:
            queue.write_deferred()  # no flusher running: written at once, as without one
            return
        self._deferred_writes.append(queue)
        flusher = self._flusher
        if flusher is not None:
            self._flusher = None
            trio.lowlevel.reschedule(flusher)

    def _abort_flusher_wait(self, _: object) -> trio.lowlevel.Abort:
        self._flusher = None
        return trio.lowlevel.Abort.SUCCEEDED

    def close_all(self, code: int = CLOSE_SERVICE_RESTART, reason: str = "server restart") -> int:
        """Close every socket (server draining): 1012, so every client version reconnects."""
        handles = list(self._handles.values())
        for handle in handles:
            handle.close(code, reason)
        return len(handles)

    # -- counters ---------------------------------------------------------------------------

    def count(self, name: str, by: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + by

    def statistics(self) -> dict[str, Any]:
        presence = self.presence.statistics()
        return {
            "connections": self.connection_count,
            "users": len(self._handles_by_user),
            "counters": dict(sorted(self.counters.items())),
            "presence": {"topics": presence.topics, "metas": presence.metas},
        }
