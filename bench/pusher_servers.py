"""The servers and the pusher-js load of the Pusher workloads (bench/pusher_bench.py).

Parley runs as for the other workloads (bench/run.py `running`) with one application made through
the REST API, client events on; soketi 1.6.1 runs from bench/soketi/node_modules (installed by
`make bench`, never vendored) with one app configured alike. Both get their presence bound
raised to 2,000 members for P4. The load processes are bench/node/pusher_worker.mjs.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import run as bench

SOKETI_DIR = bench.BENCH / "soketi"
SOKETI_SERVER = SOKETI_DIR / "node_modules" / "@soketi" / "soketi" / "bin" / "server.js"
WORKER = "pusher_worker.mjs"
LABELS = {"parley": "Parley", "soketi": "soketi 1.6.1"}

FULL: dict[str, Any] = {
    "channels": 100, "members": 10, "step_s": 10, "drain_ms": 2_500, "procs": 3,
    "steps": [2_000, 5_000, 10_000, 15_000, 20_000, 25_000, 30_000, 40_000, 50_000, 60_000,
              80_000, 100_000, 120_000],
    "p3_conns": 5_000, "p3_rate": 500, "p3_hold_s": 30,
    "p4_users": 1_000, "p4_rate": 100, "p4_churn_rate": 50, "p4_churn_s": 10, "p4_gap_ms": 200,
    "settle_s": 2.0, "warm_s": 2.0, "pause_s": 3.0, "p4_settle_limit_s": 20,
}  # fmt: skip
# Sizes: the by default; --quick is a smoke run of the bench itself.
QUICK: dict[str, Any] = {
    "channels": 10, "members": 10, "step_s": 1.5, "drain_ms": 500, "procs": 2,
    "steps": [1_000, 2_000],
    "p3_conns": 200, "p3_rate": 400, "p3_hold_s": 2,
    "p4_users": 50, "p4_rate": 50, "p4_churn_rate": 20, "p4_churn_s": 1, "p4_gap_ms": 200,
    "settle_s": 0.3, "warm_s": 0.3, "pause_s": 0.2, "p4_settle_limit_s": 10,
}  # fmt: skip


def settings(run: bench.Run) -> dict[str, Any]:
    return QUICK if run.quick else FULL


@dataclass
class PusherApp:
    app_id: str
    key: str
    secret: str


@dataclass
class Server:
    target: bench.Target
    app: PusherApp

    @property
    def label(self) -> str:
        return LABELS[self.target.kind]

    def conn_args(self) -> dict[str, Any]:
        app = self.app
        return {"host": "127.0.0.1", "port": self.target.port, "key": app.key, "secret": app.secret}


# --------------------------------------------------------------------------------------------
# The servers


@contextlib.asynccontextmanager
async def soketi(run_dir: Path) -> AsyncIterator[Server]:
    app = PusherApp("1", secrets.token_hex(10), secrets.token_hex(10))
    port = bench.free_port()
    config = {
        "host": "127.0.0.1",
        "port": port,
        "metrics.host": "127.0.0.1",
        "metrics.port": bench.free_port(),
        # Discovery (node-discover) broadcasts UDP to 255.255.255.255 unless told otherwise.
        "cluster.hostname": "127.0.0.1",
        "cluster.address": "127.0.0.1",
        "cluster.unicast": "127.0.0.1",
        "cluster.port": bench.free_port(),
        "presence.maxMembersPerChannel": 2_000,
        "appManager.array.apps": [
            {
                "id": app.app_id,
                "key": app.key,
                "secret": app.secret,
                "maxConnections": -1,
                "enableClientMessages": True,
                "enabled": True,
                "maxBackendEventsPerSecond": -1,
                "maxClientEventsPerSecond": 10,
                "maxReadRequestsPerSecond": -1,
                "webhooks": [],
            }
        ],
    }
    path = run_dir / f"soketi-{port}.json"
    path.write_text(json.dumps(config))
    log = run_dir / f"soketi-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 - started once, stopped below
            ["node", str(SOKETI_SERVER), "start", f"--config={path}"],
            cwd=SOKETI_DIR,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=bench.raise_nofile,
            start_new_session=True,
        )
    target = bench.Target("soketi", LABELS["soketi"], proc, port, None, log)
    try:
        await bench.wait_ready(target)
        yield Server(target, app)
    finally:
        await bench.stop(target)


async def parley_app(target: bench.Target) -> PusherApp:
    """An application with client events on, made through the REST API by a new user."""
    [owner] = await bench.register_users(target, 1)
    async with httpx.AsyncClient(base_url=target.http, timeout=60) as client:
        auth = {"authorization": f"Bearer {owner.token}"}
        org = await client.post("/api/organizations", json={"name": "Bench"}, headers=auth)
        org.raise_for_status()
        made = await client.post(
            f"/api/organizations/{org.json()['slug']}/applications",
            json={"name": "pusher bench", "client_events": True},
            headers=auth,
        )
        made.raise_for_status()
        body = made.json()
        return PusherApp(str(body["id"]), body["app_key"], body["app_secret"])


@contextlib.asynccontextmanager
async def server(kind: str, run_dir: Path) -> AsyncIterator[Server]:
    if kind == "soketi":
        async with soketi(run_dir) as found:
            yield found
        return
    env = {**bench.CHEAP_ARGON2, "PARLEY_PUSHER_MAX_PRESENCE_MEMBERS": "2000"}
    async with bench.running("parley", run_dir, env) as target:
        yield Server(target, await parley_app(target))


def signed_events_url(found: Server, body: bytes) -> str:
    """The Pusher HTTP API's events URL for `body`, signed (PUSHER_PROTOCOL.md §9)."""
    app = found.app
    path = f"/apps/{app.app_id}/events"
    params = {
        "auth_key": app.key,
        "auth_timestamp": str(int(time.time())),
        "auth_version": "1.0",
        "body_md5": hashlib.md5(body).hexdigest(),
    }
    text = "POST\n" + path + "\n" + "&".join(f"{k}={params[k]}" for k in sorted(params))
    params["auth_signature"] = hmac.new(app.secret.encode(), text.encode(), "sha256").hexdigest()
    return f"{found.target.http}{path}?" + "&".join(f"{k}={v}" for k, v in params.items())


async def events_api_status(found: Server) -> int:
    """The status of one signed trigger (404 where the server has no Pusher HTTP API)."""
    body = json.dumps({"name": "probe", "channel": "probe", "data": "{}"}).encode()
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(
            signed_events_url(found, body),
            content=body,
            headers={"content-type": "application/json"},
        )
    return answer.status_code


# --------------------------------------------------------------------------------------------
# Load


async def open_pusher(
    pool: list[bench.Worker], found: Server, specs: list[dict[str, Any]], rate: float
) -> dict[str, Any]:
    shares = bench.split(specs, len(pool))
    commands = [
        {"cmd": "open", **found.conn_args(), "conns": share,
         "rate": rate * len(share) / max(len(specs), 1)}
        for share in shares
    ]  # fmt: skip
    answers = await bench.call_all(pool, commands, limit_s=len(specs) / rate + 120)
    reasons: dict[str, int] = {}
    for answer in answers:
        for why, count in answer["reasons"].items():
            reasons[why] = reasons.get(why, 0) + count
    return {
        "ok": sum(a["ok"] for a in answers),
        "failed": sum(a["failed"] for a in answers),
        "reasons": reasons,
        "join": bench.merged([a["join"] for a in answers]).summary(),
        "elapsed_s": round(max(a["elapsed_ms"] for a in answers) / 1000, 2),
    }


async def worker_state(pool: list[bench.Worker]) -> dict[str, Any]:
    answers = await bench.call_all(pool, {"cmd": "state"}, limit_s=30)
    errors: dict[str, int] = {}
    for answer in answers:
        for why, count in answer["sub_errors"].items():
            errors[why] = errors.get(why, 0) + count
    return {
        "open": sum(a["open"] for a in answers),
        "drops": sum(a["drops"] for a in answers),
        "sub_errors": errors,
    }


def installed() -> str | None:
    """Why the Pusher workloads cannot run, or None."""
    for path in (SOKETI_SERVER, bench.NODE_DIR / "node_modules" / "pusher-js"):
        if not path.exists():
            return f"{path} is missing: run the benchmarks with `make bench`, which installs it"
    return None
