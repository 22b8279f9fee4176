"""Room fan-out through each socket transport, with no database on the message path.

    .venv/bin/python bench/fanout_transports.py                  # both transports, 100 x 10
    .venv/bin/python bench/fanout_transports.py --transport wsproto --rooms 100 --members 10

For each transport (`PARLEY_SOCKET_FAST_PATH=true`: the wsproto transport on parley serve's own
listener; `false`: Hypercorn + ASGI) a fresh `parley serve` is started (embedded PostgreSQL in a
temporary data dir, `PARLEY_ENV=dev`); one user is registered and `rooms x members` sockets
(V2, all with that user's token) join `debug:bench<room>`. Every message is the debug channel's
`broadcast` event, so each one is fanned out by pubsub to the room's members with no commit:
what is measured is the socket layer (inbound parse, session, fastlane encode, outbound
framing and writes), not the writer.

The load generator is this process: plain non-blocking sockets on one `selectors` loop (no
wsproto; client frames masked with the all-zero key, which RFC 6455 allows), counting
deliveries by the event name in the bytes received. Steps of increasing target deliveries/s
(messages/s x members), each `--step-s` long, sent round-robin over every member of every room;
a step's figure is deliveries received within the step plus `--grace-s`, per second of step.
The ramp stops after the first step delivering less than 90 % of its target. The server's, the
generator's and everything else's CPU (from /proc, in cores) are printed beside each step: a
generator near 1.0 core means the figure is bounded by the generator, and other load above
0.25 core (another benchmark, a test run) makes the step not comparable.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
MARKER = b'"bench_evt"'
STEPS = [2_000, 5_000, 10_000, 15_000, 20_000, 30_000, 40_000, 50_000, 60_000, 80_000, 100_000]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds spent by every process on the machine (non-idle time in /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU of `pid` only (PostgreSQL is idle on this path)."""
    try:
        return cpu_seconds(pid)
    except OSError:
        return 0.0


@contextlib.contextmanager
def parley(fast_path: bool, log_dir: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="parley-fanout-", dir=log_dir))
    env = {
        **os.environ,
        "PORT": str(port),
        "PARLEY_DATA_DIR": str(data_dir),
        "PARLEY_ENV": "dev",
        "PARLEY_SOCKET_FAST_PATH": "true" if fast_path else "false",
        "PARLEY_SOCKET_PUSHES_PER_SECOND": "1000000",
        "PARLEY_SOCKET_PUSH_BURST": "1000000",
        "PARLEY_AUTH_ARGON2_MEMORY_KIB": "1024",
        "PARLEY_AUTH_ARGON2_TIME_COST": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DATABASE_URL", None)
    log = (log_dir / f"parley-{'wsproto' if fast_path else 'asgi'}.log").open("wb")
    proc = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "parley"), "serve"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"parley serve exited; see {log.name}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("parley serve did not become ready")
            time.sleep(0.3)
        yield port, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def register(port: int) -> str:
    name = f"bench{int(time.time() * 1000) % 10**9}"
    body = {"email": f"{name}@example.com", "password": f"correct horse {name}", "username": name}
    response = httpx.post(f"http://127.0.0.1:{port}/api/auth/register", json=body, timeout=30)
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def client_frame(payload: bytes) -> bytes:
    """A masked text frame with the all-zero key: the payload goes out as it is."""
    length = len(payload)
    if length < 126:
        header = bytes((0x81, 0x80 | length))
    else:
        header = bytes((0x81, 0x80 | 126)) + length.to_bytes(2, "big")
    return header + b"\x00\x00\x00\x00" + payload


@dataclass
class Conn:
    sock: socket.socket
    room: int
    tail: bytes = b""
    count: int = 0
    out: bytearray = field(default_factory=bytearray)


def open_conn(port: int, token: str, room: int) -> Conn:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    request = (
        f"GET /socket/websocket?vsn=2.0.0&token={token} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        data += chunk
    if not data.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(data.split(b"\r\n", 1)[0].decode())
    join = orjson.dumps(["1", "1", f"debug:bench{room}", "phx_join", {}])
    sock.sendall(client_frame(join))
    rest = data.split(b"\r\n\r\n", 1)[1]
    while b'"phx_reply"' not in rest:
        rest += sock.recv(65536)
    sock.setblocking(False)
    return Conn(sock, room)


def drain(conns: dict[int, Conn], selector: selectors.BaseSelector, timeout: float) -> None:
    for key, _ in selector.select(timeout):
        conn = conns[key.fd]
        try:
            while True:
                data = conn.sock.recv(262_144)
                if not data:
                    raise ConnectionError(f"server closed a socket of room {conn.room}")
                chunk = conn.tail + data
                conn.count += chunk.count(MARKER)
                conn.tail = chunk[-(len(MARKER) - 1) :]
                if len(data) < 262_144:
                    break
        except BlockingIOError:
            pass


def run_transport(
    fast_path: bool, args: argparse.Namespace, log_dir: Path
) -> list[dict[str, float]]:
    name = "wsproto (fast path)" if fast_path else "ASGI (Hypercorn)"
    results: list[dict[str, float]] = []
    with parley(fast_path, log_dir) as (port, proc):
        token = register(port)
        conns: dict[int, Conn] = {}
        started = time.monotonic()
        for room in range(args.rooms):
            for _ in range(args.members):
                conn = open_conn(port, token, room)
                conns[conn.sock.fileno()] = conn
        print(
            f"{name}: {len(conns)} sockets joined in {time.monotonic() - started:.1f} s",
            flush=True,
        )
        selector = selectors.DefaultSelector()
        for fd in conns:
            selector.register(fd, selectors.EVENT_READ)
        drain(conns, selector, 0.5)  # presence traffic of the joins
        senders = list(conns.values())
        frames = {
            room: client_frame(
                orjson.dumps(
                    [
                        "1",
                        "2",
                        f"debug:bench{room}",
                        "broadcast",
                        {"event": "bench_evt", "payload": {"body": "x" * 60, "n": 1}},
                    ]
                )
            )
            for room in range(args.rooms)
        }
        steps = [s for s in STEPS if s <= args.max_rate] if args.steps is None else args.steps
        sender = 0
        for target in steps:
            rate = target / args.members  # messages per second
            for conn in senders:
                conn.count = 0
            cpu0, gen0, t0 = tree_cpu(proc.pid), time.process_time(), time.monotonic()
            busy0 = machine_busy_seconds()
            sent = 0
            end = t0 + args.step_s
            while True:
                now = time.monotonic()
                if now >= end:
                    break
                due = int((now - t0) * rate) - sent
                for _ in range(max(0, due)):
                    conn = senders[sender % len(senders)]
                    sender += 1
                    with contextlib.suppress(BlockingIOError):
                        conn.sock.send(frames[conn.room])
                    sent += 1
                drain(conns, selector, 0.002)
            grace_end = time.monotonic() + args.grace_s
            expected = sent * args.members
            while time.monotonic() < grace_end:
                drain(conns, selector, 0.01)
                if sum(c.count for c in senders) >= expected:
                    break
            elapsed = time.monotonic() - t0
            cpu = (tree_cpu(proc.pid) - cpu0) / elapsed
            gen = (time.process_time() - gen0) / elapsed
            other = max(0.0, (machine_busy_seconds() - busy0) / elapsed - cpu - gen)
            delivered = sum(c.count for c in senders)
            per_s = delivered / args.step_s
            results.append(
                {
                    "target": target,
                    "sent_msgs": sent,
                    "delivered": delivered,
                    "expected": expected,
                    "deliveries_per_s": per_s,
                    "server_cpu": cpu,
                    "generator_cpu": gen,
                    "other_cpu": other,
                }
            )
            print(
                f"{name:22} target {target:>7,}/s -> {per_s:>9,.0f} deliveries/s "
                f"({delivered / max(expected, 1):6.1%} of sent x members)  "
                f"server CPU {cpu:.2f}  generator CPU {gen:.2f}  other load {other:.2f}"
                f"{'  (NOT COMPARABLE)' if other > 0.25 else ''}",
                flush=True,
            )
            if delivered < 0.9 * target * args.step_s:
                break
            # let the server's queues empty before the next step
            settle = time.monotonic() + 1.0
            while time.monotonic() < settle:
                drain(conns, selector, 0.05)
        for conn in senders:
            conn.sock.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transport", choices=["wsproto", "asgi", "both"], default="both")
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--step-s", type=float, default=5.0)
    parser.add_argument("--grace-s", type=float, default=1.0)
    parser.add_argument("--max-rate", type=int, default=100_000)
    parser.add_argument("--steps", type=int, nargs="*", default=None)
    args = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="parley-fanout-"))
    print(f"logs in {log_dir}; {os.cpu_count()} cores", flush=True)
    summary: list[str] = []
    for fast_path in {"wsproto": [True], "asgi": [False], "both": [False, True]}[args.transport]:
        results = run_transport(fast_path, args, log_dir)
        passed = [r["target"] for r in results if r["delivered"] >= 0.9 * r["target"] * args.step_s]
        peak = max(r["deliveries_per_s"] for r in results)
        summary.append(
            f"{'wsproto' if fast_path else 'asgi':8} {args.rooms} rooms x {args.members}: "
            f"highest step held {max(passed, default=0):,}/s, peak {peak:,.0f} deliveries/s"
        )
    print("\n".join(summary))
    shutil.rmtree(log_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
