"""Real Parley nodes for the cluster drills: `python -m parley serve` processes sharing one
database, a TCP proxy to cut a node off its bus, and a client-side presence view."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import trio

from parley.accounts import TokenService
from parley.config import Settings
from parley.store import Database
from parley.store.conversations import ConversationStore
from parley.store.users import UserStore
from tests.conftest import TEST_JWT_SECRET, TEST_OPERATOR_TOKEN, make_settings
from tests.phoenix_client import PhoenixClient
from tests.service.processes import free_port, serve_environment, wait_healthy

NODE_TIMEOUT_SECONDS = 2.0
DEADLINE_SECONDS = 60.0


class Node:
    """One `parley serve` process in a process group of its own, its output in a file."""

    def __init__(self, name: str, directory: Path, environment: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.socket_url = f"ws://127.0.0.1:{self.port}/socket"
        self.log_path = directory / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        env = serve_environment(directory / name, self.port)
        env.update(environment)
        env["PARLEY_CLUSTER_NODE_NAME"] = name
        self.process = subprocess.Popen(
            [sys.executable, "-m", "parley", "serve"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self) -> None:
        wait_healthy(f"{self.url}/health", self.process, log=self.log)

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{self.url}/health", timeout=5).json()
        return body

    def nodes(self) -> dict[str, Any]:
        response = httpx.get(
            f"{self.url}/debug/nodes",
            headers={"Authorization": f"Bearer {TEST_OPERATOR_TOKEN}"},
            timeout=5,
        )
        body: dict[str, Any] = response.json()
        return body

    def signal(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait(timeout=30)
        self._log.close()


def cluster_environment(database_url: str, **cluster: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "PARLEY_ENV": "test",
        "PARLEY_AUTH_JWT_SECRET": TEST_JWT_SECRET,
        "PARLEY_DEBUG_OPERATOR_TOKEN": TEST_OPERATOR_TOKEN,
        "PARLEY_DATABASE_POOL_MIN_SIZE": "1",
        "PARLEY_DATABASE_POOL_MAX_SIZE": "4",
        "PARLEY_CLUSTER_HEARTBEAT_SECONDS": "0.2",
        "PARLEY_CLUSTER_PROBE_TIMEOUT_SECONDS": "2",
        "PARLEY_CLUSTER_NODE_TIMEOUT_SECONDS": str(NODE_TIMEOUT_SECONDS),
        "PARLEY_CLUSTER_GAP_WAIT_MS": "50",
        "PARLEY_CLUSTER_RECONNECT_MAX_SECONDS": "0.5",
    }
    env.update({f"PARLEY_CLUSTER_{key.upper()}": value for key, value in cluster.items()})
    return env


@contextlib.asynccontextmanager
async def running_nodes(
    directory: Path, environments: dict[str, dict[str, str]]
) -> AsyncIterator[list[Node]]:
    """Start a node per entry; once all answer /health, wait until each hears all others."""
    nodes = [Node(name, directory, env) for name, env in environments.items()]
    try:
        for node in nodes:
            await trio.to_thread.run_sync(node.wait_healthy)
        for node in nodes:
            await eventually(
                lambda node=node: (
                    len(node.nodes()["nodes"]) == len(nodes)  # type: ignore[misc]
                    and node.health()["cluster"]["bus"] == "up"
                ),
                f"node {node.name} is up and hears the others",
            )
        yield nodes
    finally:
        with trio.CancelScope(shield=True):
            for node in nodes:
                await trio.to_thread.run_sync(node.stop)


@dataclass
class Member:
    id: uuid.UUID
    token: str

    @property
    def key(self) -> str:
        return str(self.id)


async def make_members(
    tmp_path: Path, database_url: str, count: int
) -> tuple[list[Member], uuid.UUID]:
    """`count` users (made through the store, tokens from the token service) and a group
    conversation of all of them."""
    settings: Settings = make_settings(tmp_path, database_url)
    database = Database(database_url, min_size=1, max_size=2, command_timeout=10)
    await database.connect()
    try:
        users, tokens = UserStore(database), TokenService(settings.auth)
        members = []
        for _ in range(count):
            name = f"node{uuid.uuid4().hex[:10]}"
            user = await users.create(
                email=f"{name}@example.com",
                username=name,
                password_hash="x" * 20,
                role="registered",
                confirmed=True,
            )
            token, _ = tokens.issue_access(user.id, user.role, user.token_version)
            members.append(Member(user.id, token))
        conversation = await ConversationStore(database).create_group(
            members[0].id, "cluster", [m.id for m in members[1:]]
        )
        return members, conversation.id
    finally:
        await database.close()


@dataclass
class PresenceView:
    """What phoenix.js's Presence would hold from one client's presence events on one topic."""

    client: PhoenixClient
    topic: str
    metas: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    async def until(self, condition: Callable[[dict[str, int]], bool]) -> dict[str, int]:
        """Apply presence events until `condition(key -> number of metas)` holds."""
        with trio.fail_after(DEADLINE_SECONDS):
            while not condition(self.counts()):
                message = await self.client.receive(topic=self.topic, timeout=DEADLINE_SECONDS)
                if message.event == "presence_state":
                    self.metas = {
                        key: {meta["phx_ref"]: meta for meta in entry["metas"]}
                        for key, entry in message.payload.items()
                    }
                elif message.event == "presence_diff":
                    for key, entry in message.payload["leaves"].items():
                        for meta in entry["metas"]:
                            self.metas.get(key, {}).pop(meta["phx_ref"], None)
                    for key, entry in message.payload["joins"].items():
                        for meta in entry["metas"]:
                            # By phx_ref, as phoenix.js: a join repeating what presence_state
                            # held changes nothing; two metas of one connection would be two.
                            self.metas.setdefault(key, {})[meta["phx_ref"]] = meta
                    self.metas = {key: held for key, held in self.metas.items() if held}
        return self.counts()

    def counts(self) -> dict[str, int]:
        return {key: len(held) for key, held in self.metas.items()}


Connect = Callable[[], Awaitable[trio.SocketStream]]


class Proxy:
    """A proxy from its own listener to `upstream` that can cut every connection it carries
    and refuse new ones until restored (a node cut off its bus)."""

    def __init__(self, listener: trio.SocketListener, upstream: Connect) -> None:
        self._listener = listener
        self._upstream = upstream
        self._open: set[trio.CancelScope] = set()
        self._cut = False

    async def run(
        self,
        *,
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        await trio.serve_listeners(self._serve, [self._listener], task_status=task_status)

    def cut(self) -> None:
        self._cut = True
        for scope in self._open:
            scope.cancel()

    def restore(self) -> None:
        self._cut = False

    async def _serve(self, downstream: trio.SocketStream) -> None:
        async with downstream:
            if self._cut:
                return
            with trio.CancelScope() as scope:
                self._open.add(scope)
                try:
                    upstream = await self._upstream()
                    async with upstream, trio.open_nursery() as nursery:
                        nursery.start_soon(_pump, downstream, upstream, nursery.cancel_scope)
                        nursery.start_soon(_pump, upstream, downstream, nursery.cancel_scope)
                except OSError:
                    pass
                finally:
                    self._open.discard(scope)


async def _pump(source: trio.SocketStream, sink: trio.SocketStream, done: trio.CancelScope) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        while data := await source.receive_some(65536):
            await sink.send_all(data)
    done.cancel()


async def start_proxy(
    nursery: trio.Nursery, listener: trio.SocketListener, upstream: Connect
) -> Proxy:
    proxy = Proxy(listener, upstream)
    await nursery.start(proxy.run)
    return proxy


async def proxied_database(nursery: trio.Nursery, database_url: str) -> tuple[Proxy, str]:
    """A proxy to the test database and the DSN through it (a Unix socket, as the embedded
    server has no TCP listener; a TCP server's DSN gets a TCP proxy)."""
    parts = urlsplit(database_url)
    query = parse_qs(parts.query)
    if "host" in query and query["host"][0].startswith("/"):
        target = f"{query['host'][0]}/.s.PGSQL.{parts.port or 5432}"
        directory = tempfile.mkdtemp(prefix="pgproxy-")
        sock = trio.socket.socket(trio.socket.AF_UNIX)
        listener = await _bound(sock, f"{directory}/.s.PGSQL.{parts.port or 5432}")
        proxy = await start_proxy(nursery, listener, partial(trio.open_unix_socket, target))
        query["host"] = [directory]
        return proxy, urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    sock = trio.socket.socket()
    listener = await _bound(sock, ("127.0.0.1", 0))
    proxy_port = listener.socket.getsockname()[1]
    proxy = await start_proxy(nursery, listener, partial(trio.open_tcp_stream, host, port))
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = netloc[0] + "@" if len(netloc) == 2 else ""
    return proxy, urlunsplit(parts._replace(netloc=f"{userinfo}127.0.0.1:{proxy_port}"))


async def proxied_tcp(nursery: trio.Nursery, port: int) -> tuple[Proxy, int]:
    sock = trio.socket.socket()
    listener = await _bound(sock, ("127.0.0.1", 0))
    proxy = await start_proxy(nursery, listener, partial(trio.open_tcp_stream, "127.0.0.1", port))
    return proxy, listener.socket.getsockname()[1]


async def _bound(sock: trio.socket.SocketType, address: object) -> trio.SocketListener:
    await sock.bind(address)
    sock.listen()
    return trio.SocketListener(sock)


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Poll a blocking `condition` (HTTP to a node) in a thread until a generous deadline."""
    with trio.move_on_after(DEADLINE_SECONDS):
        while not await trio.to_thread.run_sync(condition):  # noqa: ASYNC110 (another process)
            await trio.sleep(0.05)
        return
    raise AssertionError(f"not within {DEADLINE_SECONDS}s: {what}")
