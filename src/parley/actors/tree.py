"""Parley's supervision tree (DESIGN §3) and the handle the API layer uses to reach it.

Root (rest_for_one): Store -> MessageWriter -> Registry -> IdleWatch -> PubSub -> Presence ->
ConversationSupervisor -> Chat (the tasks of sends that must wait) -> SessionSupervisor -> Mailer,
then what the service adds on top (the socket layer's liveness watch and write flusher, the HTTP
server).
rest_for_one because each child depends on the ones before it: if the store restarts, everything
that holds its connections restarts too; if the HTTP server crashes, nothing below it is touched.
"""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import Sequence
from functools import partial

import trio

from parley.actors.chat import Chat
from parley.actors.chat_events import stored_payloads
from parley.actors.mailer import Mailer
from parley.actors.realtime.bus import BusOpener, open_redis_bus
from parley.actors.realtime.cluster import ClusterPubSub
from parley.actors.realtime.presence import Presence
from parley.actors.realtime.pubsub import LocalPubSub, PubSub
from parley.actors.registry import Registry
from parley.actors.runtime import ActorSystem
from parley.actors.writer import MessageWriter
from parley.config import Settings
from parley.store import Database
from parley.store.conversations import ConversationStore
from parley.store.messages import MessageStore
from parley.store.notify import open_notify_bus
from parley.store.outbox import OutboxStore
from parley.supervision import ChildSpec, DynamicSupervisor, Strategy, Supervisor

log = logging.getLogger(__name__)


async def run_store(
    database: Database, *, task_status: trio.TaskStatus[Database] = trio.TASK_STATUS_IGNORED
) -> None:
    """The Store child: connect (and migrate), serve, and close the pool on the way out."""
    await database.connect()
    try:
        applied = await database.migrate()
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        task_status.started(database)
        await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            await database.close()


class Runtime:
    """The running system below the HTTP layer: what handlers and sockets talk to."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.database = database
        supervision = settings.supervision
        self.system = ActorSystem(settings.actors, supervision)
        self.writer = MessageWriter(MessageStore(database), settings.writer)
        self.registry = Registry(self.system)
        local = LocalPubSub()
        self.local_pubsub = local
        """This node's own subscriptions (under the cluster's adapter, if any)."""
        self.presence = Presence(
            local, broadcast_period=settings.actors.presence_broadcast_ms / 1000
        )
        self.cluster = None if settings.cluster.adapter == "none" else self._cluster(local)
        """The bus under pubsub and presence; None on a single node (nothing of it runs)."""
        self.pubsub: PubSub = local if self.cluster is None else self.cluster
        # Each conversation has the configured intensity of its own: one that crashes on every
        # message is given up alone (and started afresh by the next message) instead of taking
        # every conversation down with it (drill R2).
        self.conversations = DynamicSupervisor(
            "conversations",
            max_restarts=supervision.max_restarts,
            window_seconds=supervision.restart_window_seconds,
            backoff_seconds=supervision.restart_backoff_seconds,
            describe_max_children=supervision.describe_max_children,
            intensity_per_child=True,
        )
        self.sessions = DynamicSupervisor(
            "sessions",
            max_restarts=supervision.max_restarts * 10,
            window_seconds=supervision.restart_window_seconds,
            backoff_seconds=0,
            describe_max_children=supervision.describe_max_children,
        )
        self.chat = Chat(
            system=self.system,
            registry=self.registry,
            supervisor=self.conversations,
            writer=self.writer,
            pubsub=self.pubsub,
            conversations=ConversationStore(database),
            messages=MessageStore(database),
        )
        self.mailer = Mailer(OutboxStore(database), settings.mail)
        self.root: Supervisor | None = None

    def _cluster(self, local: LocalPubSub) -> ClusterPubSub:
        settings = self.settings
        cluster = settings.cluster
        node = cluster.node_name or f"{socket.gethostname()}:{settings.server.port}"
        open_bus: BusOpener = (
            partial(open_notify_bus, self.database, cluster.channel, node)
            if cluster.adapter == "postgres"
            else partial(open_redis_bus, cluster.redis_url, cluster.channel)
        )
        messages = MessageStore(self.database)
        most = settings.messages.recovery_max_messages

        async def fill_gap(stream: str, after_seq: int, limit: int) -> list[tuple[int, object]]:
            return list(await stored_payloads(messages, stream, after_seq, min(limit, most)))

        return ClusterPubSub(
            local, self.presence, cluster, node_name=node, open_bus=open_bus, fill_gap=fill_gap
        )

    def children(self) -> list[ChildSpec]:
        grace = self.settings.supervision.child_shutdown_seconds
        return [
            ChildSpec(
                "store",
                lambda task_status: run_store(self.database, task_status=task_status),
                shutdown_timeout=grace,
            ),
            ChildSpec(
                "writer", self.writer.run, shutdown_timeout=grace, describe=self.writer.describe
            ),
            self.registry.child_spec(),
            ChildSpec("actor-idle", self.system.idle_watch.run, shutdown_timeout=grace),
            ChildSpec(
                "pubsub",
                self.pubsub.run,
                shutdown_timeout=grace,
                describe=self.cluster.describe if self.cluster is not None else None,
            ),
            ChildSpec("presence", self.presence.run, shutdown_timeout=grace),
            self.conversations.child_spec(shutdown_timeout=math.inf),
            ChildSpec("chat", self.chat.run, shutdown_timeout=grace),
            self.sessions.child_spec(shutdown_timeout=math.inf),
            ChildSpec("mailer", self.mailer.run, shutdown_timeout=grace),
        ]

    def build_root(self, extra: Sequence[ChildSpec]) -> Supervisor:
        supervision = self.settings.supervision
        self.root = Supervisor(
            "parley",
            [*self.children(), *extra],
            strategy=Strategy.REST_FOR_ONE,
            max_restarts=supervision.max_restarts,
            window_seconds=supervision.restart_window_seconds,
            backoff_seconds=supervision.restart_backoff_seconds,
        )
        return self.root

    # --- the operator's view ------------------------------------------------------------------

    def actor_count(self) -> int:
        return len(self.system.directory)

    def describe_actors(self) -> list[dict[str, object]]:
        return [stats.as_dict() for stats in self.system.directory.all()]

    def describe_actor(self, actor_id: str) -> dict[str, object] | None:
        ref = self.system.directory.get(actor_id)
        return None if ref is None else ref.describe()

    def describe_tree(self) -> dict[str, object]:
        return self.root.describe() if self.root is not None else {}
