"""Overload drills (W4, W5, W6): a flooding socket, a member that stops reading, silent and dead
clients. The promises: a connection's quota holds and costs the others nothing, a slow consumer
is cut (never allowed to hold a conversation or the server's memory) and recovers what it
missed, and a socket nobody is behind is closed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import psutil
import pytest
import trio

from tests.drills.figures import figure, percentile
from tests.drills.live import start_parley
from tests.drills.load import Sender, Traffic, run_senders
from tests.drills.wire import drill_socket
from tests.socket.conftest import Realtime, User
from tests.socket.rawwire import RawSocket


def ack_latencies(traffic: Traffic) -> list[float]:
    return [ack.acked_at - ack.sent_at for ack in traffic.acks]


async def normal_senders(live: Realtime, stack: AsyncExitStack, count: int) -> list[Sender]:
    senders = []
    for _ in range(count // 2):
        pair = await live.users(2)
        cid = await live.group(*pair)
        for user in pair:
            socket = await stack.enter_async_context(drill_socket(live.url, user.token))
            reply = await socket.join(f"conversation:{cid}")
            assert reply is not None and reply.status == "ok"
            senders.append(Sender(socket, cid, f"{user.username}"))
    return senders


@pytest.mark.slow
async def test_w4_a_flooding_socket_gets_no_more_than_its_quota_and_costs_the_others_nothing(
    database_url: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    live = await start_parley(nursery, tmp_path, database_url)
    socket_settings = live.context.settings.socket
    seconds = 10.0
    baseline, flooded = Traffic(), Traffic()
    accepted = refused = 0
    async with AsyncExitStack() as stack:
        senders = await normal_senders(live, stack, 50)
        flooder_user, partner = await live.users(2)
        flood_cid = await live.group(flooder_user, partner)
        flooder = await stack.enter_async_context(drill_socket(live.url, flooder_user.token))
        reply = await flooder.join(f"conversation:{flood_cid}")
        assert reply is not None and reply.status == "ok"
        await run_senders(senders, Traffic(), rate_per_second=250, seconds=2)  # warm up
        await run_senders(senders, baseline, rate_per_second=250, seconds=seconds)

        async def flood() -> None:
            nonlocal accepted, refused
            async with trio.open_nursery() as pushes:
                for number in range(1000):
                    await trio.sleep_until(started + number * seconds / 1000)

                    async def push(number: int = number) -> None:
                        nonlocal accepted, refused
                        answer = await flooder.request(
                            f"conversation:{flood_cid}", "new_msg", {"body": f"flood {number}"}
                        )
                        if answer is not None and answer.status == "ok":
                            accepted += 1
                        else:
                            refused += 1

                    pushes.start_soon(push)

        started = trio.current_time()
        async with trio.open_nursery() as drill:
            drill.start_soon(flood)
            await run_senders(senders, flooded, rate_per_second=250, seconds=seconds)
    allowance = socket_settings.push_burst + socket_settings.pushes_per_second * seconds
    over_quota = max(0, accepted - int(allowance))
    before = percentile(ack_latencies(baseline), 0.99)
    during = percentile(ack_latencies(flooded), 0.99)
    figure("W4", "flood_pushes_accepted", accepted, f"<={int(allowance)} (burst + rate x 10 s)")
    figure("W4", "over_quota_accepted", over_quota, "0")
    figure("W4", "others_ack_p99_ms_baseline", before * 1000, "-")
    figure("W4", "others_ack_p99_ms_during_flood", during * 1000, f"<={before * 1200:.3g}")
    assert accepted + refused == 1000
    assert over_quota == 0
    assert during <= before * 1.2, (before, during)


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / (1 << 20)


@pytest.mark.slow
async def test_w5_a_member_that_stops_reading_is_cut_and_catches_up_after(
    database_url: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    live = await start_parley(nursery, tmp_path, database_url)
    users = await live.users(10)
    sleeper = users[0]
    cid = await live.group(*users)
    topic = f"conversation:{cid}"
    traffic = Traffic()
    async with AsyncExitStack() as stack:
        senders = []
        for user in users[1:]:
            socket = await stack.enter_async_context(drill_socket(live.url, user.token))
            reply = await socket.join(topic)
            assert reply is not None and reply.status == "ok"
            senders.append(Sender(socket, cid, user.username))
        stuck = await RawSocket.open(live.url, sleeper.token, rcvbuf=4096)
        stack.push_async_callback(stuck.aclose)
        await stuck.send(["1", "1", topic, "phx_join", {}])
        joined = await stuck.read_until(lambda f: f[3] == "phx_reply" and f[1] == "1")
        assert joined[4]["status"] == "ok"
        # From here on the sleeper reads nothing: its kernel buffer fills, then its queue.
        rss_before = rss_mib()
        stopped_reading = time.monotonic()
        cut_at: list[float] = []

        async def watch_cut() -> None:
            # The moment the session gives up on it (its close then waits on the full socket).
            while not live.hub.counters.get("slow_consumers"):  # noqa: ASYNC110 (server's view)
                await trio.sleep(0.05)
            cut_at.append(time.monotonic())

        async with trio.open_nursery() as drill:
            drill.start_soon(watch_cut)
            await run_senders(senders, traffic, rate_per_second=200, seconds=15)
            drill.cancel_scope.cancel()
        rss_after = rss_mib()
        try:
            code = await stuck.drain_until_closed(30)
        except trio.TooSlowError:
            code = None
        highest = max(ack.seq for ack in traffic.acks)
        # Back with last_seq: the highest seq it had read before it stopped (none: 0). More was
        # missed than a join recovers, so the reply points at the history, as phoenix clients
        # of Parley then read it.
        async with drill_socket(live.url, sleeper.token) as back:
            reply = await back.join(topic, {"last_seq": 0})
            assert reply is not None and reply.status == "ok", reply
            seen = set(back.seqs[topic])
            if reply.response.get("recovered") is False:
                seen |= await read_history(live, sleeper, cid, reply.response["history"])
            missing = set(range(1, highest + 1)) - seen
    p99 = percentile(ack_latencies(traffic), 0.99)
    cut_seconds = cut_at[0] - stopped_reading if cut_at else float("inf")
    figure("W5", "cut_after_s", cut_seconds, "<=10")
    figure("W5", "close_code", code, "1013")
    figure("W5", "rss_growth_mib", rss_after - rss_before, "<50")
    figure("W5", "others_ack_p99_ms", p99 * 1000, "<250")
    figure("W5", "missing_after_reconnect", len(missing), "0")
    assert cut_seconds <= 10
    assert code == 1013
    assert rss_after - rss_before < 50
    assert p99 < 0.25
    assert missing == set()


async def read_history(live: Realtime, user: User, cid: uuid.UUID, first: str) -> set[int]:
    """Every seq from the history pointer on, page by page (`after_seq`)."""
    seqs: set[int] = set()
    headers = {"Authorization": f"Bearer {user.token}"}
    async with httpx.AsyncClient(base_url=live.http, timeout=30) as http:
        after = int(first.rsplit("after_seq=", 1)[1])
        while True:
            page = await http.get(
                f"/api/conversations/{cid}/messages",
                params={"after_seq": after, "limit": 100},
                headers=headers,
            )
            assert page.status_code == 200, page.text
            rows = page.json()["data"]
            if not rows:
                return seqs
            seqs |= {row["seq"] for row in rows}
            after = max(seqs)


CLIENT = """
import sys, trio
from trio_websocket import open_websocket_url
async def main():
    async with open_websocket_url(sys.argv[1]) as ws:
        print("ready", flush=True)
        await trio.sleep_forever()
trio.run(main)
"""


async def wait_gone(live: Realtime, user: User, since: float) -> float:
    with trio.fail_after(120):
        while live.hub.sessions_of(user.id):  # noqa: ASYNC110 (the server's own view)
            await trio.sleep(0.1)
    return time.monotonic() - since


@pytest.mark.slow
async def test_w6_silent_frozen_and_killed_clients_are_closed_on_time(
    database_url: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    live = await start_parley(nursery, tmp_path, database_url)
    timeout = live.context.settings.socket.heartbeat_timeout_seconds
    silent, frozen, killed = await live.users(3)
    url = f"{live.url}/websocket?vsn=2.0.0&token="
    results: dict[str, float] = {}
    clients: list[subprocess.Popen[str]] = []
    try:
        for user in (frozen, killed):
            client = subprocess.Popen(  # noqa: ASYNC220 (started, not waited for)
                [sys.executable, "-c", CLIENT, url + user.token], stdout=subprocess.PIPE, text=True
            )
            clients.append(client)
            assert client.stdout is not None
            line = await trio.to_thread.run_sync(client.stdout.readline)
            assert line.strip() == "ready"
        async with drill_socket(live.url, silent.token, heartbeat_seconds=3600):
            started = time.monotonic()
            os.kill(clients[0].pid, signal.SIGSTOP)  # frozen: the kernel keeps it open
            os.kill(clients[1].pid, signal.SIGKILL)  # dead: its kernel closed it

            async def measure(name: str, user: User) -> None:
                results[name] = await wait_gone(live, user, started)

            async with trio.open_nursery() as waits:
                waits.start_soon(measure, "silent", silent)
                waits.start_soon(measure, "frozen", frozen)
                waits.start_soon(measure, "killed", killed)
    finally:
        for client in clients:
            client.kill()
            client.wait()
            if client.stdout is not None:
                client.stdout.close()
    figure("W6", "silent_socket_closed_after_s", results["silent"], f"{timeout:g}+-5")
    figure("W6", "frozen_client_closed_after_s", results["frozen"], f"{timeout:g}+-5")
    figure("W6", "killed_client_cleaned_after_s", results["killed"], f"<={timeout + 5:g}")
    assert abs(results["silent"] - timeout) <= 5
    assert abs(results["frozen"] - timeout) <= 5
    assert results["killed"] <= timeout + 5
