"""The Pusher workloads of `make bench` (P1-P4): Parley's Pusher socket beside soketi 1.6.1.

bench/run.py runs them (`--only P` for all four, `--only P2` for one); the load is pusher-js
8.6.0 in Node processes (bench/node/pusher_worker.mjs). Each workload runs against soketi first,
then Parley, each server fresh:

* Parley: `parley serve` as for the other workloads (bench/run.py `running`), one application
  made through the REST API with client events on; `pusher.max_presence_members` raised for P4.
* soketi 1.6.1: installed by `make bench` into bench/soketi/node_modules (package.json and lock in
  git; the uWebSockets.js override of PUSHER_PROTOCOL.md §11), never vendored, run as its own
  `node .../bin/server.js start --config=FILE` with one app (client events on, 10 per second per
  connection like Pusher and Parley), its cluster discovery pinned to 127.0.0.1, its presence
  bound raised for P4 like Parley's.

P1 triggers: 100 public channels x 10 subscribers; signed `POST /apps/{id}/events` (the Pusher
   HTTP API, body_md5 and all) open loop from 3 processes, round robin over the channels.
P2 client events: 100 private channels x 10 subscribers, every subscriber sends `client-bench`
   in turn (not echoed: 9 deliveries each).
   Both step up deliveries/s (10-s steps) until a step misses p99 < 100 ms with no loss and no
   error (twice: a failed step is tried once more after a pause, the machine is shared); the
   figure is the highest step that made it.
P3 idle: 5,000 connections ramped at 500/s, each subscribed to a public channel (groups of 10),
   held; server RSS delta / connections, idle CPU, drops.
P4 presence churn: an observer on `presence-churn`, then 1,000 users join (100/s), 500
   leave-and-rejoin (50/s, 200 ms apart), then all disconnect (100/s). Every connection keeps its
   own member set from the raw frames; correct = no member_added for a member it already has, no
   member_removed for one it has not, every subscription_succeeded consistent, and after each
   phase every connection sees exactly the members there are (1,001, then the observer alone).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import math
import secrets
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trio

import run as bench

SOKETI_DIR = bench.BENCH / "soketi"
SOKETI_SERVER = SOKETI_DIR / "node_modules" / "@soketi" / "soketi" / "bin" / "server.js"
WORKER = "pusher_worker.mjs"
LABELS = {"parley": "Parley", "soketi": "soketi 1.6.1"}
WORKLOADS = ("P1", "P2", "P3", "P4")
GOAL_P99_MS = 100.0

FULL: dict[str, Any] = {
    "channels": 100, "members": 10, "step_s": 10, "drain_ms": 2_500, "procs": 3,
    "steps": [2_000, 5_000, 10_000, 15_000, 20_000, 25_000, 30_000, 40_000, 50_000, 60_000,
              80_000],
    "p3_conns": 5_000, "p3_rate": 500, "p3_hold_s": 30,
    "p4_users": 1_000, "p4_rate": 100, "p4_churn_rate": 50, "p4_churn_s": 10, "p4_gap_ms": 200,
    "settle_s": 2.0, "warm_s": 2.0, "pause_s": 3.0, "p4_settle_limit_s": 20,
}  # fmt: skip
QUICK: dict[str, Any] = {
    "channels": 10, "members": 10, "step_s": 1.5, "drain_ms": 500, "procs": 2,
    "steps": [1_000, 2_000],
    "p3_conns": 200, "p3_rate": 400, "p3_hold_s": 2,
    "p4_users": 50, "p4_rate": 50, "p4_churn_rate": 20, "p4_churn_s": 1, "p4_gap_ms": 200,
    "settle_s": 0.3, "warm_s": 0.3, "pause_s": 0.2, "p4_settle_limit_s": 10,
}  # fmt: skip


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
    """The status of one signed trigger: 404 where the server has no Pusher HTTP API."""
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


def step_figures(
    answers: list[dict[str, Any]], cpu: dict[str, float], accepted: int, per_message: int
) -> dict[str, Any]:
    received = sum(a["recv"] for a in answers)
    send_s = max(a["send_elapsed_s"] for a in answers)
    expected = accepted * per_message
    return {
        "sent": sum(a["sent"] for a in answers),
        "accepted": accepted,
        "deliveries": received,
        "deliveries_per_s": round(received / send_s, 1) if send_s else 0,
        "loss_pct": round(100 * (1 - received / expected), 3) if expected else 0.0,
        "latency": bench.merged([a["lat"] for a in answers]).summary(),
        "gen_loop_delay_p99_ms": round(max(a["loop"]["p99"] for a in answers), 1),
        **cpu,
    }


async def trigger_step(
    run: bench.Run, pool: list[bench.Worker], found: Server, name: str, rate: float, seconds: float
) -> dict[str, Any]:
    """Signed HTTP triggers at `rate`/s (messages, each to one channel of `members`)."""
    p = settings(run)
    shares = bench.split([f"bench-{c}" for c in range(p["channels"])], len(pool))
    window = bench.cpu_window(found.target, pool).start()
    commands = [
        {"cmd": "trigger", **found.conn_args(), "app_id": found.app.app_id, "channels": share,
         "rate": rate / len(pool), "duration_s": seconds, "step": name,
         "drain_ms": p["drain_ms"]}
        for share in shares
    ]  # fmt: skip
    answers = await bench.call_all(pool, commands, limit_s=seconds + p["drain_ms"] / 1000 + 60)
    cpu = window.stop()
    status: dict[str, int] = {}
    for answer in answers:
        for code, n in answer["status"].items():
            status[code] = status.get(code, 0) + n
    accepted = sum(n for code, n in status.items() if code.startswith("2"))
    sent = sum(a["sent"] for a in answers)
    figures = step_figures(answers, cpu, accepted, p["members"])
    return {
        **figures,
        "status": status,
        "errors": sent - accepted + sum(a["skipped"] for a in answers),
        "achieved_msgs_per_s": round(sent / max(a["send_elapsed_s"] for a in answers), 1),
        "http": bench.merged([a["http"] for a in answers]).summary(),
    }


async def client_event_step(
    run: bench.Run, pool: list[bench.Worker], found: Server, name: str, rate: float, seconds: float
) -> dict[str, Any]:
    """Client events at `rate`/s from every subscriber in turn; each reaches the other members."""
    p = settings(run)
    window = bench.cpu_window(found.target, pool).start()
    command = {"cmd": "step", "step": name, "rate": rate / len(pool), "duration_s": seconds,
               "drain_ms": p["drain_ms"]}  # fmt: skip
    answers = await bench.call_all(pool, command, limit_s=seconds + p["drain_ms"] / 1000 + 60)
    cpu = window.stop()
    sent = sum(a["sent"] for a in answers)
    refused = sum(a["refused"] for a in answers)
    figures = step_figures(answers, cpu, sent - refused, p["members"] - 1)
    send_s = max(a["send_elapsed_s"] for a in answers)
    return {
        **figures,
        "errors": refused,
        "achieved_msgs_per_s": round(sent / send_s, 1) if send_s else 0,
    }


def settings(run: bench.Run) -> dict[str, Any]:
    return QUICK if run.quick else FULL


def text_of(s: dict[str, Any]) -> str:
    return (
        f"p50 {s['latency']['p50_ms']:.1f} p99 {s['latency']['p99_ms']:.1f} ms  loss "
        f"{s['loss_pct']:.3f}%  errors {s['errors']}  {bench.server_text(s)}"
    )


# --------------------------------------------------------------------------------------------
# P1 and P2: fan-out


async def fan_out(run: bench.Run, kind: str, workload: str) -> dict[str, Any]:
    p = settings(run)
    channels, members = p["channels"], p["members"]
    result: dict[str, Any] = {"channels": channels, "members": members, "step_s": p["step_s"],
                              "steps": []}  # fmt: skip
    by_client = workload == "P2"
    prefix = "private-bench-" if by_client else "bench-"
    step_fn = client_event_step if by_client else trigger_step
    per_message = members - 1 if by_client else members
    title = "P2 client ev" if by_client else "P1 triggers "
    async with server(kind, run.run_dir) as found:
        if not by_client:
            status = await events_api_status(found)
            result["events_api_status"] = status
            if status == 404:
                result["available"] = False
                print(f"{title}  {found.label:16} not available: POST /apps/{{id}}/events is 404")
                return result
        result["available"] = True
        specs = [
            {"channels": [f"{prefix}{c}"], **({"send": f"{prefix}{c}"} if by_client else {})}
            for c in range(channels)
            for _ in range(members)
        ]
        async with bench.workers(p["procs"], run.run_dir, WORKER) as pool:
            opened = await open_pusher(pool, found, specs, 500)
            result["connected"] = opened["ok"]
            if opened["failed"]:
                result["connect_fail_reasons"] = opened["reasons"]
            await step_fn(run, pool, found, "warm", 100, p["warm_s"])  # not counted: JIT, caches
            best: dict[str, Any] | None = None
            for deliveries in p["steps"]:
                s: dict[str, Any] = {}
                for attempt in (1, 2):
                    await trio.sleep(p["pause_s"] * attempt)
                    rate = deliveries / per_message
                    s = await step_fn(run, pool, found, f"d{deliveries}a{attempt}", rate,
                                      p["step_s"])  # fmt: skip
                    generator_bound = s["achieved_msgs_per_s"] < 0.9 * rate
                    s.update(
                        target_deliveries_per_s=deliveries,
                        attempt=attempt,
                        generator_bound=generator_bound,
                        passed=s["latency"]["p99_ms"] < GOAL_P99_MS
                        and s["loss_pct"] <= 0
                        and s["errors"] == 0
                        and not generator_bound,
                    )
                    result["steps"].append(s)
                    print(
                        f"{title}  {found.label:16} target {deliveries:>6}/s -> "
                        f"{s['deliveries_per_s']:>8.0f} deliveries/s  {text_of(s)}  | "
                        f"{bench.gen_text(s, len(pool))}"
                        f"{'  GENERATOR-BOUND' if generator_bound else ''}"
                        f"{'' if s['passed'] else '  (missed the bar)'}",
                        flush=True,
                    )
                    if s["passed"]:
                        break
                if not s["passed"]:
                    break
                best = s
            result["state"] = await worker_state(pool)
    result["best"] = best
    result["within_goal_deliveries_per_s"] = best["deliveries_per_s"] if best else 0.0
    print(
        f"{title}  {LABELS[kind]:16} highest with p99 < 100 ms and no loss: "
        f"{result['within_goal_deliveries_per_s']:,.0f} deliveries/s",
        flush=True,
    )
    return result


# --------------------------------------------------------------------------------------------
# P3 idle connections


async def p3(run: bench.Run, kind: str) -> dict[str, Any]:
    p = settings(run)
    n = p["p3_conns"]
    procs = max(2, math.ceil(n / 2_500))
    async with (
        server(kind, run.run_dir) as found,
        bench.workers(procs, run.run_dir, WORKER) as pool,
    ):
        # One connection first, so lazily made state (the app cache, first-use imports) is not
        # counted per connection.
        await open_pusher(pool[:1], found, [{"channels": ["warm"]}], 10)
        await trio.sleep(p["settle_s"])
        pid = found.target.proc.pid
        rss_before = bench.rss_bytes(pid)
        window = bench.cpu_window(found.target, pool).start()
        specs = [{"channels": [f"idle-{i // 10}"]} for i in range(n)]
        opened = await open_pusher(pool, found, specs, p["p3_rate"])
        ramp_cpu = window.stop()
        await trio.sleep(p["settle_s"] * 1.5)
        rss_after = bench.rss_bytes(pid)
        window = bench.cpu_window(found.target, pool).start()
        await trio.sleep(p["p3_hold_s"])
        cpu = window.stop()
        state = await worker_state(pool)
        rss_end = bench.rss_bytes(pid)
    result = {
        "connections": n,
        "connected": opened["ok"],
        "connect_fail_reasons": opened["reasons"],
        "ramp_s": opened["elapsed_s"],
        "join": opened["join"],
        "ramp_cpu": ramp_cpu,
        "rss_before_mb": round(rss_before / 2**20, 1),
        "rss_after_mb": round(rss_after / 2**20, 1),
        "rss_end_mb": round(rss_end / 2**20, 1),
        "kb_per_conn": round((rss_after - rss_before) / 1024 / max(opened["ok"], 1), 1),
        "kb_per_conn_end": round((rss_end - rss_before) / 1024 / max(opened["ok"], 1), 1),
        "idle_server_cpu_pct": cpu["server_cpu_pct"],
        "hold_s": p["p3_hold_s"],
        "drops": state["drops"] + opened["failed"],
        "open_at_end": state["open"] - 1,
        **cpu,
    }
    print(
        f"P3 idle       {LABELS[kind]:16} {opened['ok']:>6}/{n} conns  RSS "
        f"{result['kb_per_conn']:6.1f} KB/conn ({result['kb_per_conn_end']:.1f} after "
        f"{p['p3_hold_s']} s)  idle {bench.server_text(cpu)}  drops {result['drops']}  ramp "
        f"{opened['elapsed_s']} s  | {bench.gen_text(ramp_cpu, procs)} in ramp",
        flush=True,
    )
    return result


# --------------------------------------------------------------------------------------------
# P4 presence churn

CHANNEL = "presence-churn"


async def presence_views(pool: list[bench.Worker]) -> dict[str, Any]:
    answers = await bench.call_all(pool, {"cmd": "presence", "channel": CHANNEL}, limit_s=30)
    counts: dict[str, int] = {}
    anomalies = {"dup_added": 0, "absent_removed": 0, "bad_succeeded": 0}
    examples: list[dict[str, Any]] = []
    merged: dict[str, dict[str, Any]] = {"joined_at": {}, "left_at": {}}
    observer: dict[str, Any] = {}
    for answer in answers:
        for count, n in answer["counts"].items():
            counts[count] = counts.get(count, 0) + n
        for kind in anomalies:
            anomalies[kind] += answer["anomalies"][kind]
        examples += answer["anomalies"]["examples"]
        merged["joined_at"].update(answer["joined_at"])
        merged["left_at"].update(answer["left_at"])
        if answer["observer_count"] is not None:
            observer = answer
    return {
        "counts": counts,
        "anomalies": anomalies,
        "examples": examples[:10],
        "observer_count": observer.get("observer_count"),
        "first_added": observer.get("first_added", {}),
        "last_removed": observer.get("last_removed", {}),
        **merged,
    }


async def settle(pool: list[bench.Worker], want: int, limit_s: float) -> dict[str, Any]:
    """Presence views once the observer sees `want` members (or after limit_s)."""
    deadline = trio.current_time() + limit_s
    while True:
        views = await presence_views(pool)
        if views["observer_count"] == want or trio.current_time() > deadline:
            return views
        await trio.sleep(0.1)


def hist_of(values: list[float]) -> bench.Hist:
    """A histogram of millisecond values, bucketed as the workers bucket theirs."""
    hist = bench.Hist()
    for ms in values:
        key = math.ceil(math.log(max(ms, 0.01) / 0.01) / math.log(1.01))
        hist.buckets[key] = hist.buckets.get(key, 0) + 1
        hist.n += 1
        hist.sum += ms
        hist.max = max(hist.max, ms)
    return hist


def since(later: dict[str, float], earlier: dict[str, float]) -> bench.Hist:
    """Per user, `later` - `earlier` (users in both)."""
    return hist_of([at - earlier[user] for user, at in later.items() if user in earlier])


async def p4(run: bench.Run, kind: str) -> dict[str, Any]:
    p = settings(run)
    users, limit = p["p4_users"], p["p4_settle_limit_s"]
    checks: list[dict[str, Any]] = []

    def check(phase: str, views: dict[str, Any], want: int, connections: int) -> None:
        ok = views["counts"] == {str(want): connections}
        checks.append({"phase": phase, "want": want, "connections": connections,
                       "counts": views["counts"], "ok": ok})  # fmt: skip

    async with (
        server(kind, run.run_dir) as found,
        bench.workers(2, run.run_dir, WORKER) as pool,
    ):
        observer = {"channels": [CHANNEL], "user": "observer", "observer": True}
        await open_pusher(pool[:1], found, [observer], 10)
        specs = [{"channels": [CHANNEL], "user": f"u{i}"} for i in range(users)]
        window = bench.cpu_window(found.target, pool).start()
        opened = await open_pusher(pool, found, specs, p["p4_rate"])
        joined = await settle(pool, users + 1, limit)
        join_cpu = window.stop()
        check("joined", joined, users + 1, opened["ok"] + 1)
        sent_at = {u: v[0] for u, v in joined["joined_at"].items()}
        added = since(joined["first_added"], sent_at)
        succeeded = since({u: v[1] for u, v in joined["joined_at"].items() if v[1]}, sent_at)
        churn = {"cmd": "churn", "channel": CHANNEL, "rate": p["p4_churn_rate"] / len(pool),
                 "duration_s": p["p4_churn_s"], "gap_ms": p["p4_gap_ms"]}  # fmt: skip
        await bench.call_all(pool, churn, limit_s=p["p4_churn_s"] + 60)
        churned = await settle(pool, users + 1, limit)
        check("churned", churned, users + 1, opened["ok"] + 1)
        await bench.call_all(pool, {"cmd": "leave", "rate": p["p4_rate"] / len(pool)},
                             limit_s=users / p["p4_rate"] + 60)  # fmt: skip
        left = await settle(pool, 1, limit)
        check("left", left, 1, 1)
        removed = since(left["last_removed"], left["left_at"])
        state = await worker_state(pool)
    anomalies = left["anomalies"]
    correct = (
        all(c["ok"] for c in checks)
        and not any(anomalies.values())
        and opened["failed"] == 0
        and not state["sub_errors"]
        and state["drops"] == 0
    )
    result = {
        "users": users,
        "joined": opened["ok"],
        "join_failed": opened["failed"],
        "join_fail_reasons": opened["reasons"],
        "checks": checks,
        "anomalies": anomalies,
        "anomaly_examples": left["examples"],
        "sub_errors": state["sub_errors"],
        "drops": state["drops"],
        "correct": correct,
        "subscribe_p99_ms": bench.rnd(succeeded.pct(99)),
        "member_added": added.summary(),
        "member_removed": removed.summary(),
        **join_cpu,
    }
    print(
        f"P4 presence   {LABELS[kind]:16} {users} users: {'correct' if correct else 'WRONG'}  "
        f"checks {' '.join(c['phase'] + ('=ok' if c['ok'] else '=' + json.dumps(c['counts'])) for c in checks)}  "  # noqa: E501
        f"anomalies {json.dumps(anomalies)}  subscribe p99 {result['subscribe_p99_ms']} ms  "
        f"member_added p99 {added.summary()['p99_ms']} ms  member_removed p99 "
        f"{removed.summary()['p99_ms']} ms  {bench.server_text(join_cpu)} in joins",
        flush=True,
    )
    if anomalies and any(anomalies.values()):
        print(f"P4 presence   {LABELS[kind]:16} examples: {json.dumps(left['examples'][:5])}")
    return result


# --------------------------------------------------------------------------------------------
# Plan and table


def plan(run: bench.Run, only: list[str], peers: bool) -> list[tuple[str, str, Callable[[], Any]]]:
    kinds = ["soketi", "parley"] if peers else ["parley"]
    steps: list[tuple[str, str, Callable[[], Any]]] = []
    for workload in WORKLOADS:
        if workload not in only:
            continue
        for kind in kinds:
            if workload in ("P1", "P2"):
                steps.append((workload, kind, lambda k=kind, w=workload: fan_out(run, k, w)))
            elif workload == "P3":
                steps.append((workload, kind, lambda k=kind: p3(run, k)))
            else:
                steps.append((workload, kind, lambda k=kind: p4(run, k)))
    return steps


def table(results: dict[str, Any]) -> str:
    """Parley beside soketi: one row per figure, the ratio, and the issue's goal."""
    rows: list[tuple[str, ...]] = []

    def add(
        name: str,
        workload: str,
        get: Callable[[dict[str, Any]], Any],
        unit: str,
        goal: str = "",
        check: Callable[[Any, Any], bool] | None = None,
    ) -> None:
        per = results.get(workload, {})
        parley, peer = per.get("parley"), per.get("soketi")
        if parley is None and peer is None:
            return
        mine = get(parley) if parley else None
        theirs = get(peer) if peer else None
        ratio = bench.ratio(mine, theirs).strip(" ()")
        verdict = ""
        if check is not None and mine is not None:
            verdict = "pass" if check(mine, theirs) else "FAIL"
        load = ""
        for r in (parley, peer):
            if r and r.get("best", r).get("other_cpu_pct", 0) >= bench.OTHER_LOAD_PCT:
                load = "other load!"
        rows.append((name, bench.fmt(mine, unit), bench.fmt(theirs, unit), ratio, load, goal,
                     verdict))  # fmt: skip

    def best(key: str) -> Callable[[dict[str, Any]], Any]:
        def get(r: dict[str, Any]) -> Any:
            if not r.get("available", True):
                return "not available"
            b = r.get("best") or {}
            return b.get("latency", {}).get(key) if key.endswith("_ms") else b.get(key)

        return get

    def at_least(mine: Any, theirs: Any) -> bool:
        return isinstance(mine, float | int) and (not theirs or mine >= theirs)

    for workload, name in (("P1", "P1 triggers 100x10"), ("P2", "P2 client events 100x10")):
        add(f"{name}: deliveries/s, p99 < 100 ms, 0 loss", workload,
            lambda r: r.get("within_goal_deliveries_per_s") if r.get("available", True)
            else "not available", "/s", ">= 1.0x soketi", at_least)  # fmt: skip
        add(f"{name}: p99 there", workload, best("p99_ms"), " ms")
        add(f"{name}: loss there", workload, best("loss_pct"), " %")
        add(f"{name}: server CPU there", workload, best("server_cpu_pct"), " %")
    add("P3 5,000 idle: RSS per connection", "P3", lambda r: r["kb_per_conn"], " KB",
        "<= soketi", lambda m, t: t is None or m <= t)  # fmt: skip
    add("P3 idle: server CPU", "P3", lambda r: r["idle_server_cpu_pct"], " %")
    add("P3 idle: drops", "P3", lambda r: r["drops"], "")
    add("P4 presence churn 1,000 users: correct", "P4",
        lambda r: "yes" if r["correct"] else "NO", "", "correct",
        lambda m, t: m == "yes")  # fmt: skip
    add("P4: subscribe -> succeeded p99", "P4", lambda r: r["subscribe_p99_ms"], " ms")
    add("P4: join -> observer's member_added p99", "P4", lambda r: r["member_added"]["p99_ms"],
        " ms")  # fmt: skip
    add("P4: leave -> observer's member_removed p99", "P4",
        lambda r: r["member_removed"]["p99_ms"], " ms")  # fmt: skip
    if not rows:
        return ""
    header = ("Figure", "Parley", "soketi 1.6.1", "Parley / soketi", "", "Goal", "")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "| " + " | ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
        for r in rows
    ]
    return "\n".join(lines)


def installed() -> str | None:
    """Why the Pusher workloads cannot run, or None."""
    for path in (SOKETI_SERVER, bench.NODE_DIR / "node_modules" / "pusher-js"):
        if not path.exists():
            return f"{path} is missing: run the benchmarks with `make bench`, which installs it"
    return None
