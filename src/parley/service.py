"""The composition root: settings -> database -> supervision tree -> HTTP server, and back down.

`serve()` is what `parley serve` runs inside `trio.run`. It starts the embedded PostgreSQL when no
`DATABASE_URL` is configured, builds the supervision tree of DESIGN.md §3 (root: rest_for_one), and
on
SIGINT/SIGTERM shuts down in order: the HTTP server stops accepting and drains (bounded), the tree
stops
its children in reverse start order (each bounded), the pool closes, and the embedded server stops.
Signals are received from the start to the very end, so a repeated one (make passes SIGTERM on to
its child, which the process group got already) cannot cut that cleanup short.
"""

from __future__ import annotations

import gc
import logging
import math
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import trio
from quart_trio import QuartTrio

from parley.accounts import AuthThrottle, PasswordHasher, TokenService
from parley.actors.realtime.cluster import ClusterPubSub
from parley.actors.realtime.pubsub import Broadcast
from parley.actors.tree import Runtime
from parley.api.app import create_app
from parley.api.app_sockets import AppSockets
from parley.api.context import AppContext, Stores
from parley.api.operator import OperatorConsole
from parley.api.pusher_http import PusherApi
from parley.api.server.http import HttpServer
from parley.api.socket.channels import ChannelPorts, routes
from parley.api.socket.core.hub import SocketHub
from parley.api.socket.phoenix.connect import PhoenixConnect
from parley.api.socket.pusher.connect import PusherConnect
from parley.api.socket.pusher.routes import pusher_routes
from parley.api.socket.pusher.sockets import NO_HOOKS, PusherHooks, PusherPorts, PusherSockets
from parley.api.socket.transports.fast_path import FastPathSocket
from parley.api.socket.transports.longpoll import LongPollTransport
from parley.api.trigger import Triggers
from parley.config import Settings
from parley.integrations.channel_cache import ChannelCache
from parley.integrations.channel_info import ChannelInfo
from parley.integrations.directory import ApplicationDirectory
from parley.integrations.end_users import EndUsers
from parley.integrations.triggers import TriggerPublisher
from parley.integrations.webhooks.node import Webhooks
from parley.store import Database
from parley.store.applications import ApplicationStore
from parley.store.embedded import EmbeddedStartError, start_embedded, stop_embedded
from parley.store.listings import ListingStore
from parley.store.token_states import token_states
from parley.supervision import ChildSpec, Restart

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunningServer:
    """Handed to `task_status.started` by `serve`: where it listens and what it runs."""

    base_url: str
    """Empty when `serve` runs without its own HTTP server (`parley.asgi`)."""
    context: AppContext
    runtime: Runtime
    app: QuartTrio
    longpoll: LongPollTransport
    console: OperatorConsole


@asynccontextmanager
async def database_url(settings: Settings) -> AsyncIterator[str]:
    """The configured DATABASE_URL, or an embedded PostgreSQL kept for the duration of the block."""
    if settings.database.url is not None:
        yield str(settings.database.url)
        return
    pgdata = settings.data_dir / "pgdata"
    log.info("starting embedded PostgreSQL in %s", pgdata)
    # Not abandoned on cancellation (to_thread's default): the handle is needed to stop it.
    dsn, server = await trio.to_thread.run_sync(
        partial(
            start_embedded,
            pgdata,
            start_timeout=settings.database.embedded_start_seconds,
            stop_timeout=settings.database.embedded_stop_seconds,
        )
    )
    try:
        yield dsn
    finally:
        log.info("stopping embedded PostgreSQL")
        with trio.CancelScope(shield=True):
            stopped = await trio.to_thread.run_sync(stop_embedded, server)
        if stopped:
            log.info("embedded PostgreSQL stopped")
        else:
            log.info("embedded PostgreSQL left running: another process still uses it")


def socket_hub(settings: Settings, runtime: Runtime, end_users: EndUsers) -> SocketHub:
    """The socket layer of this node over `runtime`, with Parley's channels routed."""
    ports = ChannelPorts(
        chat=runtime.chat,
        listings=ListingStore(runtime.database),
        pubsub=runtime.pubsub,
        messages=settings.messages,
        debug=settings.server.env != "prod",
        apps=end_users,
    )
    return SocketHub(
        settings,
        pubsub=runtime.pubsub,
        presence=runtime.presence,
        router=routes(ports),
        system=runtime.system,
        sessions=runtime.sessions,
    )


def pusher_connect(
    settings: Settings,
    runtime: Runtime,
    hub: SocketHub,
    directory: ApplicationDirectory,
    hooks: PusherHooks = NO_HOOKS,
) -> tuple[PusherConnect, TriggerPublisher]:
    """The Pusher protocol's socket over the one channel core (docs/pusher.md), and the one path
    of every trigger, which fills its cache channels and honours its `socket_id` exclusion."""
    cache = ChannelCache(
        ttl_seconds=settings.pusher.cache_seconds, max_channels=settings.pusher.cache_max_channels
    )
    sockets = PusherSockets()
    ports = PusherPorts(
        directory=directory,
        pubsub=runtime.pubsub,
        presence=runtime.presence,
        cache=cache,
        sockets=sockets,
        settings=settings.pusher,
        limits=settings.integrations,
        hooks=hooks,
    )
    connect = PusherConnect(directory, settings.pusher, pusher_routes(ports), hub.namespace_count)
    return connect, TriggerPublisher(runtime.pubsub, cache, sockets.subscriber)


THROTTLE_TOPIC = "parley:throttle"
"""Where nodes tell each other what their auth throttles counted (no channel routes it)."""


@dataclass(frozen=True, eq=False)
class _CountedElsewhere:
    throttle: AuthThrottle

    def deliver(self, broadcast: Broadcast) -> None:
        match broadcast.payload:
            case [str(limiter), str(key)]:
                self.throttle.count_from_elsewhere(limiter, key)


def share_throttle(cluster: ClusterPubSub, throttle: AuthThrottle) -> None:
    """Make the login and registration limits hold across the cluster's nodes (DESIGN §8)."""
    throttle.on_counted = lambda limiter, key: cluster.publish_elsewhere(
        THROTTLE_TOPIC, "counted", [limiter, key]
    )
    cluster.subscribe(THROTTLE_TOPIC, _CountedElsewhere(throttle))


def open_database(settings: Settings, dsn: str) -> Database:
    return Database(
        dsn,
        min_size=settings.database.pool_min_size,
        max_size=settings.database.pool_max_size,
        command_timeout=settings.database.command_timeout_seconds,
        connect_timeout=settings.database.connect_timeout_seconds,
        acquire_timeout=settings.database.pool_acquire_timeout_seconds,
    )


async def serve(
    settings: Settings,
    *,
    handle_signals: bool = True,
    http_server: bool = True,
    stop: trio.Event | None = None,
    task_status: trio.TaskStatus[RunningServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run Parley until SIGINT/SIGTERM (or until cancelled, as tests do).

    The process's garbage-collector thresholds come from `server.gc_thresholds` (see there why).

    `http_server=False` runs everything but the HTTP server (the app is in `RunningServer.app`
    for an ASGI server to serve, `parley.asgi`); `stop`, when given, replaces the signals:
    setting it shuts down in order as a signal would.
    """
    if settings.server.gc_thresholds:
        gc.set_threshold(*settings.server.gc_thresholds)
    if stop is not None or not handle_signals:
        await _serve(settings, http_server, stop, task_status)
        log.info("Parley stopped")
        return
    stop = trio.Event()
    # Open before the embedded PostgreSQL starts and closed after it stopped: a signal in between
    # must never get the default action, which would end the process mid-cleanup.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signals, signals, stop)
            try:
                await _serve(settings, http_server, stop, task_status)
            except EmbeddedStartError as exc:
                if not stop.is_set():
                    raise
                # Asked to stop anyway; the failed start left nothing running (start_embedded).
                log.warning("embedded PostgreSQL did not start, and a stop was asked for: %s", exc)
            nursery.cancel_scope.cancel()
        log.info("Parley stopped")


async def _stop_on_signals(signals: AsyncIterator[int], stop: trio.Event) -> None:
    """Set `stop` at the first signal; later ones are only logged (shutdown is under way)."""
    async for signum in signals:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.info("received %s again: already shutting down", name)
        else:
            log.info("received %s: shutting down", name)
            stop.set()


async def _serve(
    settings: Settings,
    http_server: bool,
    stop: trio.Event | None,
    task_status: trio.TaskStatus[RunningServer],
) -> None:
    """`serve` after its signal handling: runs until `stop` is set (or forever when None)."""
    async with database_url(settings) as dsn:
        database = open_database(settings, dsn)
        runtime = Runtime(settings, database)
        directory = ApplicationDirectory(ApplicationStore(database), settings.integrations)
        end_users = EndUsers(directory, settings.integrations)
        hub = socket_hub(settings, runtime, end_users)
        app_sockets = AppSockets(hub, directory)
        webhooks = Webhooks.on(
            database, settings.webhooks, directory, runtime.local_pubsub, runtime.presence
        )
        pusher, publisher = pusher_connect(settings, runtime, hub, directory, webhooks.hooks)
        throttle = AuthThrottle(settings.auth, settings.server)
        if runtime.cluster is not None:
            share_throttle(runtime.cluster, throttle)
        context = AppContext(
            settings=settings,
            database=database,
            stores=Stores.on(database),
            tokens=TokenService(settings.auth),
            passwords=PasswordHasher(settings.auth),
            throttle=throttle,
            runtime=runtime,
            sockets=hub,
            applications=directory,
            app_sockets=app_sockets,
            triggers=Triggers(directory, publisher, settings.integrations),
            pusher_api=PusherApi(
                directory,
                publisher,
                ChannelInfo(runtime.pubsub, runtime.presence),
                app_sockets,
                settings.integrations,
            ),
            webhooks=webhooks,
        )
        # Every transport asks the hub's gate first: a draining node refuses new sockets.
        connect = hub.gate(
            PhoenixConnect(
                settings,
                context.tokens,
                context.stores.users,
                context.stores.tokens,
                end_users,
                hub.namespace_count,
            )
        )
        if runtime.cluster is not None:
            runtime.cluster.on_resync(partial(hub.recheck_users, partial(token_states, database)))
        longpoll = LongPollTransport(hub, connect)
        console = OperatorConsole(context)
        runtime.writer.observer = console.metrics.writer_observer()
        pusher_socket = hub.gate(pusher)
        app = create_app(context, connect, longpoll, console, pusher_socket)
        grace = settings.supervision.child_shutdown_seconds
        children = [
            ChildSpec("socket-liveness", hub.watch_liveness, shutdown_timeout=grace),
            ChildSpec("socket-writes", hub.flush_writes, shutdown_timeout=grace),
            ChildSpec("app-sockets", app_sockets.run, shutdown_timeout=grace),
            webhooks.child_spec(settings.supervision),
            *console.children(),
        ]
        http = None
        if http_server:
            http = HttpServer(
                app,
                settings,
                FastPathSocket(hub, connect),
                context.triggers,
                FastPathSocket(hub, pusher_socket),
                context.pusher_api,
            )
            children.append(
                ChildSpec(
                    "http",
                    http.run,
                    restart=Restart.PERMANENT,
                    shutdown_timeout=settings.server.shutdown_grace_seconds,
                )
            )
        root = runtime.build_root(children)
        await context.passwords.warm_up()
        async with trio.open_nursery() as nursery:
            await nursery.start(root.run)
            base_url = http.binds[0] if http is not None else ""
            if http is not None:
                log.info("Parley is serving on %s", base_url)
            # Everything built so far (modules, the app, the tree) lives as long as the process:
            # frozen, the garbage collector never scans it again (docs/settings.md, gc_freeze).
            if settings.server.gc_freeze:
                gc.freeze()
            task_status.started(RunningServer(base_url, context, runtime, app, longpoll, console))
            if stop is None:
                await trio.sleep_forever()
            else:
                await stop.wait()
            # Sockets first: open ones would otherwise hold the HTTP drain for its whole grace.
            closed = hub.close_all()
            log.info("closed %d socket(s) with 1012", closed)
            if http is not None:
                await http.drain(settings.server.shutdown_grace_seconds)
            with trio.move_on_after(_tree_shutdown_bound(settings)):
                await root.shutdown()
            nursery.cancel_scope.cancel()


def _tree_shutdown_bound(settings: Settings) -> float:
    # Every child has its own bounded grace; this outer bound only guards against a bug there.
    bound = (
        settings.supervision.child_shutdown_seconds * 20 + settings.server.shutdown_grace_seconds
    )
    return bound if bound > 0 else math.inf


async def migrate_only(settings: Settings) -> list[str]:
    async with database_url(settings) as dsn:
        database = open_database(settings, dsn)
        await database.connect()
        try:
            return await database.migrate()
        finally:
            await database.close()


async def create_user(
    settings: Settings, email: str, username: str, password: str, role: str
) -> str:
    """`parley users create`: validated like registration, confirmed at once (an operator made
    it)."""
    from parley.accounts.validation import check_email, check_password, check_username
    from parley.store.user_records import DuplicateUser
    from parley.store.users import UserStore

    problems = (
        check_email(email) + check_username(username) + check_password(password, settings.auth)
    )
    if problems:
        raise ValueError("; ".join(problems))
    async with database_url(settings) as dsn:
        database = open_database(settings, dsn)
        await database.connect()
        try:
            await database.migrate()
            password_hash = await PasswordHasher(settings.auth).hash(password)
            users = UserStore(database)
            try:
                user = await users.create(
                    email=email, username=username, password_hash=password_hash, role=role
                )
            except DuplicateUser as exc:
                raise ValueError(f"{exc.field} already taken") from None
            await users.confirm(user.id)
            return str(user.id)
        finally:
            await database.close()
