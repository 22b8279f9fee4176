"""P4 of `make bench`: presence churn on one Pusher presence channel, Parley beside soketi.

An observer subscribes to `presence-churn`, then `p4_users` users join (one pusher-js connection
each, at `p4_rate`/s), `p4_churn_rate`/s of them leave and rejoin for `p4_churn_s` (unsubscribe,
subscribe again `p4_gap_ms` later), then all disconnect. Every connection keeps its own member set
from the raw frames (bench/node/pusher_worker.mjs), so a repeated member_added is seen even where
pusher-js's Members would hide it. Correct = no anomaly (member_added for a member already there,
member_removed for one not there, a subscription_succeeded whose ids repeat, miss the user or
disagree with its count), no failed subscription or drop, and after each phase every connection
sees exactly the members there are.
"""

from __future__ import annotations

import json
import math
from typing import Any

import trio

import run as bench
from pusher_servers import LABELS, WORKER, open_pusher, server, settings, worker_state

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
        "examples": examples,
        "observer_count": observer.get("observer_count"),
        "first_added": observer.get("first_added", {}),
        "last_removed": observer.get("last_removed", {}),
        **merged,
    }


async def settle(
    pool: list[bench.Worker], want: int, connections: int, limit_s: float
) -> dict[str, Any]:
    """Presence views once every one of `connections` sees `want` members (or after limit_s)."""
    deadline = trio.current_time() + limit_s
    while True:
        views = await presence_views(pool)
        if views["counts"] == {str(want): connections} or trio.current_time() > deadline:
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
        joined = await settle(pool, users + 1, opened["ok"] + 1, limit)
        join_cpu = window.stop()
        check("joined", joined, users + 1, opened["ok"] + 1)
        sent_at = {u: v[0] for u, v in joined["joined_at"].items()}
        added = since(joined["first_added"], sent_at)
        succeeded = since({u: v[1] for u, v in joined["joined_at"].items() if v[1]}, sent_at)
        churn = {"cmd": "churn", "channel": CHANNEL, "rate": p["p4_churn_rate"] / len(pool),
                 "duration_s": p["p4_churn_s"], "gap_ms": p["p4_gap_ms"]}  # fmt: skip
        await bench.call_all(pool, churn, limit_s=p["p4_churn_s"] + 60)
        churned = await settle(pool, users + 1, opened["ok"] + 1, limit)
        check("churned", churned, users + 1, opened["ok"] + 1)
        await bench.call_all(pool, {"cmd": "leave", "rate": p["p4_rate"] / len(pool)},
                             limit_s=users / p["p4_rate"] + 60)  # fmt: skip
        left = await settle(pool, 1, 1, limit)
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
        for example in left["examples"]:
            print(f"P4 presence   {LABELS[kind]:16} e.g. {json.dumps(example)}", flush=True)
    return result
