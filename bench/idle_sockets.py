"""Idle sockets and room fan-out against a real `parley serve` in its own process.

    .venv/bin/python bench/idle_sockets.py idle --connections 2000
    .venv/bin/python bench/idle_sockets.py fanout --rooms 100 --members 10 --messages 20
    .venv/bin/python bench/idle_sockets.py raw --connections 3000              # Pusher and Phoenix
    .venv/bin/python bench/idle_sockets.py raw --connections 2000 --tracemalloc 3  # + allocations

The server runs in a child process (this file with `serve`: embedded PostgreSQL in a fresh
temporary data dir unless DATABASE_URL is set; users and conversations created through the store,
tokens through the token service, so seeding costs no password hashing). The load generator is
this process: trio-websocket V2 clients (tests/phoenix_client.py).

idle: open N sockets (each joins user:{id}), wait, then report the server's RSS growth per
connection (VmRSS from /proc) and its CPU while the sockets sit idle.
raw: the same idle measurement for Pusher sockets (`/app/{key}`, subscribed to one public channel,
as a pusher-js page with one channel is) and Phoenix sockets (joined to user:{id}), one server and
one kind after the other in the same run, from bare non-blocking sockets in this process (a few
hundred bytes each, no task per connection, so the generator never limits the count). With
`--tracemalloc N` the server traces allocations (N frames) and the report adds the top sources of
the memory an idle connection holds (snapshot diff / connections): what to cut next.
fanout: rooms x members, every member joined to its conversation; one sender per room pushes
`new_msg` (awaiting each ack) `messages` times; reports deliveries/s (new_msg frames received by
members, the sender's own copy included) and p50/p99 push-to-receive latency.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))


# -- the server process ----------------------------------------------------------------------


async def _serve(spec_path: Path, users: int, rooms: int, members: int) -> None:
    from parley.config import load_settings, with_jwt_secret
    from parley.integrations.applications import new_key, new_secret
    from parley.service import RunningServer, serve
    from parley.store.applications import NewApplication

    data_dir = spec_path.parent / "data"
    settings = with_jwt_secret(
        load_settings(
            overrides={
                "server": {"port": 0, "data_dir": str(data_dir), "env": "dev"},
                "auth": {"argon2_memory_kib": 1024, "argon2_time_cost": 1},
                "messages": {"group_max_members": 10_000},
            }
        )
    )
    async with trio.open_nursery() as nursery:
        running: RunningServer = await nursery.start(partial(serve, settings, handle_signals=True))
        context = running.context
        seeded: list[dict[str, Any]] = []
        for n in range(users):
            user = await context.stores.users.create(
                email=f"bench{n}@example.com",
                username=f"bench{n}",
                password_hash="x" * 20,
                confirmed=True,
            )
            token, _ = context.tokens.issue_access(user.id, "registered", user.token_version)
            seeded.append({"id": str(user.id), "token": token})
        conversations = []
        for room in range(rooms):
            group = seeded[room * members : (room + 1) * members]
            conversation = await context.stores.conversations.create_group(
                _uuid(group[0]["id"]), f"room {room}", [_uuid(u["id"]) for u in group[1:]]
            )
            conversations.append(str(conversation.id))
        owner = await context.stores.users.create(
            email="pusher-owner@example.com",
            username="pusherowner",
            password_hash="x" * 20,
            confirmed=True,
        )
        organization = await context.stores.organizations.create("Idle", "idle", owner.id)
        app = await context.stores.applications.create(
            NewApplication(
                organization_id=organization.id,
                name="idle",
                app_key=new_key(),
                app_secret=new_secret(),
                webhook_url=None,
                client_events=False,
                max_connections=None,
            )
        )
        host_port = running.base_url.split("://", 1)[1]
        spec = {
            "url": f"ws://{host_port}/socket",
            "http": running.base_url,
            "host_port": host_port,
            "pid": os.getpid(),
            "users": seeded,
            "conversations": conversations,
            "app_key": app.app_key,
        }
        if os.environ.get("IDLE_BENCH_TRACEMALLOC"):
            nursery.start_soon(_snapshots_on_signal, spec_path.parent)
        await trio.Path(spec_path).write_text(json.dumps(spec))
        print("READY", flush=True)


async def _snapshots_on_signal(directory: Path) -> None:
    """On each SIGUSR1: a tracemalloc snapshot to `directory/snapshot-N` (the server's side of
    `raw --tracemalloc`), then `snapshot-N.done`."""
    import gc
    import signal
    import tracemalloc

    with trio.open_signal_receiver(signal.SIGUSR1) as signals:
        n = 0
        async for _ in signals:
            n += 1
            gc.collect()
            path = directory / f"snapshot-{n}"
            tracemalloc.take_snapshot().dump(str(path))
            kinds: dict[str, list[int]] = {}
            for obj in gc.get_objects():
                entry = kinds.setdefault(type(obj).__qualname__, [0, 0])
                entry[0] += 1
                entry[1] += sys.getsizeof(obj)
            path.with_suffix(".types").write_text(json.dumps(kinds))
            path.with_suffix(".done").write_text("")


def _uuid(text: str) -> Any:
    import uuid

    return uuid.UUID(text)


# -- measuring --------------------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(
        self, users: int, rooms: int = 0, members: int = 0, *, trace_frames: int = 0
    ) -> None:
        env = {**os.environ, "PARLEY_LOG_LEVEL": "WARNING"}
        if trace_frames:
            env["PYTHONTRACEMALLOC"] = str(trace_frames)
            env["IDLE_BENCH_TRACEMALLOC"] = "1"
        self.tmp = tempfile.TemporaryDirectory(prefix="parley-idle-")
        self.spec_path = Path(self.tmp.name) / "spec.json"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "serve",
                str(self.spec_path),
                str(users),
                str(rooms),
                str(members),
            ],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip() == b"READY":
                break
        else:
            raise RuntimeError("the server did not start")
        self.spec = json.loads(self.spec_path.read_text())

    def snapshot(self) -> Any:
        """A tracemalloc snapshot of the server now (it must run with `trace_frames`)."""
        import tracemalloc

        self.snapshots = getattr(self, "snapshots", 0) + 1
        path = Path(self.tmp.name) / f"snapshot-{self.snapshots}"
        os.kill(self.proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 120
        while not path.with_suffix(".done").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("no snapshot from the server")
            time.sleep(0.2)
        self.types = json.loads(path.with_suffix(".types").read_text())
        return tracemalloc.Snapshot.load(str(path))

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.tmp.cleanup()


async def idle(args: argparse.Namespace) -> None:
    from tests.phoenix_client import open_phoenix_client

    server = Server(args.connections)
    pid = server.proc.pid
    failures: dict[str, int] = {}
    try:
        await trio.sleep(2)
        before = rss_kb(pid)
        opened = 0
        started = time.monotonic()
        async with AsyncExitStack() as stack:
            for user in server.spec["users"]:
                try:
                    client = await stack.enter_async_context(
                        open_phoenix_client(server.spec["url"], token=user["token"])
                    )
                    reply = await client.join(f"user:{user['id']}")
                    if not reply.ok:
                        raise RuntimeError(str(reply.response))
                    opened += 1
                except Exception as exc:  # counted, reported
                    failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
            ramp = time.monotonic() - started
            await trio.sleep(3)
            after = rss_kb(pid)
            cpu_start, wall_start = cpu_seconds(pid), time.monotonic()
            await trio.sleep(args.hold)
            idle_cpu = (cpu_seconds(pid) - cpu_start) / (time.monotonic() - wall_start)
            print(
                f"idle sockets: {opened}/{args.connections} held (failures {failures or 0}), "
                f"ramp {ramp:.1f} s; server RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB = "
                f"{(after - before) / max(opened, 1):.1f} KiB per connection; idle server CPU "
                f"{idle_cpu * 100:.1f}% over {args.hold:g} s (no heartbeats sent)",
                flush=True,
            )
    finally:
        server.close()


async def fanout(args: argparse.Namespace) -> None:
    from tests.phoenix_client import PhoenixClient, open_phoenix_client

    server = Server(args.rooms * args.members, args.rooms, args.members)
    spec = server.spec
    try:
        async with AsyncExitStack() as stack:
            rooms: list[list[PhoenixClient]] = []
            for room, conversation in enumerate(spec["conversations"]):
                clients = []
                for user in spec["users"][room * args.members : (room + 1) * args.members]:
                    client = await stack.enter_async_context(
                        open_phoenix_client(spec["url"], token=user["token"])
                    )
                    assert (await client.join(f"conversation:{conversation}")).ok
                    clients.append(client)
                rooms.append(clients)
            latencies: list[float] = []
            expected = args.rooms * args.messages * args.members
            received = 0
            done = trio.Event()

            async def member(client: PhoenixClient, topic: str) -> None:
                nonlocal received
                for _ in range(args.messages):
                    message = await client.receive("new_msg", topic, timeout=60)
                    latencies.append(time.time() - float(message.payload["body"]))
                    received += 1
                    if received == expected:
                        done.set()

            async def sender(client: PhoenixClient, topic: str) -> None:
                for _ in range(args.messages):
                    reply = await client.push(
                        topic, "new_msg", {"body": repr(time.time())}, timeout=60
                    )
                    assert reply.ok, reply

            cpu_start = cpu_seconds(server.proc.pid)
            started = time.monotonic()
            async with trio.open_nursery() as nursery:
                for conversation, clients in zip(spec["conversations"], rooms, strict=True):
                    topic = f"conversation:{conversation}"
                    for client in clients:
                        nursery.start_soon(member, client, topic)
                    nursery.start_soon(sender, clients[0], topic)
            elapsed = time.monotonic() - started
            server_cpu = (cpu_seconds(server.proc.pid) - cpu_start) / elapsed
            latencies.sort()
            print(
                f"fan-out {args.rooms} rooms x {args.members} members, {args.messages} messages "
                f"per room: {received} deliveries in {elapsed:.2f} s = "
                f"{received / elapsed:,.0f} deliveries/s; latency p50 "
                f"{statistics.median(latencies) * 1000:.1f} ms, p99 "
                f"{latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms; server CPU "
                f"{server_cpu * 100:.0f}% of a core",
                flush=True,
            )
    finally:
        server.close()


# -- idle sockets from bare sockets (Pusher and Phoenix) --------------------------------------


class RawSocket:
    """One client WebSocket on a plain blocking socket: handshake, masked text frames out, whole
    server frames in. Enough to open a connection, send a frame or two and then sit idle."""

    def __init__(self, host_port: str, target: str) -> None:
        host, port = host_port.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {target} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(head.split(b"\r\n", 1)[0].decode())

    def _read(self) -> None:
        data = self.sock.recv(65_536)
        if not data:
            raise ConnectionError("closed by the server")
        self.buffer += data

    def send(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        length = len(payload)
        header = (
            bytes((0x81, 0x80 | length))
            if length < 126
            else bytes((0x81, 0xFE)) + length.to_bytes(2, "big")
        )
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def receive(self) -> str:
        while True:
            if len(self.buffer) >= 2:
                length, offset = self.buffer[1] & 0x7F, 2
                if length == 126:
                    length, offset = int.from_bytes(self.buffer[2:4], "big"), 4
                elif length == 127:
                    length, offset = int.from_bytes(self.buffer[2:10], "big"), 10
                if len(self.buffer) >= offset + length:
                    opcode = self.buffer[0] & 0x0F
                    data = self.buffer[offset : offset + length]
                    self.buffer = self.buffer[offset + length :]
                    if opcode == 0x8:
                        raise ConnectionError(f"closed: {int.from_bytes(data[:2], 'big')}")
                    return data.decode()
            self._read()

    def close(self) -> None:
        self.sock.close()


def open_raw(kind: str, spec: dict[str, Any], n: int, channels: int = 1) -> RawSocket:
    """Connection `n` of `kind`, past its first exchange (then idle); a Pusher one subscribed
    to `channels` public channels (`idle-{n % 100}`, ...)."""
    if kind == "pusher":
        raw = RawSocket(
            spec["host_port"], f"/app/{spec['app_key']}?protocol=7&client=js&version=8.6.0"
        )
        established = json.loads(raw.receive())
        assert established["event"] == "pusher:connection_established", established
        for c in range(channels):
            channel = f"idle-{(n + c) % 100}"
            raw.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": channel}}))
            succeeded = json.loads(raw.receive())
            assert succeeded["event"] == "pusher_internal:subscription_succeeded", succeeded
        return raw
    user = spec["users"][n]
    raw = RawSocket(spec["host_port"], f"/socket/websocket?vsn=2.0.0&token={user['token']}")
    raw.send(json.dumps(["1", "1", f"user:{user['id']}", "phx_join", {}]))
    reply = json.loads(raw.receive())
    assert reply[3] == "phx_reply" and reply[4]["status"] == "ok", reply
    return raw


def idle_raw(
    kind: str, server: Server, n: int, settle: float, trace: bool, channels: int = 1
) -> dict[str, Any]:
    pid = server.proc.pid
    time.sleep(settle)
    before = server.snapshot() if trace else None
    types_before = dict(server.types) if trace else {}
    rss_before = rss_kb(pid)
    held: list[RawSocket] = []
    started = time.monotonic()
    failures = 0
    for i in range(n):
        try:
            held.append(open_raw(kind, server.spec, i, channels))
        except Exception:
            failures += 1
    ramp = time.monotonic() - started
    time.sleep(settle)
    rss_after = rss_kb(pid)
    after = server.snapshot() if trace else None
    result: dict[str, Any] = {
        "kind": kind,
        "channels": channels if kind == "pusher" else 1,
        "connections": len(held),
        "failures": failures,
        "ramp_s": round(ramp, 1),
        "rss_before_mb": round(rss_before / 1024, 1),
        "rss_after_mb": round(rss_after / 1024, 1),
        "kb_per_conn": round((rss_after - rss_before) / max(len(held), 1), 2),
    }
    if before is not None and after is not None:
        stats = after.compare_to(before, "lineno")
        traced = sum(stat.size_diff for stat in stats)
        result["traced_bytes_per_conn"] = round(traced / max(len(held), 1))
        result["top"] = [
            (str(stat.traceback[0]), round(stat.size_diff / max(len(held), 1)),
             round(stat.count_diff / max(len(held), 1), 2))
            for stat in stats[:25]
        ]  # fmt: skip
        per_type = []
        for name, (count, size) in server.types.items():
            was = types_before.get(name, [0, 0])
            if count - was[0] >= max(len(held) // 2, 1):
                n = max(len(held), 1)
                per_type.append((name, (count - was[0]) / n, (size - was[1]) / n))
        result["objects"] = sorted(per_type, key=lambda t: -t[2])
    for raw in held:
        raw.close()
    return result


def raw_main(args: argparse.Namespace) -> None:
    kinds = args.kind or ["pusher", "phoenix"]
    for kind in kinds:
        users = args.connections if kind == "phoenix" else 0
        server = Server(users, trace_frames=args.tracemalloc)
        try:
            result = idle_raw(
                kind,
                server,
                args.connections,
                args.settle,
                args.tracemalloc > 0,
                args.pusher_channels,
            )
        finally:
            server.close()
        print(
            f"idle {kind:8} ({result['channels']} channel) {result['connections']}/"
            f"{args.connections} (failures "
            f"{result['failures']}), ramp {result['ramp_s']} s: server RSS "
            f"{result['rss_before_mb']} -> {result['rss_after_mb']} MiB = "
            f"{result['kb_per_conn']} KiB per connection"
            + (
                f"; traced {result['traced_bytes_per_conn']} B per connection"
                if "traced_bytes_per_conn" in result
                else ""
            ),
            flush=True,
        )
        for where, size, count in result.get("top", []):
            print(f"    {size:>6} B {count:>6} blocks  {where}", flush=True)
        for name, count, size in result.get("objects", []):
            print(f"    {size:>8.0f} B {count:>6.2f} x  {name} (gc-tracked, getsizeof)", flush=True)
        if args.json:
            with open(args.json, "a") as out:
                out.write(json.dumps(result) + "\n")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        _, _, spec, users, rooms, members = sys.argv
        trio.run(_serve, Path(spec), int(users), int(rooms), int(members))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    idle_parser = sub.add_parser("idle")
    idle_parser.add_argument("--connections", type=int, default=2000)
    idle_parser.add_argument("--hold", type=float, default=10.0)
    fan = sub.add_parser("fanout")
    fan.add_argument("--rooms", type=int, default=100)
    fan.add_argument("--members", type=int, default=10)
    fan.add_argument("--messages", type=int, default=20)
    raw = sub.add_parser("raw")
    raw.add_argument("--connections", type=int, default=3000)
    raw.add_argument("--kind", action="append", choices=["pusher", "phoenix"])
    raw.add_argument("--settle", type=float, default=3.0)
    raw.add_argument("--pusher-channels", type=int, default=1, help="channels per Pusher socket")
    raw.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES")
    raw.add_argument("--json", help="append each result as a JSON line to this file")
    args = parser.parse_args()
    if args.command == "raw":
        raw_main(args)
        return
    trio.run(idle if args.command == "idle" else fanout, args)


if __name__ == "__main__":
    main()
