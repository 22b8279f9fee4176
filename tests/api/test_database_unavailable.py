"""While the database cannot answer, every REST request gets 503 with Retry-After in the error
shape, never a 500 (drill D2 measures it through real outages; this is the rule)."""

from __future__ import annotations

import contextlib
from functools import partial
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import trio

from parley.service import RunningServer, serve
from parley.store import pg
from tests.api.conftest import register
from tests.conftest import make_settings


async def test_requests_get_503_with_retry_after_while_the_database_is_gone(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    alice = await register(client)
    await server.context.database.close()
    for method, path, body in (
        ("GET", "/api/me", None),
        ("GET", "/api/conversations", None),
        ("GET", "/api/users", None),
        ("POST", "/api/auth/login", {"email": alice.email, "password": alice.password}),
        ("POST", "/api/conversations", {"member_ids": [alice.id]}),
    ):
        response = await client.request(method, path, json=body, headers=alice.headers)
        assert response.status_code == 503, (path, response.text)
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"]["code"] == "unavailable"


async def test_they_succeed_again_once_the_database_is_back(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    alice = await register(client)
    database = server.context.database
    await database.close()
    assert (await client.get("/api/me", headers=alice.headers)).status_code == 503
    await database.connect()
    assert (await client.get("/api/me", headers=alice.headers)).status_code == 200


class CloseHoldingProxy:
    """A TCP proxy to the test's PostgreSQL that passes every byte on but, once `arm`ed, holds
    back the server's close of a connection: what the client sees between the FATAL error of a
    server that ends a session and the close after it, held open as long as the test needs."""

    def __init__(self, database_url: str) -> None:
        parts = urlsplit(database_url)
        query = parse_qs(parts.query)
        self._host = query.get("host", [parts.hostname or "localhost"])[0]
        self._port = int(query.get("port", [parts.port or 5432])[0])
        self._url = parts
        self.server_closed = trio.Event()
        self._armed = False

    def url(self, port: int) -> str:
        """`database_url` through the proxy listening on `port`."""
        query = [(k, v) for k, v in parse_qsl(self._url.query) if k not in ("host", "port")]
        credentials = self._url.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
        return urlunsplit(self._url._replace(netloc=netloc, query=urlencode(query)))

    def arm(self) -> None:
        self._armed = True

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(self._handle, listeners)

    async def _upstream(self) -> trio.abc.Stream:
        if self._host.startswith("/"):
            return await trio.open_unix_socket(f"{self._host}/.s.PGSQL.{self._port}")
        return await trio.open_tcp_stream(self._host, self._port)

    async def _handle(self, client: trio.SocketStream) -> None:
        async with client, await self._upstream() as server, trio.open_nursery() as pipes:
            pipes.start_soon(self._pipe, client, server, False, pipes.cancel_scope)
            pipes.start_soon(self._pipe, server, client, True, pipes.cancel_scope)

    async def _pipe(
        self,
        source: trio.abc.Stream,
        sink: trio.abc.Stream,
        from_server: bool,
        both: trio.CancelScope,
    ) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            async for chunk in source:
                await sink.send_all(chunk)
        if from_server and self._armed:
            self.server_closed.set()
            await trio.sleep_forever()  # until the client closes its side
        both.cancel()


async def _nothing(pool: object) -> None:
    return None


async def test_a_connection_the_server_ended_answers_503_and_the_next_request_gets_a_new_one(
    tmp_path: Path, database_url: str, nursery: trio.Nursery
) -> None:
    # The race drill D2 met during a shutdown: the server sends an idle pooled connection a
    # FATAL error, and a request takes the connection before the close arrives. The proxy holds
    # the close back, so the request surely comes in between.
    proxy = CloseHoldingProxy(database_url)
    port = await nursery.start(proxy.serve)
    settings = make_settings(
        tmp_path,
        proxy.url(port),
        # One pooled connection, the one ended; waits long enough that only its end answers 503.
        database={"pool_min_size": 1, "pool_max_size": 1, "pool_acquire_timeout_seconds": 60},
    )
    server: RunningServer = await nursery.start(partial(serve, settings, handle_signals=False))
    database = server.context.database
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        alice = await register(client)
        pooled = await database.fetchval("SELECT pg_backend_pid()")  # the pool's one connection
        proxy.arm()
        terminator = await pg.connect(database_url, connect_timeout=10)
        try:
            await terminator.execute(f"SELECT pg_terminate_backend({int(pooled)})")
        finally:
            terminator.close()
        with trio.fail_after(30):
            await proxy.server_closed.wait()
        # The FATAL error was passed on before the close; the pool's loop thread reads a socket
        # in the loop iteration that finds it readable, so two round trips there have read it.
        for _ in range(2):
            await database.run(_nothing)
        refused = await client.get("/api/me", headers=alice.headers)
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "unavailable"
        again = await client.get("/api/me", headers=alice.headers)
        assert again.status_code == 200, again.text
