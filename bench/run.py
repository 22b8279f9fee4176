"""`make bench`: Parley's benchmark suite (DESIGN.md §7), with the same workloads against two peers.

Starts each server under test as its own process (Parley with an embedded PostgreSQL in a fresh
temporary data directory; the bare trio hub and the python-socketio peer from bench/peers/), seeds
users and conversations through Parley's REST API, drives the load from separate Node processes
(bench/node/worker.mjs: the official phoenix 1.8.16 client over `ws`, socket.io-client for the
python-socketio peer), prints one figure line per workload with the generator's own CPU beside it,
writes bench/results/<date>-<git short commit>.json and prints a table with the goals.

    .venv/bin/python bench/run.py                 # W1 (5k) W2 W3 W4 W5, peers for W1 and W2
    .venv/bin/python bench/run.py --large         # W1 at 19k connections
    .venv/bin/python bench/run.py --only W2       # one workload (repeatable: --only W1 --only W3)
    .venv/bin/python bench/run.py --only P        # the Pusher workloads P1-P4 (or --only P2 ...)
    .venv/bin/python bench/run.py --quick         # smoke version of everything, about a minute

Workloads
  W1 idle: connections ramped at 500/s, each joined to user:{id} and one conversation, heartbeating
     every 30 s; server RSS delta per connection (/proc), idle CPU, heartbeat p99, drops.
  W2 fan-out: 100 conversations x 10 members, `new_msg` stepped up until p99 > 200 ms or loss >
     0.1 %; then 1 conversation x 2,000 members at 5 msg/s: first-to-last spread.
  W3 1:1: 500 pairs in their direct conversations, 250 -> 3,000 msg/s; ack p99, delivery p99, rows
     stored = acks.
  W4 storms: 1,000 bystanders; 20 logins/s, a burst of 200 logins, 5,000 token reconnects + joins;
     before them, failed logins: wrong password vs unknown e-mail (the same cost, p50 ratio).
  W5 writer: bench/writer.py (messages persisted/s through the conversation-actor path).
  W6 search: 100,000 listings seeded by `parley demo`; GET /api/listings with mixed filters, q and
     sorts from 3 Node processes at fixed rates (open loop), 100 -> 2,000/s; p99 per rate, the
     highest rate with p99 < 50 ms, server and database CPU, and EXPLAIN ANALYZE of the slowest
     query shape.
  W7 triggers: an application's 100 channels x 10 end-user subscribers (phoenix.js, app-signed
     tokens); Pusher-signed POSTs to the trigger API over keep-alive HTTP from 3 Node processes,
     500 -> 4,000 triggers/s; the highest rate with delivery p99 < 50 ms and no loss, and the
     server's CPU per trigger.
  P1-P4 (bench/pusher_bench.py; `--only P` for all four): the Pusher protocol, Parley beside
     soketi 1.6.1, pusher-js load: P1 fan-out by signed HTTP triggers, P2 by client events, P3
     5,000 idle connections, P4 presence churn with 1,000 users.

Latency = receive time - send time, both read from the same clock (the send time is in the body).
A delivery is one `new_msg` frame received by one member connection; all three servers also echo a
message to its sender, which counts as a delivery but not in the latency figures (those are the
other members'). Loss = 1 - deliveries received / (messages sent x members), within the step and
its drain time; a late delivery counts as lost.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import trio

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
NODE_DIR = BENCH / "node"
RESULTS = BENCH / "results"
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
PASSWORD = "bench password 1234"

# Seeding only: registering thousands of users at the default argon2id cost (19 MiB, t=2) takes
# minutes on two cores, so W1-W3 run Parley with a cheap hash. W4 (logins) uses the defaults.
CHEAP_ARGON2 = {
    "PARLEY_AUTH_ARGON2_MEMORY_KIB": "1024",
    "PARLEY_AUTH_ARGON2_TIME_COST": "1",
}
# Not performance settings: tokens outlive a long run; the 2,000-member room needs the bound raised.
COMMON_ENV = {"PARLEY_AUTH_ACCESS_TTL_SECONDS": "7200"}

# Another process, or the hypervisor (steal time), taking this much CPU (% of one core) during a
# measurement spoils the figure.
OTHER_LOAD_PCT = 10.0

GOALS: dict[str, tuple[str, Callable[[float], bool]]] = {
    "W1.kb_per_conn": ("<= 25 KB/conn at 19k", lambda v: v <= 25),
    "W1.hb_p99": ("< 50 ms", lambda v: v < 50),
    "W2.within_goal": (">= 30,000/s", lambda v: v >= 30_000),
    "W2.p99_10k": ("< 100 ms", lambda v: v < 100),
    "W2.loss_10k": ("0 %", lambda v: v == 0),
    "W3.ack_p99_3000": ("< 50 ms at 3,000/s", lambda v: v < 50),
    "W4.bystander_p99": ("< 100 ms", lambda v: v < 100),
    "W4.unknown_vs_wrong": ("0.6 to 1.6", lambda v: 0.6 < v < 1.6),
    "W4.reconnect_s": ("5,000 in <= 15 s", lambda v: v <= 15),
    "W4.reconnect_joined": ("all", lambda v: v == 0),
    "W6.p99_500": ("< 50 ms at 500/s", lambda v: v < 50),
    "W6.sustained": (">= 500/s", lambda v: v >= 500),
    "W7.sustained": (">= 2,000 triggers/s", lambda v: v >= 2_000),
}


# --------------------------------------------------------------------------------------------
# Histograms (merged from the workers' log buckets: 1 % resolution)


@dataclass
class Hist:
    buckets: dict[int, int] = field(default_factory=dict)
    n: int = 0
    max: float = 0.0
    sum: float = 0.0

    def merge(self, data: dict[str, Any]) -> Hist:
        for key, count in data["b"].items():
            self.buckets[int(key)] = self.buckets.get(int(key), 0) + count
        self.n += data["n"]
        self.sum += data["sum"]
        self.max = max(self.max, data["max"])
        return self

    def pct(self, p: float) -> float:
        if self.n == 0:
            return math.nan
        rank = math.ceil(self.n * p / 100)
        seen = 0
        for key in sorted(self.buckets):
            seen += self.buckets[key]
            if seen >= rank:
                return min(0.01 * 1.01**key, self.max)
        return self.max

    def summary(self) -> dict[str, float]:
        return {
            "n": self.n,
            "p50_ms": rnd(self.pct(50)),
            "p99_ms": rnd(self.pct(99)),
            "max_ms": rnd(self.max),
        }


def merged(parts: list[dict[str, Any]]) -> Hist:
    hist = Hist()
    for part in parts:
        hist.merge(part)
    return hist


def rnd(value: float, digits: int = 2) -> float:
    return value if math.isnan(value) else round(value, digits)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(len(ordered) * p / 100) - 1)]


# --------------------------------------------------------------------------------------------
# /proc: CPU and memory of the server, its database and the load generators


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return found


def machine_cpu_seconds() -> tuple[float, float]:
    """CPU seconds the whole machine spent (all cores, every process), and CPU seconds the
    hypervisor took from this virtual machine (steal), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    steal = fields[7]
    return (sum(fields[:7]) - idle) / CLK_TCK, steal / CLK_TCK


class CpuWindow:
    """CPU used by groups of processes between start() and stop(), in % of one core.

    `other_cpu_pct` is what the rest of the machine used meanwhile (other users' processes, the
    runner itself excluded), and `stolen_cpu_pct` what the hypervisor gave to other machines while
    ours wanted it (steal time): a figure measured while either is high is not comparable.
    """

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = {**groups, "runner": lambda: [os.getpid()]}
        self.started = 0.0
        self.machine = (0.0, 0.0)
        self.before: dict[str, dict[int, float]] = {}

    def start(self) -> CpuWindow:
        self.started = time.monotonic()
        self.machine = machine_cpu_seconds()
        self.before = {
            name: {pid: cpu_seconds(pid) for pid in pids()} for name, pids in self.groups.items()
        }
        return self

    def stop(self) -> dict[str, float]:
        wall = max(time.monotonic() - self.started, 1e-6)
        result: dict[str, float] = {}
        for name, pids in self.groups.items():
            before = self.before.get(name, {})
            per = [cpu_seconds(pid) - before.get(pid, 0.0) for pid in pids()]
            result[f"{name}_cpu_pct"] = round(100 * sum(per) / wall, 1)
            if name == "gen":
                result["gen_max_proc_cpu_pct"] = round(100 * max(per, default=0) / wall, 1)
        busy, stolen = machine_cpu_seconds()
        machine = 100 * (busy - self.machine[0]) / wall
        ours = sum(v for k, v in result.items() if k.endswith("_cpu_pct") and "max" not in k)
        result["other_cpu_pct"] = round(max(0.0, machine - ours), 1)
        result["stolen_cpu_pct"] = round(100 * (stolen - self.machine[1]) / wall, 1)
        return result


# --------------------------------------------------------------------------------------------
# Servers under test


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_nofile() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass
class Target:
    kind: str  # parley | hub | socketio
    label: str
    proc: subprocess.Popen[bytes]
    port: int
    data_dir: Path | None
    log: Path

    @property
    def driver(self) -> str:
        return "socketio" if self.kind == "socketio" else "phoenix"

    @property
    def socket_url(self) -> str:
        if self.kind == "socketio":
            return f"http://127.0.0.1:{self.port}"
        return f"ws://127.0.0.1:{self.port}/socket"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def db_pids(self) -> list[int]:
        if self.data_dir is None:
            return []
        pidfile = self.data_dir / "pgdata" / "postmaster.pid"
        try:
            postmaster = int(pidfile.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return []
        return [postmaster, *children(postmaster)]


LABELS = {"parley": "Parley", "hub": "bare trio hub", "socketio": "python-socketio"}


@contextlib.asynccontextmanager
async def running(
    kind: str, run_dir: Path, env: dict[str, str] | None = None, data_dir: Path | None = None
) -> AsyncIterator[Target]:
    """The server under test; Parley in a fresh data directory, or in `data_dir` (seeded)."""
    port = free_port()
    log = run_dir / f"{kind}-{port}.log"
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    owned = data_dir is None  # a data_dir handed in is its owner's to remove
    if kind == "parley":
        if data_dir is None:
            data_dir = Path(tempfile.mkdtemp(prefix="parley-bench-", dir=run_dir))
        child_env.update(PORT=str(port), PARLEY_DATA_DIR=str(data_dir), PARLEY_ENV="dev")
        child_env.pop("DATABASE_URL", None)
        child_env.update(COMMON_ENV)
        child_env.update(env or {})
        argv = [str(ROOT / ".venv" / "bin" / "parley"), "serve"]
    elif kind == "hub":
        argv = [PYTHON, str(BENCH / "peers" / "bare_trio_hub.py"), "--port", str(port)]
    else:
        argv = [PYTHON, str(BENCH / "peers" / "socketio_server.py"), "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 - started once, waited for below
            argv,
            cwd=ROOT,
            env=child_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=raise_nofile,
            start_new_session=True,
        )
    target = Target(kind, LABELS[kind], proc, port, data_dir, log)
    try:
        await wait_ready(target)
        yield target
    finally:
        await stop(target)
        if data_dir is not None and owned:
            shutil.rmtree(data_dir, ignore_errors=True)


async def wait_ready(target: Target, limit_s: float = 90) -> None:
    deadline = trio.current_time() + limit_s
    async with httpx.AsyncClient() as client:
        while trio.current_time() < deadline:
            if target.proc.poll() is not None:
                raise RuntimeError(f"{target.label} exited; see {target.log}")
            try:
                if target.kind == "parley":
                    if (await client.get(f"{target.http}/health", timeout=2)).status_code == 200:
                        return
                else:
                    stream = await trio.open_tcp_stream("127.0.0.1", target.port)
                    await stream.aclose()
                    return
            except (httpx.HTTPError, OSError):
                pass
            await trio.sleep(0.1)
    raise RuntimeError(f"{target.label} not ready after {limit_s} s; see {target.log}")


async def stop(target: Target) -> None:
    proc = target.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        for _ in range(120):  # 30 s: Parley drains, stops its tree and the embedded PostgreSQL
            if proc.poll() is not None:
                break
            await trio.sleep(0.1)
        else:
            proc.kill()
            proc.wait()
    pids = target.db_pids()
    if pids:  # the embedded PostgreSQL outlived a killed server: stop its postmaster (ours)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pids[0], signal.SIGTERM)


# --------------------------------------------------------------------------------------------
# Load generator processes


class Worker:
    def __init__(self, proc: trio.Process, index: int) -> None:
        self.proc = proc
        self.index = index
        self.buffer = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def call(self, command: dict[str, Any], limit_s: float) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        await self.proc.stdin.send_all((json.dumps(command) + "\n").encode())
        with trio.fail_after(limit_s):
            while b"\n" not in self.buffer:
                data = await self.proc.stdout.receive_some(1 << 20)
                if not data:
                    raise RuntimeError(f"load worker {self.index} exited")
                self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        answer: dict[str, Any] = json.loads(line)
        if answer.get("ev") == "error":
            raise RuntimeError(f"load worker {self.index}: {answer['error']}")
        return answer


@contextlib.asynccontextmanager
async def workers(
    count: int, run_dir: Path, script: str = "worker.mjs"
) -> AsyncIterator[list[Worker]]:
    """`count` load-generator processes running bench/node/`script` (JSON lines on stdio)."""
    started: list[Worker] = []
    try:
        for index in range(count):
            err = (run_dir / f"worker-{index}.log").open("ab")
            proc = await trio.lowlevel.open_process(
                ["node", str(NODE_DIR / script)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                cwd=NODE_DIR,
                preexec_fn=raise_nofile,
            )
            err.close()
            worker = Worker(proc, index)
            started.append(worker)
        for worker in started:  # each prints {"ev": "ready"} first
            with trio.fail_after(30):
                while b"\n" not in worker.buffer:
                    assert worker.proc.stdout is not None
                    worker.buffer += await worker.proc.stdout.receive_some(1 << 16)
            worker.buffer = worker.buffer.split(b"\n", 1)[1]
        yield started
    finally:
        with trio.CancelScope(shield=True):
            for worker in started:
                with contextlib.suppress(Exception):
                    await worker.call({"cmd": "close"}, limit_s=10)
            for worker in started:
                with trio.move_on_after(5):
                    await worker.proc.wait()
                if worker.proc.returncode is None:
                    worker.proc.kill()
                    await worker.proc.wait()


async def call_all(
    pool: list[Worker], commands: list[dict[str, Any]] | dict[str, Any], limit_s: float
) -> list[dict[str, Any]]:
    """Send one command to each worker at once (a list: one per worker); gather the answers."""
    if isinstance(commands, dict):
        commands = [commands] * len(pool)
    answers: list[dict[str, Any]] = [{} for _ in pool]

    async def one(i: int) -> None:
        answers[i] = await pool[i].call(commands[i], limit_s)

    async with trio.open_nursery() as nursery:
        for i in range(len(pool)):
            nursery.start_soon(one, i)
    return answers


def split(items: list[Any], parts: int) -> list[list[Any]]:
    return [items[i::parts] for i in range(parts)]


async def open_conns(
    pool: list[Worker], target: Target, specs: list[dict[str, Any]], rate: float, heartbeat_ms: int
) -> dict[str, Any]:
    shares = split(specs, len(pool))
    commands = [
        {
            "cmd": "open",
            "driver": target.driver,
            "url": target.socket_url,
            "conns": share,
            "rate": rate * len(share) / max(len(specs), 1),
            "heartbeat_ms": heartbeat_ms,
        }
        for share in shares
    ]
    answers = await call_all(pool, commands, limit_s=len(specs) / rate + 120)
    reasons: dict[str, int] = {}
    for answer in answers:
        for why, count in answer["reasons"].items():
            reasons[why] = reasons.get(why, 0) + count
    return {
        "ok": sum(a["ok"] for a in answers),
        "failed": sum(a["failed"] for a in answers),
        "reasons": reasons,
        "join": merged([a["join"] for a in answers]).summary(),
        "elapsed_s": round(max(a["elapsed_ms"] for a in answers) / 1000, 2),
    }


async def heartbeats(pool: list[Worker]) -> dict[str, Any]:
    answers = await call_all(pool, {"cmd": "hb"}, limit_s=30)
    return {
        "hb": merged([a["hb"] for a in answers]).summary(),
        "drops": sum(a["drops"] for a in answers),
        "open": sum(a["open"] for a in answers),
        "gen_loop_delay_p99_ms": round(max(a["loop"]["p99"] for a in answers), 1),
    }


# --------------------------------------------------------------------------------------------
# Seeding through Parley's REST API


@dataclass
class User:
    id: str
    token: str
    email: str


async def register_users(target: Target, count: int, concurrency: int = 16) -> list[User]:
    tag = uuid.uuid4().hex[:6]
    users: list[User | None] = [None] * count
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=target.http, limits=limits, timeout=60) as client:
        send, receive = trio.open_memory_channel[int](count)
        for i in range(count):
            send.send_nowait(i)
        send.close()

        async def register() -> None:
            async for i in receive:
                email = f"b{i}-{tag}@bench.example.com"
                body = {"email": email, "password": PASSWORD, "username": f"b{i}-{tag}"}
                for attempt in range(5):
                    r = await client.post("/api/auth/register", json=body)
                    if r.status_code == 201:
                        data = r.json()
                        users[i] = User(data["user"]["id"], data["access_token"], email)
                        break
                    if r.status_code != 429 or attempt == 4:
                        raise RuntimeError(f"register: {r.status_code} {r.text[:200]}")
                    await trio.sleep(float(r.headers.get("retry-after", "1")))

        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(register)
    return [u for u in users if u is not None]


async def create_conversations(
    target: Target, groups: list[list[User]], concurrency: int = 8
) -> list[str]:
    ids: list[str] = [""] * len(groups)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=target.http, limits=limits, timeout=120) as client:
        limiter = trio.CapacityLimiter(concurrency)

        async def create(i: int) -> None:
            owner, *others = groups[i]
            async with limiter:
                r = await client.post(
                    "/api/conversations",
                    json={"member_ids": [u.id for u in others], "title": f"bench {i}"},
                    headers={"authorization": f"Bearer {owner.token}"},
                )
            if r.status_code not in (200, 201):
                raise RuntimeError(f"create conversation: {r.status_code} {r.text[:200]}")
            ids[i] = r.json()["id"]

        async with trio.open_nursery() as nursery:
            for i in range(len(groups)):
                nursery.start_soon(create, i)
    return ids


@dataclass
class Seeded:
    """Users grouped into rooms: topics and tokens for each connection, whatever the server."""

    rooms: list[list[tuple[str, str | None]]]  # per room: (user id, token or None)
    room_ids: list[str]
    seconds: float = 0.0


async def seed_rooms(target: Target, rooms: int, members: int) -> Seeded:
    started = time.monotonic()
    if target.kind != "parley":
        ids = [[(str(uuid.uuid4()), None) for _ in range(members)] for _ in range(rooms)]
        return Seeded(ids, [str(uuid.uuid4()) for _ in range(rooms)])
    users = await register_users(target, rooms * members)
    groups = [users[r * members : (r + 1) * members] for r in range(rooms)]
    room_ids = await create_conversations(target, groups)
    return Seeded(
        [[(u.id, u.token) for u in group] for group in groups],
        room_ids,
        round(time.monotonic() - started, 1),
    )


def count_stored_messages(data_dir: Path) -> int:
    """Rows in `messages`, read straight from the embedded PostgreSQL (a separate process)."""
    script = (
        "import sys, warnings; warnings.simplefilter('ignore')\n"
        "from pgserver.postgres_server import get_server\n"
        "server = get_server(sys.argv[1], cleanup_mode=None)\n"
        "print(server.psql('SELECT count(*) FROM messages;'))\n"
    )
    text = subprocess.run(
        [PYTHON, "-c", script, str(data_dir / "pgdata")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return int(re.findall(r"^\s*(\d+)\s*$", text, re.M)[0])


# --------------------------------------------------------------------------------------------
# Workload pieces


# Workload sizes: the figures by default; --quick is a smoke run of the bench itself.
FULL: dict[str, Any] = {
    "w1_conns": 5_000, "w1_conns_large": 19_000, "w1_rate": 500, "w1_hb_ms": 30_000, "w1_hold": 60,
    "w2_rooms": 100, "w2_members": 10, "w2_big": 2_000, "w2_step_s": 10, "w2_big_s": 20,
    "w2_drain_ms": 2_500,
    "w2_steps": [1_000, 2_000, 5_000, 10_000, 15_000, 20_000, 30_000, 40_000, 50_000, 60_000,
                 80_000, 100_000],
    "w3_pairs": 500, "w3_step_s": 10, "w3_steps": [250, 500, 1_000, 2_000, 3_000],
    "w4_bystanders": 1_000, "w4_login_users": 20, "w4_steady_rate": 20, "w4_steady_s": 10,
    "w4_burst": 200, "w4_reconnects": 5_000, "w4_reconnect_window_s": 10, "w4_baseline_s": 10,
    "w4_failed_logins": 50, "w4_failed_rate": 10,
    "w5_args": [], "settle_s": 2.0, "warm_s": 2.0, "pause_s": 3.0,
    "w6_listings": 100_000, "w6_step_s": 10, "w6_warm_s": 10,
    "w6_steps": [100, 250, 500, 750, 1_000, 1_500, 2_000],
    "w7_channels": 100, "w7_subscribers": 10, "w7_step_s": 10, "w7_drain_ms": 2_000,
    "w7_steps": [500, 1_000, 1_500, 2_000, 2_500, 3_000, 4_000],
}  # fmt: skip
QUICK: dict[str, Any] = {
    "w1_conns": 100, "w1_conns_large": 100, "w1_rate": 400, "w1_hb_ms": 1_000, "w1_hold": 2,
    "w2_rooms": 5, "w2_members": 10, "w2_big": 50, "w2_step_s": 1.5, "w2_big_s": 1.5,
    "w2_drain_ms": 500, "w2_steps": [2_000],
    "w3_pairs": 50, "w3_step_s": 1.5, "w3_steps": [250],
    "w4_bystanders": 30, "w4_login_users": 5, "w4_steady_rate": 10, "w4_steady_s": 1,
    "w4_burst": 20, "w4_reconnects": 200, "w4_reconnect_window_s": 1, "w4_baseline_s": 1.5,
    "w4_failed_logins": 10, "w4_failed_rate": 10,
    "w5_args": ["--messages", "400", "--conversations", "5", "--senders", "10"],
    "settle_s": 0.3, "warm_s": 0.3, "pause_s": 0.2,
    "w6_listings": 2_000, "w6_step_s": 1.5, "w6_warm_s": 0.5, "w6_steps": [100],
    "w7_channels": 10, "w7_subscribers": 10, "w7_step_s": 1.5, "w7_drain_ms": 500,
    "w7_steps": [200],
}  # fmt: skip


@dataclass
class Run:
    args: argparse.Namespace
    run_dir: Path
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def quick(self) -> bool:
        return bool(self.args.quick)

    def __getitem__(self, key: str) -> Any:
        return (QUICK if self.quick else FULL)[key]


def gen_text(cpu: dict[str, float], procs: int) -> str:
    text = (
        f"gen CPU {cpu.get('gen_cpu_pct', 0):.0f}% of a core "
        f"({procs} procs, busiest {cpu.get('gen_max_proc_cpu_pct', 0):.0f}%)"
    )
    other = cpu.get("other_cpu_pct", 0)
    if other >= OTHER_LOAD_PCT:
        text += f"  OTHER LOAD {other:.0f}% (not comparable)"
    stolen = cpu.get("stolen_cpu_pct", 0)
    if stolen >= OTHER_LOAD_PCT:
        text += f"  STOLEN {stolen:.0f}% by the hypervisor (not comparable)"
    return text


def server_text(cpu: dict[str, float]) -> str:
    text = f"server CPU {cpu.get('server_cpu_pct', 0):.0f}%"
    if cpu.get("db_cpu_pct"):
        text += f" + db {cpu['db_cpu_pct']:.0f}%"
    return text


def cpu_window(target: Target, pool: list[Worker]) -> CpuWindow:
    return CpuWindow(
        {
            "server": lambda: [target.proc.pid],
            "db": target.db_pids,
            "gen": lambda: [w.pid for w in pool],
        }
    )


async def run_step(
    pool: list[Worker],
    target: Target,
    step: str,
    rate: float,
    duration: float,
    members: int,
    drain_ms: int,
) -> dict[str, Any]:
    """One constant-rate sending step across the workers (each sends its share)."""
    senders = len(pool)
    window = cpu_window(target, pool).start()
    answers = await call_all(
        pool,
        {
            "cmd": "step",
            "step": step,
            "rate": rate / senders,
            "duration_s": duration,
            "drain_ms": drain_ms,
        },
        limit_s=duration + drain_ms / 1000 + 60,
    )
    cpu = window.stop()
    sent = sum(a["sent"] for a in answers)
    received = sum(a["recv"] + a["echo"] for a in answers)
    expected = sent * members
    send_elapsed = max(a["send_elapsed_s"] for a in answers)
    errors: dict[str, int] = {}
    for a in answers:
        for why, count in a["errors"].items():
            errors[why] = errors.get(why, 0) + count
    return {
        "step": step,
        "target_msgs_per_s": rate,
        "sent": sent,
        "acked": sum(a["acked"] for a in answers),
        "ack_errors": errors,
        "achieved_msgs_per_s": round(sent / send_elapsed, 1) if send_elapsed else 0,
        "deliveries": received,
        "deliveries_per_s": round(received / send_elapsed, 1) if send_elapsed else 0,
        "loss_pct": round(100 * (1 - received / expected), 3) if expected else 0.0,
        "latency": merged([a["lat"] for a in answers]).summary(),
        "ack": merged([a["ack"] for a in answers]).summary(),
        "gen_loop_delay_p99_ms": round(max(a["loop"]["p99"] for a in answers), 1),
        "gen_loop_delay_max_ms": round(max(a["loop"]["max"] for a in answers), 1),
        **cpu,
    }


def room_specs(
    seeded: Seeded, user_topic: bool, senders_per_room: int | None = None
) -> list[dict[str, Any]]:
    specs = []
    for room_id, room in zip(seeded.room_ids, seeded.rooms, strict=True):
        for index, (user_id, token) in enumerate(room):
            topics = [f"conversation:{room_id}"]
            if user_topic:
                topics.insert(0, f"user:{user_id}")
            spec: dict[str, Any] = {"topics": topics}
            if token:
                spec["token"] = token
            if senders_per_room is None or index < senders_per_room:
                spec["send_topic"] = f"conversation:{room_id}"
            specs.append(spec)
    return specs


# --------------------------------------------------------------------------------------------
# W1 idle connections


async def w1(run: Run, kind: str) -> dict[str, Any]:
    n = run["w1_conns_large"] if run.args.large else run["w1_conns"]
    rate, heartbeat_ms, hold = run["w1_rate"], run["w1_hb_ms"], run["w1_hold"]
    procs = max(2, math.ceil(n / 5_000))
    env = {**CHEAP_ARGON2, "PARLEY_MESSAGES_GROUP_MAX_MEMBERS": "2000"}
    async with running(kind, run.run_dir, env) as target:
        seeded = await seed_rooms(target, n // 10, 10)
        specs = room_specs(seeded, user_topic=True, senders_per_room=0)
        async with workers(procs, run.run_dir) as pool:
            await trio.sleep(run["settle_s"])
            rss_before = rss_bytes(target.proc.pid)
            window = cpu_window(target, pool).start()
            opened = await open_conns(pool, target, specs, rate, heartbeat_ms)
            ramp_cpu = window.stop()
            await trio.sleep(run["settle_s"] * 1.5)
            rss_after = rss_bytes(target.proc.pid)
            await heartbeats(pool)  # reset: the hold window starts now
            window = cpu_window(target, pool).start()
            await trio.sleep(hold)
            cpu = window.stop()
            hb = await heartbeats(pool)
            rss_end = rss_bytes(target.proc.pid)
    result = {
        "connections": n,
        "connected": opened["ok"],
        "connect_failed": opened["failed"],
        "connect_fail_reasons": opened["reasons"],
        "ramp_s": opened["elapsed_s"],
        "join": opened["join"],
        "ramp_cpu": ramp_cpu,
        "rss_before_mb": round(rss_before / 2**20, 1),
        "rss_after_mb": round(rss_after / 2**20, 1),
        "rss_end_mb": round(rss_end / 2**20, 1),
        "kb_per_conn": round((rss_after - rss_before) / 1024 / max(opened["ok"], 1), 1),
        "idle_server_cpu_pct": cpu["server_cpu_pct"],
        "hold_s": hold,
        "heartbeat_ms": heartbeat_ms,
        "hb": hb["hb"],
        "drops": hb["drops"] + opened["failed"],
        "open_at_end": hb["open"],
        "gen_loop_delay_p99_ms": hb["gen_loop_delay_p99_ms"],
        "seed_s": seeded.seconds,
        "procs": procs,
        **cpu,
    }
    print(
        f"W1 idle       {LABELS[kind]:16} {opened['ok']:>6}/{n} conns  "
        f"RSS {result['kb_per_conn']:6.1f} KB/conn  idle {server_text(cpu)}  "
        f"hb p99 {hb['hb']['p99_ms']:.1f} ms (n={hb['hb']['n']})  drops {result['drops']}  "
        f"ramp {opened['elapsed_s']} s  | {gen_text(ramp_cpu, procs)} in ramp, "
        f"{cpu['gen_cpu_pct']:.0f}% idle",
        flush=True,
    )
    return result


# --------------------------------------------------------------------------------------------
# W2 room fan-out


async def w2(run: Run, kind: str) -> dict[str, Any]:
    rooms, members, big = run["w2_rooms"], run["w2_members"], run["w2_big"]
    duration, drain_ms, steps = run["w2_step_s"], run["w2_drain_ms"], run["w2_steps"]
    env = {**CHEAP_ARGON2, "PARLEY_MESSAGES_GROUP_MAX_MEMBERS": str(max(big, 1000))}
    result: dict[str, Any] = {"rooms": rooms, "members": members, "step_s": duration, "steps": []}
    async with running(kind, run.run_dir, env) as target:
        seeded = await seed_rooms(target, rooms, members)
        result["seed_s"] = seeded.seconds
        specs = room_specs(seeded, user_topic=False)
        async with workers(2, run.run_dir) as pool:
            opened = await open_conns(pool, target, specs, 500, 30_000)
            result["connected"] = opened["ok"]
            if opened["failed"]:
                result["connect_fail_reasons"] = opened["reasons"]
            # Warm-up (not counted): starts every conversation actor, JITs the clients.
            await run_step(pool, target, "warm", 100, run["warm_s"], members, 500)
            sustained = 0.0
            within_goal = 0.0  # the bar: p99 < 100 ms and no loss at all
            # The ramp stops at the first failing step; the 2k/s and 10k/s points asked for are
            # then measured on their own (after a pause) if the ramp did not reach them.
            ramp = list(steps)
            probes = [d for d in (2_000, 10_000) if d in steps]
            failed = False
            while (ramp and not failed) or (failed and probes):
                deliveries = ramp.pop(0) if ramp and not failed else probes.pop(0)
                if failed and any(
                    x["target_deliveries_per_s"] == deliveries for x in result["steps"]
                ):
                    continue
                probes = [d for d in probes if d != deliveries]
                await trio.sleep(run["pause_s"])
                s = await run_step(
                    pool,
                    target,
                    f"d{deliveries}",
                    deliveries / members,
                    duration,
                    members,
                    drain_ms,
                )
                s["target_deliveries_per_s"] = deliveries
                s["after_ramp"] = failed
                generator_bound = s["achieved_msgs_per_s"] < 0.9 * deliveries / members
                ok = s["latency"]["p99_ms"] <= 200 and s["loss_pct"] <= 0.1
                s["pass"] = ok and not generator_bound
                s["generator_bound"] = generator_bound
                result["steps"].append(s)
                print(
                    f"W2 fan-out    {LABELS[kind]:16} target {deliveries:>6}/s -> "
                    f"{s['deliveries_per_s']:>8.0f} deliveries/s  p50 {s['latency']['p50_ms']:.1f} "
                    f"p99 {s['latency']['p99_ms']:.1f} ms  loss {s['loss_pct']:.3f}%  "
                    f"ack p99 {s['ack']['p99_ms']:.1f} ms  {server_text(s)}  | "
                    f"{gen_text(s, len(pool))}{'  GENERATOR-BOUND' if generator_bound else ''}"
                    f"{'  (probe after the ramp)' if failed else ''}",
                    flush=True,
                )
                if failed:
                    continue
                if not s["pass"]:
                    failed = True
                    continue
                sustained = max(sustained, s["deliveries_per_s"])
                if s["latency"]["p99_ms"] < 100 and s["loss_pct"] == 0:
                    within_goal = max(within_goal, s["deliveries_per_s"])
            result["sustained_deliveries_per_s"] = sustained
            result["within_goal_deliveries_per_s"] = within_goal
            for s in result["steps"]:
                if s["target_deliveries_per_s"] in (2_000, 10_000):
                    key = f"at_{s['target_deliveries_per_s'] // 1000}k"
                    result[key] = {**s["latency"], "loss_pct": s["loss_pct"]}
        print(
            f"W2 fan-out    {LABELS[kind]:16} highest sustained {sustained:,.0f} deliveries/s "
            f"(p99 <= 200 ms, loss <= 0.1 %)",
            flush=True,
        )
        result["big_room"] = await w2_big_room(run, target, big, run["w2_big_s"], drain_ms)
    return result


async def w2_big_room(
    run: Run, target: Target, members: int, duration: float, drain_ms: int
) -> dict[str, Any]:
    seeded = await seed_rooms(target, 1, members)
    specs = room_specs(seeded, user_topic=False, senders_per_room=10)
    async with workers(2, run.run_dir) as pool:
        opened = await open_conns(pool, target, specs, 500, 30_000)
        await run_step(pool, target, "bwarm", 2, run["warm_s"], members, 500)
        await call_all(pool, {"cmd": "spread", "on": True}, limit_s=10)
        s = await run_step(pool, target, "big", 5, duration, members, drain_ms)
        spreads = await call_all(pool, {"cmd": "spread", "on": False}, limit_s=30)
    per_message: dict[str, list[float]] = {}
    for answer in spreads:
        for key, (first, last, count) in answer["keys"].items():
            entry = per_message.setdefault(key, [first, last, 0])
            entry[0], entry[1] = min(entry[0], first), max(entry[1], last)
            entry[2] += count
    values = [last - first for first, last, _ in per_message.values()]
    result = {
        "members": members,
        "connected": opened["ok"],
        "messages": s["sent"],
        # Loss counts all `members`; when joins failed in the ramp (`connected` < members) it
        # mixes join failures with lost messages: deliveries per message tells them apart.
        "deliveries_per_msg": round(s["deliveries"] / s["sent"], 1) if s["sent"] else 0,
        "spread_p50_ms": rnd(percentile(values, 50)),
        "spread_p99_ms": rnd(percentile(values, 99)),
        "latency": s["latency"],
        "loss_pct": s["loss_pct"],
        **{k: v for k, v in s.items() if k.endswith("cpu_pct")},
    }
    print(
        f"W2 big room   {target.label:16} 1 x {members} members at 5 msg/s: first-to-last spread "
        f"p50 {result['spread_p50_ms']:.1f} p99 {result['spread_p99_ms']:.1f} ms  delivery p99 "
        f"{s['latency']['p99_ms']:.1f} ms  loss {s['loss_pct']:.3f}% (joined {opened['ok']}, "
        f"{result['deliveries_per_msg']} deliveries/message)  {server_text(s)}  | "
        f"{gen_text(s, 2)}",
        flush=True,
    )
    return result


# --------------------------------------------------------------------------------------------
# W3 1:1 persisted round trip


async def w3(run: Run) -> dict[str, Any]:
    pairs, duration, steps = run["w3_pairs"], run["w3_step_s"], run["w3_steps"]
    result: dict[str, Any] = {"pairs": pairs, "step_s": duration, "steps": []}
    async with running("parley", run.run_dir, CHEAP_ARGON2) as target:
        started = time.monotonic()
        users = await register_users(target, pairs * 2)
        groups = [[users[2 * i], users[2 * i + 1]] for i in range(pairs)]
        direct = await create_conversations(target, groups)
        result["seed_s"] = round(time.monotonic() - started, 1)
        seeded = Seeded([[(u.id, u.token) for u in g] for g in groups], direct)
        specs = room_specs(seeded, user_topic=False)
        acked = 0
        async with workers(2, run.run_dir) as pool:
            opened = await open_conns(pool, target, specs, 500, 30_000)
            result["connected"] = opened["ok"]
            warm = await run_step(pool, target, "warm", 100, run["warm_s"], 2, 500)
            acked += warm["acked"]
            sent = warm["sent"]
            for rate in steps:
                await trio.sleep(run["pause_s"])
                s = await run_step(pool, target, f"r{rate}", rate, duration, 2, 2000)
                acked += s["acked"]
                sent += s["sent"]
                result["steps"].append(s)
                print(
                    f"W3 1:1        Parley           {rate:>5} msg/s -> "
                    f"{s['achieved_msgs_per_s']:>7.0f}/s  ack p50 {s['ack']['p50_ms']:.1f} p99 "
                    f"{s['ack']['p99_ms']:.1f} ms  delivery p99 {s['latency']['p99_ms']:.1f} ms  "
                    f"loss {s['loss_pct']:.3f}%  ack errors {sum(s['ack_errors'].values())}  "
                    f"{server_text(s)}  | {gen_text(s, len(pool))}",
                    flush=True,
                )
                if s["ack_errors"]:
                    # Acks timed out (10 s): the server is saturated and the next, higher steps
                    # would only measure the backlog. They are reported as not run.
                    result["stopped_after"] = rate
                    print(f"W3 1:1        Parley           stopped: acks failed at {rate} msg/s")
                    break
            # Let the commits of pushes whose ack timed out finish before counting rows.
            await trio.sleep(run["pause_s"] + (10 if "stopped_after" in result else 1))
        assert target.data_dir is not None
        stored = count_stored_messages(target.data_dir)
    result["acked_total"] = acked
    result["sent_total"] = sent
    result["rows_stored"] = stored
    # Every ack follows a commit, so rows >= acks; rows above acks are pushes whose ack the client
    # gave up on (10 s) but that committed later; rows above the pushes sent would be duplicates.
    result["rows_ok"] = acked <= stored <= sent
    print(
        f"W3 1:1        Parley           rows in the database {stored}, acks {acked}, pushes "
        f"{sent}: {'equal' if stored == acked else 'consistent' if result['rows_ok'] else 'NO'}",
        flush=True,
    )
    return result


# --------------------------------------------------------------------------------------------
# W4 storms


async def failed_login_times(
    target: Target, pool: list[Worker], people: list[User], count: int, rate: float
) -> dict[str, Any]:
    """Wrong password vs unknown e-mail, one after the other at `rate` on a quiet server: the two
    401s must cost the same (a full argon2id verification each), or timing tells which e-mails
    exist. Each wrong password is tried on another bystander (no account reaches its lockout);
    each unknown address is new."""
    tag = uuid.uuid4().hex[:8]
    cases = {
        "wrong": [{"email": u.email, "password": "not the password!"} for u in people[:count]],
        "unknown": [
            {"email": f"nobody{n}-{tag}@bench.test", "password": "not the password!"}
            for n in range(count)
        ],
    }
    result: dict[str, Any] = {}
    window = cpu_window(target, pool).start()
    for case, creds in cases.items():
        answer = await pool[0].call(
            {
                "cmd": "logins",
                "url": f"{target.http}/api/auth/login",
                "creds": creds,
                "rate": rate,
                "count": len(creds),
                "timed_status": 401,
            },
            limit_s=120,
        )
        result[case] = {"status": answer["status"], **Hist().merge(answer["lat"]).summary()}
    cpu = window.stop()
    result.update(cpu)
    wrong, unknown = result["wrong"]["p50_ms"], result["unknown"]["p50_ms"]
    result["unknown_vs_wrong"] = rnd(unknown / wrong) if wrong else math.nan
    print(
        f"W4 failed     Parley           {len(cases['wrong'])} wrong passwords p50 {wrong:.1f} ms, "
        f"{len(cases['unknown'])} unknown e-mails p50 {unknown:.1f} ms: unknown / wrong "
        f"{result['unknown_vs_wrong']}, status {result['wrong']['status']} "
        f"{result['unknown']['status']}  {server_text(cpu)}  | {gen_text(cpu, len(pool))}",
        flush=True,
    )
    return result


async def w4(run: Run) -> dict[str, Any]:
    bystanders, login_users = run["w4_bystanders"], run["w4_login_users"]
    steady_rate, steady_s, burst = run["w4_steady_rate"], run["w4_steady_s"], run["w4_burst"]
    reconnects, window_s = run["w4_reconnects"], run["w4_reconnect_window_s"]
    hb_ms = 1_000 if run.quick else 2_000
    result: dict[str, Any] = {"bystanders": bystanders, "bystander_heartbeat_ms": hb_ms}
    # Default argon2id parameters here: the logins are what is measured.
    async with running("parley", run.run_dir) as target:
        started = time.monotonic()
        users = await register_users(target, bystanders + login_users, concurrency=4)
        result["seed_s"] = round(time.monotonic() - started, 1)
        people, login = users[:bystanders], users[bystanders:]
        groups = [people[i : i + 10] for i in range(0, bystanders, 10)]
        rooms = await create_conversations(target, groups)
        seeded = Seeded([[(u.id, u.token) for u in g] for g in groups], rooms)
        specs = room_specs(seeded, user_topic=True, senders_per_room=0)
        creds = [{"email": u.email, "password": PASSWORD} for u in login]
        login_url = f"{target.http}/api/auth/login"
        async with workers(2, run.run_dir) as by, workers(3, run.run_dir) as storm:
            result["failed_logins"] = await failed_login_times(
                target, storm, people, run["w4_failed_logins"], run["w4_failed_rate"]
            )
            opened = await open_conns(by, target, specs, 500, hb_ms)
            result["bystanders_connected"] = opened["ok"]
            pool = [*by, *storm]
            await heartbeats(by)
            window = cpu_window(target, pool).start()
            await trio.sleep(run["w4_baseline_s"])
            result["baseline"] = {**(await heartbeats(by)), **window.stop()}

            for phase, rate, count in (
                ("steady", steady_rate, steady_rate * steady_s),
                ("burst", 0, burst),
            ):
                window = cpu_window(target, pool).start()
                answer = await storm[0].call(
                    {
                        "cmd": "logins",
                        "url": login_url,
                        "creds": creds,
                        "rate": rate,
                        "count": count,
                    },
                    limit_s=300,
                )
                # The window holds at least one heartbeat of every bystander.
                await trio.sleep(max(0.5, hb_ms / 1000 - answer["elapsed_ms"] / 1000))
                hb = await heartbeats(by)
                cpu = window.stop()
                lat = Hist().merge(answer["lat"]).summary()
                result[phase] = {
                    "logins": count,
                    "rate": rate,
                    "status": answer["status"],
                    "login": lat,
                    "elapsed_s": round(answer["elapsed_ms"] / 1000, 2),
                    "logins_per_s": round(count / (answer["elapsed_ms"] / 1000), 1),
                    **hb,
                    **cpu,
                }
                print(
                    f"W4 logins     Parley           {phase:6} {count} logins "
                    f"{f'at {rate}/s' if rate else 'at once'}: done in "
                    f"{result[phase]['elapsed_s']} s, login p50 {lat['p50_ms']:.0f} p99 "
                    f"{lat['p99_ms']:.0f} ms, status {answer['status']}; bystander hb p99 "
                    f"{hb['hb']['p99_ms']:.1f} ms (baseline "
                    f"{result['baseline']['hb']['p99_ms']:.1f})  {server_text(cpu)}  | "
                    f"{gen_text(cpu, len(pool))}",
                    flush=True,
                )

            # Token reconnect storm: fresh sockets with existing access tokens, each joining
            # user:{id} and its conversation (users have several devices: tokens are reused).
            storm_specs = [specs[i % len(specs)] for i in range(reconnects)]
            window = cpu_window(target, pool).start()
            opened = await open_conns(storm, target, storm_specs, reconnects / window_s, 30_000)
            cpu = window.stop()
            hb = await heartbeats(by)
            result["reconnect"] = {
                "connections": reconnects,
                "window_s": window_s,
                "joined": opened["ok"],
                "failed": opened["failed"],
                "reasons": opened["reasons"],
                "elapsed_s": opened["elapsed_s"],
                "join": opened["join"],
                **hb,
                **cpu,
            }
            print(
                f"W4 reconnect  Parley           {opened['ok']}/{reconnects} token reconnects + "
                f"joins scheduled over {window_s} s, all settled in {opened['elapsed_s']} s, "
                f"join p99 {opened['join']['p99_ms']:.0f} ms, failed {opened['failed']}; "
                f"bystander hb p99 {hb['hb']['p99_ms']:.1f} ms  {server_text(cpu)}  | "
                f"{gen_text(cpu, len(pool))}",
                flush=True,
            )
    result["bystander_hb_p99_ms"] = max(
        result[p]["hb"]["p99_ms"] for p in ("steady", "burst", "reconnect")
    )
    return result


# --------------------------------------------------------------------------------------------
# W5 writer


async def w5(run: Run) -> dict[str, Any]:
    argv = [PYTHON, str(BENCH / "writer.py")]
    argv += run["w5_args"]
    started = time.monotonic()
    done = await trio.run_process(
        argv, capture_stdout=True, capture_stderr=True, check=False, cwd=ROOT
    )
    text = done.stdout.decode()
    for line in text.splitlines():
        if line.startswith("W5"):
            print(line, "| in-process senders (no sockets)", flush=True)
        elif line.strip():
            print("  ", line.strip(), flush=True)
    if done.returncode != 0:
        raise RuntimeError(f"bench/writer.py failed: {done.stderr.decode()[-2000:]}")
    batched = re.search(r"batched:\s+(\d+) messages/s persisted\s+batch sizes (.*)", text)
    unbatched = re.search(r"unbatched:\s+(\d+) messages/s", text)
    return {
        "batched_msgs_per_s": int(batched.group(1)) if batched else None,
        "batch_sizes": batched.group(2) if batched else None,
        "unbatched_msgs_per_s": int(unbatched.group(1)) if unbatched else None,
        "elapsed_s": round(time.monotonic() - started, 1),
        "output": text,
    }


# --------------------------------------------------------------------------------------------
# W6 listing search


def search_urls(rng: random.Random, per_shape: int = 30) -> list[tuple[str, str]]:
    """(shape, path) of the searches a buyer runs, mixed: the vocabulary of `parley demo`'s
    listings (its makes, models and description words), so that filters and `q` find rows."""
    from parley.demo import BODY_NOTES, MODELS

    words = sorted(
        {w.strip(".,;").lower() for note in BODY_NOTES for w in note.split() if len(w) > 4}
    )
    this_year = datetime.date.today().year

    def make_model() -> tuple[str, str]:
        make = rng.choice(sorted(MODELS))
        return make, rng.choice(MODELS[make])[0]

    def years() -> dict[str, int]:
        low = rng.randint(this_year - 25, this_year - 3)
        return {"year_min": low, "year_max": min(low + rng.randint(2, 10), this_year + 1)}

    def prices() -> dict[str, int]:
        low = rng.randint(1, 30) * 100_000
        return {"price_min": low, "price_max": low + rng.randint(5, 40) * 100_000}

    def q(n: int = 2) -> str:
        return " ".join(rng.sample(words, n))

    shapes: dict[str, Callable[[], dict[str, Any]]] = {
        "newest": lambda: {},
        "make": lambda: {"make": make_model()[0].lower()},
        "make+model": lambda: dict(zip(("make", "model"), make_model(), strict=True)),
        "make+years+prices": lambda: {"make": make_model()[0], **years(), **prices()},
        "years+price_asc": lambda: {**years(), "sort": "price_asc"},
        "prices+price_desc": lambda: {**prices(), "sort": "price_desc"},
        "q": lambda: {"q": q(rng.randint(1, 2))},
        "q+make+years": lambda: {"q": q(1), "make": make_model()[0], **years()},
        "q+price_asc": lambda: {"q": q(1), "sort": "price_asc"},
    }
    urls = [
        (shape, "/api/listings?" + urlencode(make()))
        for shape, make in shapes.items()
        for _ in range(per_shape)
    ]
    rng.shuffle(urls)
    return urls


def seed_listings(data_dir: Path, count: int, run_dir: Path) -> float:
    """`parley demo --no-serve --listings N` into `data_dir` (its embedded PostgreSQL)."""
    started = time.monotonic()
    env = {**os.environ, **CHEAP_ARGON2, "PARLEY_DATA_DIR": str(data_dir), "PARLEY_ENV": "dev"}
    env.pop("DATABASE_URL", None)
    with (run_dir / "w6-seed.log").open("wb") as out:
        subprocess.run(
            [str(ROOT / ".venv" / "bin" / "parley"), "--log-level", "WARNING", "demo",
             "--no-serve", "--listings", str(count)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=1800, check=True,
        )  # fmt: skip
    return round(time.monotonic() - started, 1)


EXPLAIN_SCRIPT = r"""
import asyncio, json, sys, warnings; warnings.simplefilter("ignore")
from urllib.parse import parse_qs, urlsplit
import asyncpg
from pgserver.postgres_server import get_server
from parley.marketplace.search import SearchLimits, parse_search
from parley.store.listing_search import search_statement

async def main():
    conn = await asyncpg.connect(get_server(sys.argv[1], cleanup_mode=None).get_uri())
    out = []
    for shape, path in json.loads(sys.argv[2]):
        params = parse_qs(urlsplit(path).query, keep_blank_values=True)
        query = parse_search(params, this_year=int(sys.argv[3]), limits=SearchLimits(20, 100, 200))
        sql, args = search_statement(query)
        await conn.fetch(sql, *args)  # warm, as the measured run was
        rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)
        plan = "\n".join(r[0] for r in rows)
        ms = float(plan.rsplit("Execution Time: ", 1)[1].split()[0])
        out.append({"shape": shape, "path": path, "execution_ms": ms, "plan": plan})
    await conn.close()
    print(json.dumps(out))

asyncio.run(main())
"""


def explain_searches(data_dir: Path, urls: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """EXPLAIN (ANALYZE, BUFFERS) of each search, on the seeded database (a separate process)."""
    done = subprocess.run(
        [PYTHON, "-c", EXPLAIN_SCRIPT, str(data_dir / "pgdata"), json.dumps(urls),
         str(datetime.date.today().year)],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    explained: list[dict[str, Any]] = json.loads(done.stdout)
    return explained


async def w6(run: Run) -> dict[str, Any]:
    count, duration, steps = run["w6_listings"], run["w6_step_s"], run["w6_steps"]
    data_dir = Path(tempfile.mkdtemp(prefix="parley-bench-", dir=run.run_dir))
    seed_s = await trio.to_thread.run_sync(seed_listings, data_dir, count, run.run_dir)
    print(f"W6 search     Parley           seeded {count:,} listings in {seed_s} s", flush=True)
    urls = search_urls(random.Random(6))
    result: dict[str, Any] = {"listings": count, "seed_s": seed_s, "step_s": duration, "steps": []}
    async with (
        running("parley", run.run_dir, CHEAP_ARGON2, data_dir) as target,
        workers(3, run.run_dir) as pool,
    ):
        shares = split(urls, len(pool))

        async def step(rate: float, seconds: float) -> dict[str, Any]:
            window = cpu_window(target, pool).start()
            commands = [
                {"cmd": "search", "base": target.http, "urls": share,
                 "rate": rate / len(pool), "duration_s": seconds}
                for share in shares
            ]  # fmt: skip
            answers = await call_all(pool, commands, limit_s=seconds + 60)
            cpu = window.stop()
            status: dict[str, int] = {}
            for answer in answers:
                for code, n in answer["status"].items():
                    status[code] = status.get(code, 0) + n
            done = sum(status.values())
            shape_names = {name for a in answers for name in a["shapes"]}
            send_s = max(a["send_elapsed_ms"] for a in answers) / 1000
            return {
                "target_per_s": rate,
                "requests": done,
                "achieved_per_s": round(done / send_s, 1) if send_s else 0,
                "status": status,
                "errors": done - status.get("200", 0),
                "skipped": sum(a["skipped"] for a in answers),
                "latency": merged([a["lat"] for a in answers]).summary(),
                "shapes": {
                    name: merged(
                        [a["shapes"][name] for a in answers if name in a["shapes"]]
                    ).summary()
                    for name in sorted(shape_names)
                },
                **cpu,
            }

        # Warm-up (not counted): the pool, PostgreSQL's caches after the load, the clients' JIT.
        await step(50, run["w6_warm_s"])
        sustained = 0.0
        for rate in steps:
            await trio.sleep(run["pause_s"])
            s = await step(rate, duration)
            generator_bound = s["achieved_per_s"] < 0.9 * rate
            s["pass"] = (
                s["latency"]["p99_ms"] < 50
                and s["errors"] == 0
                and s["skipped"] == 0
                and not generator_bound
            )
            result["steps"].append(s)
            slowest = max(s["shapes"].items(), key=lambda kv: kv[1]["p99_ms"])
            print(
                f"W6 search     Parley           {rate:>5}/s -> {s['achieved_per_s']:>7.0f}/s"
                f"  p50 {s['latency']['p50_ms']:.1f} p99 {s['latency']['p99_ms']:.1f} ms"
                f"  errors {s['errors']}  slowest shape {slowest[0]} p99 "
                f"{slowest[1]['p99_ms']:.1f} ms  {server_text(s)}  | "
                f"{gen_text(s, len(pool))}{'  GENERATOR-BOUND' if generator_bound else ''}",
                flush=True,
            )
            if not s["pass"]:
                break
            sustained = max(sustained, s["achieved_per_s"])
        result["sustained_per_s"] = sustained
        at_500 = next((s for s in result["steps"] if s["target_per_s"] == 500), None)
        result["p99_500_ms"] = at_500["latency"]["p99_ms"] if at_500 else None
        # The plans, on the same data, with the load stopped (the server idle).
        shapes = dict.fromkeys(shape for shape, _ in urls)
        sample = [next(u for u in urls if u[0] == shape) for shape in shapes]
        explained = await trio.to_thread.run_sync(explain_searches, data_dir, sample)
        result["explain"] = explained
    worst = max(explained, key=lambda e: e["execution_ms"])
    print(
        f"W6 search     Parley           slowest shape on the database: {worst['shape']} "
        f"({worst['execution_ms']:.1f} ms) {worst['path']}\n{worst['plan']}",
        flush=True,
    )
    shutil.rmtree(data_dir, ignore_errors=True)
    return result


# --------------------------------------------------------------------------------------------
# W7 trigger fan-out (integrations)


async def seed_application(target: Target) -> dict[str, Any]:
    """An organization with one application, made through the REST API by a new user."""
    [owner] = await register_users(target, 1)
    async with httpx.AsyncClient(base_url=target.http, timeout=60) as client:
        auth = {"authorization": f"Bearer {owner.token}"}
        org = await client.post("/api/organizations", json={"name": "Bench"}, headers=auth)
        org.raise_for_status()
        slug = org.json()["slug"]
        app = await client.post(
            f"/api/organizations/{slug}/applications", json={"name": "bench"}, headers=auth
        )
        app.raise_for_status()
        return {"slug": slug, **app.json()}


async def w7(run: Run) -> dict[str, Any]:
    """Signed triggers to an application's channels, each with `w7_subscribers` end users."""
    from parley.integrations.signing import sign_end_user_token

    channels, members = run["w7_channels"], run["w7_subscribers"]
    duration, drain_ms, steps = run["w7_step_s"], run["w7_drain_ms"], run["w7_steps"]
    result: dict[str, Any] = {"channels": channels, "subscribers": members, "step_s": duration,
                              "steps": []}  # fmt: skip
    async with (
        running("parley", run.run_dir, CHEAP_ARGON2) as target,
        workers(3, run.run_dir) as pool,
    ):
        app = await seed_application(target)
        key, secret = app["app_key"], app["app_secret"]
        expires = int(time.time()) + 20 * 3600
        names = [f"ch-{i}" for i in range(channels)]
        specs = [
            {"token": sign_end_user_token(key, secret, f"u{c}-{m}", expires_at=expires),
             "topics": [f"app:{key}:{name}"], "events": ["bench"]}
            for c, name in enumerate(names)
            for m in range(members)
        ]  # fmt: skip
        opened = await open_conns(pool, target, specs, 500, 30_000)
        result["connected"] = opened["ok"]
        path = f"/api/organizations/{app['slug']}/applications/{key}/event/bench"
        shares = split(names, len(pool))

        async def step(name: str, rate: float, seconds: float) -> dict[str, Any]:
            began = time.monotonic()
            window = cpu_window(target, pool).start()
            commands = [
                {"cmd": "trigger", "base": target.http, "path": path, "key": key,
                 "secret": secret, "channels": share, "rate": rate / len(pool),
                 "duration_s": seconds, "step": name, "drain_ms": drain_ms}
                for share in shares
            ]  # fmt: skip
            answers = await call_all(pool, commands, limit_s=seconds + drain_ms / 1000 + 60)
            cpu = window.stop()
            wall = time.monotonic() - began
            status: dict[str, int] = {}
            for answer in answers:
                for code, n in answer["status"].items():
                    status[code] = status.get(code, 0) + n
            sent = sum(a["sent"] for a in answers)
            accepted = status.get("202", 0)
            received = sum(a["recv"] for a in answers)
            send_s = max(a["send_elapsed_ms"] for a in answers) / 1000
            server_s = cpu.get("server_cpu_pct", 0) / 100 * wall
            return {
                "target_per_s": rate,
                "sent": sent,
                "achieved_per_s": round(sent / send_s, 1) if send_s else 0,
                "status": status,
                "errors": sent - accepted,
                "skipped": sum(a["skipped"] for a in answers),
                "deliveries": received,
                "deliveries_per_s": round(received / send_s, 1) if send_s else 0,
                "loss_pct": round(100 * (1 - received / (accepted * members)), 3)
                if accepted
                else 0.0,
                "latency": merged([a["lat"] for a in answers]).summary(),
                "http": merged([a["http"] for a in answers]).summary(),
                "gen_loop_delay_p99_ms": round(max(a["loop"]["p99"] for a in answers), 1),
                "gen_loop_delay_max_ms": round(max(a["loop"]["max"] for a in answers), 1),
                "server_cpu_us_per_trigger": round(server_s / accepted * 1e6, 1)
                if accepted
                else None,
                **cpu,
            }

        await step("warm", 100, run["warm_s"])  # not counted: the clients' JIT, the app cache
        sustained = 0.0
        for rate in steps:
            await trio.sleep(run["pause_s"])
            s = await step(f"t{rate}", rate, duration)
            generator_bound = s["achieved_per_s"] < 0.9 * rate
            s["pass"] = (
                s["latency"]["p99_ms"] < 50
                and s["loss_pct"] == 0
                and s["errors"] == 0
                and s["skipped"] == 0
                and not generator_bound
            )
            s["generator_bound"] = generator_bound
            result["steps"].append(s)
            print(
                f"W7 triggers   Parley           {rate:>5}/s -> {s['achieved_per_s']:>7.0f}/s"
                f" ({s['deliveries_per_s']:,.0f} deliveries/s)  delivery p50 "
                f"{s['latency']['p50_ms']:.1f} p99 {s['latency']['p99_ms']:.1f} ms  HTTP p99 "
                f"{s['http']['p99_ms']:.1f} ms  gen loop delay p99 "
                f"{s['gen_loop_delay_p99_ms']} max {s['gen_loop_delay_max_ms']} ms  loss "
                f"{s['loss_pct']:.3f}%  errors {s['errors']}"
                f"  {s['server_cpu_us_per_trigger']} µs server CPU/trigger  {server_text(s)}  | "
                f"{gen_text(s, len(pool))}{'  GENERATOR-BOUND' if generator_bound else ''}",
                flush=True,
            )
            if not s["pass"]:
                break
            sustained = max(sustained, s["achieved_per_s"])
        result["sustained_per_s"] = sustained
        passed = [s for s in result["steps"] if s["pass"]]
        result["cpu_us_per_trigger"] = passed[-1]["server_cpu_us_per_trigger"] if passed else None
    print(
        f"W7 triggers   Parley           highest with delivery p99 < 50 ms and no loss: "
        f"{sustained:,.0f} triggers/s ({sustained * members:,.0f} deliveries/s), "
        f"{result['cpu_us_per_trigger']} µs of server CPU per trigger there",
        flush=True,
    )
    return result


# --------------------------------------------------------------------------------------------
# Results: JSON and table


def host_speed() -> dict[str, float]:
    """How fast this machine runs the kinds of work a server does here, in µs per operation (best
    of five): a pure-Python loop, a trio checkpoint (a scheduler round trip) and a trio timeout
    scope. Run before the runner's own trio loop starts.

    Machines of the same kind are not equally fast: a run at the same code on another day held a
    fifth of the W2 rate of an earlier one (docs/fast_path.md, "Host speed"). Every figure moves
    with these numbers, so a run is comparable with another only when they are close; the ratios
    to the peers measured in the same run are comparable across machines.
    """

    def best(fn: Callable[[], float]) -> float:
        return round(min(fn() for _ in range(5)), 2)

    def loop() -> float:
        started = time.perf_counter()
        for _ in range(1000):
            sum(range(1000))
        return (time.perf_counter() - started) * 1000

    async def scheduler() -> dict[str, float]:
        async def checkpoints() -> float:
            started = time.perf_counter()
            for _ in range(20_000):
                await trio.lowlevel.checkpoint()
            return (time.perf_counter() - started) / 20_000 * 1e6

        async def scopes() -> float:
            started = time.perf_counter()
            for _ in range(20_000):
                with trio.move_on_after(60):  # noqa: ASYNC100 - the scope's own cost is measured
                    pass
            return (time.perf_counter() - started) / 20_000 * 1e6

        return {
            "trio_checkpoint_us": round(min([await checkpoints() for _ in range(5)]), 2),
            "trio_timeout_scope_us": round(min([await scopes() for _ in range(5)]), 2),
        }

    return {"python_sum_range_1000_us": best(loop), **trio.run(scheduler)}


def speed_text(speed: dict[str, float]) -> str:
    return (
        f"Python loop {speed['python_sum_range_1000_us']:.1f} µs, trio checkpoint "
        f"{speed['trio_checkpoint_us']:.1f} µs, timeout scope "
        f"{speed['trio_timeout_scope_us']:.1f} µs (bench/run.py host_speed; lower is faster)"
    )


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_mb": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": node,
        "open_files_hard_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        "loadavg": list(os.getloadavg()),
    }


def loadavg_text() -> str:
    """The machine's load average (1, 5, 15 min), as `uptime` prints it: the machine is shared."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def fmt(value: Any, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float) and value >= 100:
        return f"{value:,.0f}{unit}"
    if isinstance(value, float):
        return f"{value:.1f}{unit}"
    return f"{value:,}{unit}" if isinstance(value, int) else f"{value}{unit}"


def ratio(parley: Any, peer: Any) -> str:
    if not isinstance(parley, int | float) or not isinstance(peer, int | float) or not peer:
        return ""
    if math.isnan(parley) or math.isnan(peer):
        return ""
    return f" ({parley / peer:.2f}x)"


def table(results: dict[str, Any]) -> str:
    rows: list[tuple[str, Any, str, str, str, str, str]] = []

    def goal(key: str, value: Any) -> tuple[str, str]:
        if key not in GOALS:
            return "", ""
        text, check = GOALS[key]
        if not isinstance(value, int | float) or math.isnan(value):
            return text, "—"
        return text, "pass" if check(value) else "FAIL"

    def add(
        name: str,
        key: str,
        get: Callable[[dict[str, Any]], Any],
        unit: str,
        gen: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
        goal_value: Any = None,
    ) -> None:
        per = results.get(key.split(".")[0], {})
        parley = per.get("parley")
        if parley is None:
            return
        value = get(parley)
        cells = []
        for peer in ("hub", "socketio"):
            if per.get(peer) is not None:
                cells.append(fmt(get(per[peer]), unit) + ratio(value, get(per[peer])))
            else:
                cells.append("")
        gen_cpu = ""
        cpu = gen(parley) if gen else None
        if cpu and cpu.get("gen_cpu_pct") is not None:
            gen_cpu = f"{cpu['gen_cpu_pct']:.0f}%"
            if cpu.get("other_cpu_pct", 0) >= OTHER_LOAD_PCT:
                gen_cpu += f" (other load {cpu['other_cpu_pct']:.0f}%!)"
            if cpu.get("stolen_cpu_pct", 0) >= OTHER_LOAD_PCT:
                gen_cpu += f" (stolen {cpu['stolen_cpu_pct']:.0f}%!)"
        g, ok = goal(key, value if goal_value is None else goal_value(parley))
        rows.append((name, fmt(value, unit), cells[0], cells[1], gen_cpu, g, ok))

    def step(data: dict[str, Any], target: int) -> dict[str, Any]:
        for s in data.get("steps", []):
            if s.get("target_deliveries_per_s", s.get("target_msgs_per_s")) == target:
                return dict(s)
        return {}

    w1 = results.get("W1", {}).get("parley")
    if w1:
        n = w1["connections"]
        add(
            f"W1 idle {n:,} conns: RSS per connection",
            "W1.kb_per_conn",
            lambda r: r["kb_per_conn"],
            " KB",
            lambda r: r["ramp_cpu"],
        )
        add(
            "W1 idle: server CPU while idle",
            "W1.idle_cpu",
            lambda r: r["idle_server_cpu_pct"],
            " %",
            lambda r: r,
        )
        add(
            "W1 idle: heartbeat p99",
            "W1.hb_p99",
            lambda r: r["hb"]["p99_ms"],
            " ms",
            lambda r: r,
        )
        add("W1 idle: drops", "W1.drops", lambda r: r["drops"], "")
    add(
        "W2 fan-out 100x10: highest sustained",
        "W2.sustained",
        lambda r: r.get("sustained_deliveries_per_s"),
        "/s",
        lambda r: r["steps"][-1] if r["steps"] else {},
    )
    add(
        "W2 fan-out: highest with p99 < 100 ms, 0 loss",
        "W2.within_goal",
        lambda r: r.get("within_goal_deliveries_per_s"),
        "/s",
        lambda r: r["steps"][-1] if r["steps"] else {},
    )
    for k in (2, 10):
        add(
            f"W2 fan-out at {k}k/s: p50",
            f"W2.p50_{k}k",
            lambda r, k=k: step(r, k * 1000).get("latency", {}).get("p50_ms"),
            " ms",
            lambda r, k=k: step(r, k * 1000),
        )
        add(
            f"W2 fan-out at {k}k/s: p99",
            f"W2.p99_{k}k",
            lambda r, k=k: step(r, k * 1000).get("latency", {}).get("p99_ms"),
            " ms",
            lambda r, k=k: step(r, k * 1000),
        )
        add(
            f"W2 fan-out at {k}k/s: loss",
            f"W2.loss_{k}k",
            lambda r, k=k: step(r, k * 1000).get("loss_pct"),
            " %",
            lambda r, k=k: step(r, k * 1000),
        )
    add(
        "W2 1x2,000 room at 5 msg/s: spread p99",
        "W2.spread",
        lambda r: r["big_room"]["spread_p99_ms"],
        " ms",
        lambda r: r["big_room"],
    )
    w3r = results.get("W3", {}).get("parley")
    if w3r:
        for s in w3r["steps"]:
            rate = s["target_msgs_per_s"]
            key = "W3.ack_p99_3000" if rate == 3000 else "W3.ack"
            add(
                f"W3 1:1 at {rate:,} msg/s: ack p99 / delivery p99",
                key,
                lambda r, s=s: s["ack"]["p99_ms"],
                " ms",
                lambda r, s=s: s,
            )
            rows[-1] = (
                *rows[-1][:1],
                f"{fmt(s['ack']['p99_ms'], ' ms')} / {fmt(s['latency']['p99_ms'], ' ms')}",
                *rows[-1][2:],
            )
        add(
            "W3 rows stored / acks / pushes",
            "W3.rows",
            lambda r: f"{r['rows_stored']} / {r['acked_total']} / {r.get('sent_total')}",
            "",
        )
    w4r = results.get("W4", {}).get("parley")
    if w4r:
        add(
            "W4 bystander hb p99, baseline",
            "W4.base",
            lambda r: r["baseline"]["hb"]["p99_ms"],
            " ms",
            lambda r: r["baseline"],
        )
        for phase, name in (
            ("steady", f"{w4r.get('steady', {}).get('rate')} logins/s"),
            ("burst", f"a burst of {w4r.get('burst', {}).get('logins')} logins"),
            ("reconnect", f"{w4r.get('reconnect', {}).get('connections', 0):,} reconnects"),
        ):
            if w4r.get(phase):
                add(
                    f"W4 bystander hb p99 during {name}",
                    "W4.bystander_p99",
                    lambda r, p=phase: r[p]["hb"]["p99_ms"],
                    " ms",
                    lambda r, p=phase: r[p],
                )
        add("W4 login p99 (burst)", "W4.login", lambda r: r["burst"]["login"]["p99_ms"], " ms")
        if w4r.get("failed_logins"):
            add(
                "W4 failed login p50: unknown e-mail / wrong password",
                "W4.unknown_vs_wrong",
                lambda r: r["failed_logins"]["unknown_vs_wrong"],
                "",
                lambda r: r["failed_logins"],
            )
        add(
            f"W4 {w4r['reconnect']['connections']:,} reconnects + joins: all settled in",
            "W4.reconnect_s",
            lambda r: r["reconnect"]["elapsed_s"],
            " s",
            lambda r: r["reconnect"],
        )
        add(
            "W4 reconnects joined (20-s join timeout)",
            "W4.reconnect_joined",
            lambda r: r["reconnect"]["joined"],
            f" of {w4r['reconnect']['connections']:,}",
            lambda r: r["reconnect"],
            goal_value=lambda r: r["reconnect"]["joined"] - r["reconnect"]["connections"],
        )
    w6r = results.get("W6", {}).get("parley")
    if w6r:
        for s in w6r["steps"]:
            add(
                f"W6 search {w6r['listings']:,} listings at {s['target_per_s']:,}/s: p99",
                "W6.p99_500" if s["target_per_s"] == 500 else "W6.step",
                lambda r, s=s: s["latency"]["p99_ms"],
                " ms",
                lambda r, s=s: s,
            )
        add(
            "W6 search: highest rate with p99 < 50 ms",
            "W6.sustained",
            lambda r: r["sustained_per_s"],
            "/s",
            lambda r: r["steps"][-1] if r["steps"] else {},
        )
    w7r = results.get("W7", {}).get("parley")
    if w7r:
        for s in w7r["steps"]:
            add(
                f"W7 triggers {w7r['channels']}x{w7r['subscribers']} at {s['target_per_s']:,}/s: "
                "delivery p99",
                "W7.step",
                lambda r, s=s: s["latency"]["p99_ms"],
                " ms",
                lambda r, s=s: s,
            )
        add(
            "W7 triggers: highest with p99 < 50 ms, 0 loss",
            "W7.sustained",
            lambda r: r["sustained_per_s"],
            "/s",
            lambda r: r["steps"][-1] if r["steps"] else {},
        )
        add(
            "W7 triggers: server CPU per trigger",
            "W7.cpu",
            lambda r: r["cpu_us_per_trigger"],
            " µs",
        )
    w5r = results.get("W5", {}).get("parley")
    if w5r:
        add("W5 writer batched (in-process)", "W5.b", lambda r: r["batched_msgs_per_s"], "/s")
        add("W5 writer unbatched (in-process)", "W5.u", lambda r: r["unbatched_msgs_per_s"], "/s")
    if not rows:
        return ""
    header = (
        "Figure",
        "Parley",
        "bare trio hub (ratio)",
        "python-socketio (ratio)",
        "gen CPU",
        "Goal",
        "",
    )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "| " + " | ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    for r in rows:
        lines.append(
            "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------


WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7")


def pusher_workloads() -> Any:
    """bench/pusher_bench.py (P1-P4), imported when needed: it imports this module."""
    import pusher_bench

    return pusher_bench


def print_saved_table(paths: list[str]) -> int:
    """The table of saved result files, merged in order (a later file's workloads win)."""
    results: dict[str, Any] = {}
    for path in paths:
        document = json.loads(Path(path).read_text())
        for workload, per in document["results"].items():
            results.setdefault(workload, {}).update(per)
        print(
            f"{path}: {document['date']} commit {document['commit']}"
            f"{' + local changes' if document['dirty'] else ''} ({document['mode']}), "
            f"{document['machine']['cpu']}, {document['machine']['cores']} cores"
        )
    print(f"\n{table(results)}")
    print(f"\n{pusher_workloads().table(results)}")
    return 0


async def main(args: argparse.Namespace, speed: dict[str, float]) -> int:
    pusher_bench = pusher_workloads()
    everything = (*WORKLOADS, *pusher_bench.WORKLOADS)
    only = [w.upper() for w in args.only] or list(everything)
    if "P" in only:  # --only P: all the Pusher workloads
        only = [w for w in only if w != "P"] + list(pusher_bench.WORKLOADS)
    unknown = set(only) - set(everything)
    if unknown:
        raise SystemExit(f"unknown workload(s): {', '.join(sorted(unknown))}")
    run_dir = Path(tempfile.mkdtemp(prefix="parley-bench-"))
    run = Run(args, run_dir)
    started = time.monotonic()
    info = {**machine(), "speed": speed}
    commit = git("rev-parse", "--short", "HEAD") or "nogit"
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    print(
        f"Parley bench {'(quick) ' if args.quick else ''}{'(large) ' if args.large else ''}"
        f"commit {commit}{' + local changes' if dirty else ''} on {info['cpu']}, "
        f"{info['cores']} cores, {info['memory_mb']:,} MB; logs in {run_dir}",
        flush=True,
    )
    print(f"host speed: {speed_text(speed)}", flush=True)
    print(f"load average at the start: {loadavg_text()}", flush=True)
    print(
        "load: Node worker processes, official phoenix 1.8.16 client over ws 8.18.3 "
        "(socket.io-client 4.8.1 for python-socketio; pusher-js 8.6.0 for P1-P4)",
        flush=True,
    )
    peers = [] if args.no_peers else ["hub", "socketio"]
    failures: dict[str, str] = {}
    plan: list[tuple[str, str, Callable[[], Any]]] = []
    if "W5" in only:
        plan.append(("W5", "parley", lambda: w5(run)))
    if "W2" in only:
        for kind in [*peers, "parley"]:
            plan.append(("W2", kind, lambda kind=kind: w2(run, kind)))
    if "W1" in only:
        for kind in [*peers, "parley"]:
            plan.append(("W1", kind, lambda kind=kind: w1(run, kind)))
    if "W3" in only:
        plan.append(("W3", "parley", lambda: w3(run)))
    if "W4" in only:
        plan.append(("W4", "parley", lambda: w4(run)))
    if "W6" in only:
        plan.append(("W6", "parley", lambda: w6(run)))
    if "W7" in only:
        plan.append(("W7", "parley", lambda: w7(run)))
    plan += pusher_bench.plan(run, only, peers=not args.no_peers)
    timings: dict[str, float] = {}
    for workload, kind, fn in plan:
        began = time.monotonic()
        try:
            run.results.setdefault(workload, {})[kind] = await fn()
        except Exception as error:  # one failed workload must not lose the others' figures
            failures[f"{workload}/{kind}"] = f"{type(error).__name__}: {error}"
            label = LABELS.get(kind) or pusher_bench.LABELS[kind]
            print(f"{workload} {label}: FAILED: {error}", flush=True)
        timings[f"{workload}/{kind}"] = round(time.monotonic() - began, 1)
    document = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "dirty": dirty,
        "mode": "quick" if args.quick else ("large" if args.large else "default"),
        "only": only,
        "machine": info,
        "load_generator": "Node worker processes (bench/node/worker.mjs): phoenix 1.8.16 over "
        "ws 8.18.3; socket.io-client 4.8.1 against python-socketio; pusher-js 8.6.0 "
        "(bench/node/pusher_worker.mjs) for P1-P4",
        "loadavg": {"start": info["loadavg"], "end": list(os.getloadavg())},
        "seeding": "W1-W3: Parley with argon2id m=1024 KiB t=1 for seeding speed; W4 default",
        "elapsed_s": round(time.monotonic() - started, 1),
        "workload_seconds": timings,
        "results": run.results,
        "failures": failures,
    }
    text = "\n\n".join(t for t in (table(run.results), pusher_bench.table(run.results)) if t)
    document["table"] = text
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        day = datetime.date.today().isoformat()
        suffix = "-quick" if args.quick else ("-large" if args.large else "")
        if args.only:
            suffix += "-" + "-".join(only)
        path = RESULTS / f"{day}-{commit}{suffix}.json"
        path.write_text(json.dumps(document, indent=2, default=str) + "\n")
        print(f"\nwrote {path.relative_to(ROOT)}")
    print(f"\n{text}\n")
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_mb']:,} MB, Linux "
        f"{info['kernel']}, Python {info['python']}, Node {info['node']}; "
        f"{document['elapsed_s']} s"
    )
    print(f"host speed: {speed_text(speed)}")
    print(f"load average: {loadavg_text()} at the end (1, 5, 15 min; 2 cores)")
    print("seconds per workload:", ", ".join(f"{k} {v}" for k, v in timings.items()))
    if failures:
        print("failed:", json.dumps(failures, indent=2))
        return 1
    shutil.rmtree(run_dir, ignore_errors=True)
    return 0


def cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--large", action="store_true", help="W1 at 19,000 connections")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="W2",
        help="run only this workload (repeatable; P: all of P1-P4)",
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run of everything")
    parser.add_argument("--no-peers", action="store_true", help="Parley only, no peer servers")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    parser.add_argument(
        "--table", nargs="+", metavar="JSON", help="only print the table of saved result files"
    )
    args = parser.parse_args()
    if args.table:
        sys.exit(print_saved_table(args.table))
    missing = [d for d in (NODE_DIR / "node_modules",) if not d.is_dir()]
    if missing:
        sys.exit(
            f"{missing[0]} is missing: run the benchmarks with `make bench`, which installs it"
        )
    wants_pusher = not args.only or any(w.upper().startswith("P") for w in args.only)
    if wants_pusher and (why := pusher_workloads().installed()):
        sys.exit(why)
    sys.exit(trio.run(main, args, host_speed()))


if __name__ == "__main__":
    cli()
