"""What one signed `POST /apps/{app_id}/events` costs the server: the listener's fast path against
Quart (docs/pusher.md "HTTP API", "Performance").

Starts the whole service in this process (embedded PostgreSQL in a temporary directory, or
DATABASE_URL), makes an application straight in the store, then a client in another process
sends one signed trigger (to a channel nobody is subscribed to, so the figure is the HTTP path
and the trigger's rules alone) back to back over one keep-alive connection, `--requests` times
per variant (after 300 to warm up):

* `fast`: as the SDKs send it, answered by the public listener (`api/server/triggers.py`);
* `quart`: the same request with an `Authorization` header, which the fast path leaves to
  Hypercorn and the Quart route (the route ignores the header);
* `asgi`: the same request to a server with `socket.fast_path = false` (plain Hypercorn).

It prints the server's CPU per request (this process's CPU time over the run, the client's being
in its own process) and the wall time per request. A replayed signed request is accepted within
the timestamp window, so one signed request is sent over and over.

    .venv/bin/python bench/pusher_http_cost.py [--requests 3000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from functools import partial
from urllib.parse import urlencode

import orjson
import trio

from parley.config import load_settings, with_jwt_secret
from parley.integrations.applications import new_key, new_secret
from parley.integrations.signing import sign_request
from parley.service import RunningServer, serve
from parley.store.applications import NewApplication


def request_bytes(app_id: int, key: str, secret: str, extra_header: bytes) -> bytes:
    path = f"/apps/{app_id}/events"
    body = orjson.dumps({"name": "bench", "data": '{"n":1}', "channel": "bench"})
    query = urlencode(sign_request(key, secret, "POST", path, (), body, int(time.time())))
    return (
        f"POST {path}?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
        + b"Content-Type: application/json\r\n"
        + extra_header
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


CLIENT_MAIN = r"""
import socket, sys, time
host, port, warm, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
request = open(sys.argv[5], "rb").read()
def connect():
    conn = socket.create_connection((host, port))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn
conn = connect()
reconnects = 0
def one():
    # Hypercorn ends a keep-alive connection after keep_alive_max_requests (1,000): reconnect.
    global conn, reconnects
    conn.sendall(request)
    data = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            assert not data, data[:300]
            conn.close()
            conn, reconnects = connect(), reconnects + 1
            conn.sendall(request)
            continue
        data += chunk
        head, found, body = data.partition(b"\r\n\r\n")
        if not found:
            continue
        assert head.startswith(b"HTTP/1.1 200"), head
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(body) >= length:
            return
for _ in range(warm):
    one()
sys.stdout.write("warm\n"); sys.stdout.flush()
sys.stdin.readline()
started = time.perf_counter()
for _ in range(count):
    one()
sys.stdout.write("%f %d\n" % (time.perf_counter() - started, reconnects)); sys.stdout.flush()
"""


async def measure(
    host: str, port: int, request: bytes, count: int, tmp: str
) -> tuple[float, float]:
    """(server CPU µs per request, wall µs per request) of `count` requests."""
    path = trio.Path(tmp) / f"request-{time.monotonic_ns()}.http"
    await path.write_bytes(request)
    client = await trio.lowlevel.open_process(
        [sys.executable, "-c", CLIENT_MAIN, host, str(port), "300", str(count), str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert client.stdin is not None and client.stdout is not None
    output = b""

    async def line() -> bytes:
        nonlocal output
        while b"\n" not in output:
            chunk = await client.stdout.receive_some()  # type: ignore[union-attr]
            if not chunk:
                raise RuntimeError("the client ended early")
            output += chunk
        first, _, output = output.partition(b"\n")
        return first

    assert await line() == b"warm"
    cpu = time.process_time()
    await client.stdin.send_all(b"go\n")
    wall = float((await line()).split()[0])
    cpu = time.process_time() - cpu
    await client.wait()
    return cpu / count * 1e6, wall / count * 1e6


async def run_server(fast_path: bool, count: int, tmp: str) -> dict[str, tuple[float, float]]:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = with_jwt_secret(
            load_settings(
                overrides={
                    "server": {"data_dir": data_dir, "env": "test", "port": 0, "access_log": False},
                    "socket": {"fast_path": fast_path},
                }
            )
        )
        async with trio.open_nursery() as nursery:
            server: RunningServer = await nursery.start(
                partial(serve, settings, handle_signals=False)
            )
            stores = server.context.stores
            owner = await stores.users.create(
                email="bench@example.com", username="bench", password_hash="x" * 20,
                role="registered", confirmed=True,
            )  # fmt: skip
            organization = await stores.organizations.create("Bench", "bench", owner.id)
            app = await stores.applications.create(
                NewApplication(organization.id, "bench", new_key(), new_secret(), None, True, None)
            )
            host, port = server.base_url.split("://", 1)[1].rsplit(":", 1)
            results = {}
            variants = {"fast": b"", "quart": b"Authorization: Basic eA==\r\n"}
            if not fast_path:
                variants = {"asgi": b""}
            for name, header in variants.items():
                request = request_bytes(app.id, app.app_key, app.app_secret, header)
                results[name] = await measure(host, int(port), request, count, tmp)
            nursery.cancel_scope.cancel()
    return results


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        results = await run_server(True, args.requests, tmp)
        results.update(await run_server(False, args.requests, tmp))
    print(f"POST /apps/{{id}}/events, {args.requests} sequential requests, one keep-alive conn")
    for name, (cpu, wall) in results.items():
        print(f"{name:6s} server CPU {cpu:7.1f} µs/request   wall {wall:7.1f} µs/request")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    trio.run(main, parser.parse_args())
