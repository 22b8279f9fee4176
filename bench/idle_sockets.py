"""Idle sockets and room fan-out against a real `parley serve` in its own process.

    .venv/bin/python bench/idle_sockets.py idle --connections 2000
    .venv/bin/python bench/idle_sockets.py fanout --rooms 100 --members 10 --messages 20

The server runs in a child process (this file with `serve`: embedded PostgreSQL in a fresh
temporary data dir unless DATABASE_URL is set; users and conversations created through the store,
tokens through the token service, so seeding costs no password hashing). The load generator is
this process: trio-websocket V2 clients (tests/phoenix_client.py).

idle: open N sockets (each joins user:{id}), wait, then report the server's RSS growth per
connection (VmRSS from /proc) and its CPU while the sockets sit idle.
fanout: rooms x members, every member joined to its conversation; one sender per room pushes
`new_msg` (awaiting each ack) `messages` times; reports deliveries/s (new_msg frames received by
members, the sender's own copy included) and p50/p99 push-to-receive latency.
"""

from __future__ import annotations

import argparse
import json
import os
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
    from parley.service import RunningServer, serve

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
        host_port = running.base_url.split("://", 1)[1]
        spec = {
            "url": f"ws://{host_port}/socket",
            "http": running.base_url,
            "pid": os.getpid(),
            "users": seeded,
            "conversations": conversations,
        }
        await trio.Path(spec_path).write_text(json.dumps(spec))
        print("READY", flush=True)


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
    def __init__(self, users: int, rooms: int = 0, members: int = 0) -> None:
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
            env={**os.environ, "PARLEY_LOG_LEVEL": "WARNING"},
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip() == b"READY":
                break
        else:
            raise RuntimeError("the server did not start")
        self.spec = json.loads(self.spec_path.read_text())

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
    args = parser.parse_args()
    trio.run(idle if args.command == "idle" else fanout, args)


if __name__ == "__main__":
    main()
