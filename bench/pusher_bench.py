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

import json
import math
from collections.abc import Callable
from typing import Any

import trio

import run as bench
from pusher_presence import p4
from pusher_servers import (
    LABELS,
    WORKER,
    Server,
    events_api_status,
    installed,
    open_pusher,
    server,
    settings,
    worker_state,
)

WORKLOADS = ("P1", "P2", "P3", "P4")
__all__ = ["LABELS", "WORKLOADS", "installed", "plan", "table"]
GOAL_P99_MS = 100.0


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


def text_of(s: dict[str, Any]) -> str:
    failed = {k: n for k, n in s.get("status", {}).items() if not k.startswith("2")}
    return (
        f"p50 {s['latency']['p50_ms']:.1f} p99 {s['latency']['p99_ms']:.1f} ms  loss "
        f"{s['loss_pct']:.3f}%  errors {s['errors']}{' ' + json.dumps(failed) if failed else ''}"
        f"  {bench.server_text(s)}"
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
            if not 200 <= status < 300:  # 404: no Pusher HTTP API on this server (yet)
                result["available"] = False
                print(
                    f"{title}  {found.label:16} not available: a signed POST /apps/{{id}}/events "
                    f"answers {status}",
                    flush=True,
                )
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
        if mine == "not available":
            verdict = "—"
        elif check is not None and mine is not None:
            verdict = "pass" if check(mine, theirs) else "FAIL"
        load = ""
        for r in (parley, peer):
            if r and (r.get("best") or r).get("other_cpu_pct", 0) >= bench.OTHER_LOAD_PCT:
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
        # Compared by the step held, not by what was counted at it: two servers holding the
        # same step deliver a few messages more or less of the same target.
        add(f"{name}: highest step held, p99 < 100 ms, 0 loss", workload,
            lambda r: (r.get("best") or {}).get("target_deliveries_per_s", 0)
            if r.get("available", True) else "not available", "/s", ">= 1.0x soketi",
            at_least)  # fmt: skip
        add(f"{name}: deliveries/s counted there", workload,
            lambda r: r.get("within_goal_deliveries_per_s") if r.get("available", True)
            else "not available", "/s")  # fmt: skip
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
    header = ("Figure", "Parley", "soketi 1.6.1", "Parley / soketi", "note", "Goal", "")
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
