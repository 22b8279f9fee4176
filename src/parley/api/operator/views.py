"""The console's JSON views (DESIGN §6): overview, nodes, actors, the tree, sockets, topics, audit.

Every view answers `{"node": <this node's name>, ...}`. The lists are snapshots of trio-owned
state read without an await, sorted and filtered here, and paged with `offset` and `limit`
(`debug.page_default_limit`, at most `debug.page_max_limit`: a bigger page is refused, not
clamped). Bad parameters are a 422 naming them.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

from quart import Blueprint, Response, jsonify, request

from parley.api.audit import audit_json
from parley.api.body import query_int
from parley.api.errors import invalid, not_found
from parley.api.operator.console import OperatorConsole
from parley.api.pagination import decode_cursor, encode_cursor
from parley.api.socket.core.hub import SessionHandle

if TYPE_CHECKING:
    from datetime import datetime

    from parley.actors.runtime import RankedBy

T = TypeVar("T")

FILTER_MAX_CHARS: Final = 200
MAX_OFFSET: Final = 10**9
ACTOR_SORTS: Final = (
    "id",
    "kind",
    "key",
    "mailbox_depth",
    "processed",
    "dropped",
    "restarts",
    "started_at",
)
SOCKET_SORTS: Final = ("connected_at", "user", "transport", "outbound_bytes", "frames_in")
TOPIC_SORTS: Final = ("topic", "subscribers")


def _text(name: str) -> str | None:
    value = request.args.get(name)
    if value is None or value == "":
        return None
    if len(value) > FILTER_MAX_CHARS:
        raise invalid({name: [f"at most {FILTER_MAX_CHARS} characters"]})
    return value


def _choice(name: str, allowed: Sequence[str], default: str) -> str:
    value = request.args.get(name) or default
    if value not in allowed:
        raise invalid({name: [f"one of {', '.join(allowed)}"]})
    return value


def _sorted(items: list[T], key: Callable[[T], Any]) -> list[T]:
    """Sorted by `?order=asc|desc`; None values first (last when descending)."""
    descending = _choice("order", ("asc", "desc"), "asc") == "desc"
    return sorted(items, key=lambda item: _nulls_first(key(item)), reverse=descending)


def _nulls_first(value: object) -> tuple[bool, Any]:
    return (value is not None, value)


def _id_order(actor_id: str) -> int:
    """Actor ids are `<kind>-<n>` with one counter for all kinds: by `n` is by age."""
    number = actor_id.rpartition("-")[2]
    return int(number) if number.isdigit() else -1


class ConsoleViews:
    """The read-only views; each checks its caller first."""

    def __init__(self, console: OperatorConsole) -> None:
        self.console = console
        self.gate = console.gate
        self.context = console.context
        self.settings = console.context.settings.debug

    def register(self, blueprint: Blueprint) -> None:
        for rule, view in (
            ("/debug/session", self.session),
            ("/debug/overview", self.overview),
            ("/debug/nodes", self.nodes),
            ("/debug/actors", self.actors),
            ("/debug/actors/<actor_id>", self.actor),
            ("/debug/tree", self.tree),
            ("/debug/sockets", self.sockets),
            ("/debug/sockets/<socket_id>", self.socket),
            ("/debug/topics", self.topics),
            ("/debug/topics/<path:topic>", self.topic),
            ("/debug/audit", self.audit),
            ("/debug/webhooks", self.webhooks),
        ):
            blueprint.add_url_rule(rule, view.__name__, view, methods=["GET"])

    def _page(self) -> tuple[int, int]:
        offset = query_int("offset", 0, minimum=0, maximum=MAX_OFFSET)
        limit = query_int(
            "limit",
            self.settings.page_default_limit,
            minimum=1,
            maximum=self.settings.page_max_limit,
        )
        return offset, limit

    def _answer(self, body: dict[str, Any]) -> Response:
        return jsonify({"node": self.console.node.name, **body})

    # -- who am I, and the node --------------------------------------------------------------

    async def session(self) -> Response:
        operator = await self.gate.operator()
        session = self.gate.session() if "Authorization" not in request.headers else None
        return self._answer(
            {
                "operator": operator.as_dict(),
                "csrf_token": session.csrf_token if session is not None else None,
                "session_ttl_seconds": self.settings.session_ttl_seconds,
            }
        )

    def node_json(self) -> dict[str, Any]:
        node = self.console.node
        return {
            "node": node.name,
            "self": True,
            "version": node.version,
            "started_at": node.started_at.isoformat(),
            "uptime_seconds": round(node.uptime_seconds(), 1),
            "connections": self.context.sockets.connection_count,
            "actors": len(self.context.runtime.system.directory),
            "drain": self.console.drain.describe(),
        }

    async def nodes(self) -> Response:
        """This node, and in a cluster its bus and the other nodes it hears (docs/cluster.md)."""
        await self.gate.operator()
        body: dict[str, Any] = {"nodes": [self.node_json()]}
        cluster = self.context.runtime.cluster
        if cluster is not None:
            described = cluster.describe()
            body["nodes"] += [{**peer, "self": False} for peer in described["nodes"]]
            body["cluster"] = described
        return self._answer(body)

    async def overview(self) -> Response:
        await self.gate.operator()
        since = request.args.get("since")
        try:
            after = float(since) if since else 0.0
        except ValueError:
            raise invalid({"since": ["must be a number (a sample's `at`)"]}) from None
        hub = self.context.sockets
        runtime = self.context.runtime
        frames_in, frames_out = hub.frame_totals()
        pubsub = runtime.pubsub.statistics()
        writer = runtime.writer.statistics()
        return self._answer(
            {
                **self.node_json(),
                "nodes": [self.node_json()],
                "connections": {
                    "total": hub.connection_count,
                    "users": len({h.principal.user_id for h in hub.sessions()}),
                    "by_kind": [
                        {"transport": transport, "protocol": protocol, "count": count}
                        for (transport, protocol), count in sorted(hub.open_by_kind.items())
                    ],
                },
                "totals": {
                    "joins": hub.counters.get("joins", 0),
                    "messages_in": frames_in,
                    "messages_out": frames_out,
                    "deliveries": pubsub.deliveries,
                    "topics": pubsub.topics,
                    "messages_stored": writer.messages,
                    "batches": writer.batches,
                },
                "sample_seconds": self.settings.sample_seconds,
                "samples": [s for s in self.console.monitor.samples if s["at"] > after],
            }
        )

    # -- actors and the tree ----------------------------------------------------------------

    async def actors(self) -> Response:
        await self.gate.operator()
        kind, key = _text("kind"), _text("key")
        sort = _choice("sort", ACTOR_SORTS, "id")
        offset, limit = self._page()
        directory = self.context.runtime.system.directory
        refs = directory.refs()
        kinds = Counter(ref.kind for ref in refs)
        chosen = [
            ref
            for ref in refs
            if (kind is None or ref.kind == kind)
            and (key is None or (ref.key is not None and key in ref.key))
        ]
        if sort in ("id", "kind", "key"):
            by: dict[str, Callable[[Any], Any]] = {
                "id": lambda ref: _id_order(ref.id),
                "kind": lambda ref: (ref.kind, _id_order(ref.id)),
                "key": lambda ref: ref.key,
            }
            ordered = _sorted(chosen, by[sort])
        else:
            descending = _choice("order", ("asc", "desc"), "asc") == "desc"
            ordered = directory.ranked(chosen, cast("RankedBy", sort), descending=descending)
        page = [ref.statistics() for ref in ordered[offset : offset + limit]]
        return self._answer(
            {
                "total": len(chosen),
                "offset": offset,
                "limit": limit,
                "kinds": dict(sorted(kinds.items())),
                "actors": [stats.as_dict() for stats in page],
            }
        )

    async def actor(self, actor_id: str) -> Response:
        await self.gate.operator()
        ref = self.context.runtime.system.directory.get(actor_id)
        if ref is None:
            raise not_found(f"no actor {actor_id!r} on this node")
        return self._answer(
            {"actor": ref.describe(), "mailbox": ref.queued(self.settings.mailbox_peek_max)}
        )

    async def tree(self) -> Response:
        await self.gate.operator()
        return self._answer({"tree": self.context.runtime.describe_tree()})

    # -- sockets and topics -----------------------------------------------------------------

    def _socket_json(self, handle: SessionHandle, *, full: bool = False) -> dict[str, Any]:
        described = handle.ref.describe() if handle.ref.alive else {}
        state = described.get("state")
        session: dict[str, Any] = state if isinstance(state, dict) else {}
        outbound = handle.outbound
        row: dict[str, Any] = {
            "id": handle.name,
            "user": {"id": str(handle.principal.user_id), "username": handle.principal.username},
            "token_kind": handle.principal.token_kind,
            "transport": handle.info.transport,
            "protocol": handle.info.protocol,
            "vsn": handle.vsn,
            "peer": handle.info.peer,
            "connected_at": handle.connected_at.isoformat(),
            "channels": sorted(session.get("channels", {})),
            "outbound": {
                "frames": len(outbound),
                "bytes": outbound.bytes,
                "max_frames": outbound.max_frames,
                "max_bytes": outbound.max_bytes,
            },
            "frames_in": handle.frames_in,
            "frames_out": outbound.sent_frames,
            "rate_limit": session.get("rate_limit"),
            "closing": outbound.closing,
        }
        if full:
            row["session"] = described
        return row

    async def sockets(self) -> Response:
        await self.gate.operator()
        user, transport = _text("user"), _text("transport")
        sort = _choice("sort", SOCKET_SORTS, "connected_at")
        offset, limit = self._page()
        hub = self.context.sockets
        chosen = [
            handle
            for handle in hub.sessions()
            if (transport is None or handle.info.transport == transport)
            and (
                user is None
                or user in handle.principal.username
                or user == str(handle.principal.user_id)
            )
        ]
        by: dict[str, Callable[[SessionHandle], Any]] = {
            "connected_at": lambda h: h.connected_at,
            "user": lambda h: h.principal.username,
            "transport": lambda h: (h.info.transport, h.connected_at),
            "outbound_bytes": lambda h: h.outbound.bytes,
            "frames_in": lambda h: h.frames_in,
        }
        page = _sorted(chosen, by[sort])[offset : offset + limit]
        return self._answer(
            {
                "total": len(chosen),
                "offset": offset,
                "limit": limit,
                "summary": hub.statistics(),
                "sockets": [self._socket_json(handle) for handle in page],
            }
        )

    async def socket(self, socket_id: str) -> Response:
        await self.gate.operator()
        handle = self.context.sockets.session(socket_id)
        if handle is None:
            raise not_found(f"no open socket {socket_id!r} on this node")
        return self._answer({"socket": self._socket_json(handle, full=True)})

    async def topics(self) -> Response:
        await self.gate.operator()
        prefix = _text("prefix")
        sort = _choice("sort", TOPIC_SORTS, "topic")
        offset, limit = self._page()
        runtime = self.context.runtime
        chosen = [
            (topic, count)
            for topic, count in runtime.pubsub.topics()
            if prefix is None or topic.startswith(prefix)
        ]
        page = _sorted(chosen, (lambda t: t[0]) if sort == "topic" else (lambda t: t[1]))
        rows = []
        for topic, subscribers in page[offset : offset + limit]:
            keys, metas = runtime.presence.counts(topic)
            rows.append(
                {
                    "topic": topic,
                    "subscribers": subscribers,
                    "presence": {"keys": keys, "metas": metas},
                }
            )
        return self._answer(
            {"total": len(chosen), "offset": offset, "limit": limit, "topics": rows}
        )

    async def topic(self, topic: str) -> Response:
        await self.gate.operator()
        runtime = self.context.runtime
        subscribers = runtime.pubsub.subscriber_count(topic)
        keys, metas = runtime.presence.counts(topic)
        if not subscribers and not keys:
            raise not_found(f"nobody is on {topic!r} on this node")
        state = runtime.presence.list(topic)
        shown = sorted(state.items())[: self.settings.presence_keys_max]
        return self._answer(
            {
                "topic": topic,
                "subscribers": subscribers,
                "presence": {
                    "keys": keys,
                    "metas": metas,
                    "entries": [{"key": key, "metas": entry["metas"]} for key, entry in shown],
                },
            }
        )

    # -- the audit log ------------------------------------------------------------------------

    async def audit(self) -> Response:
        await self.gate.operator()
        limit = query_int(
            "limit",
            self.settings.page_default_limit,
            minimum=1,
            maximum=self.settings.page_max_limit,
        )
        before = decode_cursor(request.args.get("before"))
        entries = await self.context.stores.audit.page(limit=limit, before=before)
        next_cursor = None
        if len(entries) == limit:
            next_cursor = encode_cursor(entries[-1].at, entries[-1].id)
        return self._answer(
            {"entries": [audit_json(entry) for entry in entries], "next_cursor": next_cursor}
        )

    # -- webhooks -----------------------------------------------------------------------------

    async def webhooks(self) -> Response:
        """The webhook recorder and deliverer of this node, the outbox's rows by state (every
        node's) and its newest rows (`?app_id=` for one application's), newest first."""
        await self.gate.operator()
        webhooks = self.context.webhooks
        if webhooks is None:
            raise not_found("webhooks do not run in this process")
        limit = query_int(
            "limit",
            self.settings.page_default_limit,
            minimum=1,
            maximum=self.settings.page_max_limit,
        )
        app_id = query_int("app_id", 0, minimum=0, maximum=2**63 - 1) or None
        rows = await webhooks.store.recent(limit, app_id)
        return self._answer(
            {
                "settings": dataclasses.asdict(self.context.settings.webhooks),
                **webhooks.describe(),
                "outbox": await webhooks.store.counts(),
                "recent": [
                    {
                        "id": row.id,
                        "app_id": row.app_id,
                        "event": row.event,
                        "state": row.state,
                        "attempts": row.attempts,
                        "recorded_at": row.inserted_at.isoformat(),
                        "next_attempt_at": row.next_attempt_at.isoformat(),
                        "delivered_at": _iso(row.delivered_at),
                        "given_up_at": _iso(row.given_up_at),
                        "last_error": row.last_error,
                    }
                    for row in rows
                ],
            }
        )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
