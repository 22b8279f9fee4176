"""Actor faults (R1, R4): conversation actors killed and sockets dropped in the middle of traffic.

The promises: an acknowledged message is never lost or doubled whatever happens to the actor
that forwarded it (the writer answers the sender, DESIGN §3), a crash of one conversation never
touches another, and a socket that comes back with `last_seq` misses nothing.
"""

from __future__ import annotations

import random
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import trio

from tests.drills.figures import figure, percentile
from tests.drills.live import start_parley
from tests.drills.load import Sender, Traffic, audit, run_senders
from tests.drills.wire import DrillSocket, drill_socket
from tests.socket.conftest import Realtime, User

SEED = 19


async def conversations_of_pairs(
    live: Realtime, users: list[User], count: int
) -> list[tuple[uuid.UUID, list[User]]]:
    """`count` conversations of two members each, members taken round the user list."""
    made = []
    for number in range(count):
        members = [users[(2 * number) % len(users)], users[(2 * number + 1) % len(users)]]
        made.append((await live.group(*members), members))
    return made


async def wait_restarted(live: Realtime, key: str, restarts_before: int) -> None:
    """Until the actor under `key` runs a new incarnation (polled each millisecond)."""
    while True:
        ref = live.runtime.registry.lookup(key)
        if ref is not None:
            described = ref.describe()
            restarts = described["restarts"]
            assert isinstance(restarts, int)
            if described["running"] and restarts > restarts_before:
                return
        await trio.sleep(0.001)


@pytest.mark.slow
async def test_r1_100_kills_of_random_conversation_actors_lose_and_double_nothing(
    database_url: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    live = await start_parley(nursery, tmp_path, database_url)
    rng = random.Random(SEED)
    users = await live.users(20)
    conversations = await conversations_of_pairs(live, users, 50)
    # Half the conversations are never killed: they must see no error at all.
    touched = {cid for cid, _ in conversations[:25]}
    traffic, untouched_traffic = Traffic(), Traffic()
    restart_seconds: list[float] = []
    kills = 100
    async with AsyncExitStack() as stack:
        sockets: dict[uuid.UUID, DrillSocket] = {}
        for user in users:
            sockets[user.id] = await stack.enter_async_context(drill_socket(live.url, user.token))
        senders: list[Sender] = []
        for cid, members in conversations:
            for member in members:
                socket = sockets[member.id]
                reply = await socket.join(f"conversation:{cid}")
                assert reply is not None and reply.status == "ok"
                senders.append(Sender(socket, cid, f"{member.username}-{cid.hex[:8]}"))
        touched_senders = [s for s in senders if s.conversation_id in touched]
        untouched_senders = [s for s in senders if s.conversation_id not in touched]
        # The conversation supervisor's intensity (30 restarts in 5 s) paces the kills: 4 a
        # second stays inside it, so the drill measures restarts, not the supervisor giving up.
        seconds, kill_interval = 26.0, 0.25

        async def kill_loop() -> None:
            await trio.sleep(0.5)
            for _ in range(kills):
                cid = rng.choice(sorted(touched))
                key = f"conversation:{cid}"
                ref = live.runtime.registry.lookup(key)
                if ref is not None and ref.running:
                    before = ref.describe()["restarts"]
                    assert isinstance(before, int)
                    killed_at = time.monotonic()
                    ref.kill("drill R1")
                    with trio.fail_after(10):
                        await wait_restarted(live, key, before)
                    restart_seconds.append(time.monotonic() - killed_at)
                await trio.sleep(kill_interval)

        rate = 10_000 / seconds
        async with trio.open_nursery() as drill:
            drill.start_soon(kill_loop)
            drill.start_soon(
                lambda: run_senders(
                    touched_senders, traffic, rate_per_second=rate / 2, seconds=seconds
                )
            )
            await run_senders(
                untouched_senders, untouched_traffic, rate_per_second=rate / 2, seconds=seconds
            )
    everything = Traffic(acks=traffic.acks + untouched_traffic.acks)
    result = await audit(live.context.database, everything)
    untouched_errors = untouched_traffic.unanswered + sum(untouched_traffic.refusals.values())
    p99 = percentile(restart_seconds, 0.99)
    figure("R1", "sends_acked", len(everything.acks), ">=9900")
    figure("R1", "actor_kills", len(restart_seconds), ">=95")
    figure("R1", "acked_lost", result.lost, "0")
    figure("R1", "duplicates", result.duplicates, "0")
    figure("R1", "errors_in_untouched_conversations", untouched_errors, "0")
    figure("R1", "restart_p99_ms", p99 * 1000, "<200")
    assert len(everything.acks) >= 9900
    assert len(restart_seconds) >= 95
    assert result.lost == 0
    assert result.duplicates == 0
    assert untouched_errors == 0
    assert p99 < 0.2


@pytest.mark.slow
async def test_r4_100_sockets_dropped_during_traffic_rejoin_with_last_seq_and_miss_nothing(
    database_url: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    live = await start_parley(nursery, tmp_path, database_url)
    rng = random.Random(SEED)
    senders_users = await live.users(5)
    readers = await live.users(20)
    conversation_id = await live.group(*senders_users, *readers)
    topic = f"conversation:{conversation_id}"
    traffic = Traffic()
    drops = 100
    missing_total = 0
    rejoins = 0
    async with AsyncExitStack() as stack:
        senders = []
        for user in senders_users:
            socket = await stack.enter_async_context(drill_socket(live.url, user.token))
            reply = await socket.join(topic)
            assert reply is not None and reply.status == "ok"
            senders.append(Sender(socket, conversation_id, user.username))
        seconds = 20.0

        async def reader(user: User, drops_left: list[int]) -> None:
            """Joins (with `last_seq` 0: whatever was sent before it joined comes as catch-up),
            reads, and at random moments drops its socket and comes back with `last_seq` = the
            highest seq it has; at the end it must hold every seq sent."""
            nonlocal missing_total, rejoins
            seen: set[int] = set()
            while True:
                async with drill_socket(live.url, user.token) as socket:
                    last_seq = max(seen, default=0)
                    reply = await socket.join(topic, {"last_seq": last_seq})
                    assert reply is not None and reply.status == "ok", reply
                    assert reply.response.get("recovered", True) is not False, reply.response
                    if seen:
                        rejoins += 1
                    if not drops_left[0]:
                        await finished.wait()
                        # One heartbeat's reply is queued behind every broadcast already sent.
                        await socket.request("phoenix", "heartbeat", {})
                        seen |= socket.seqs[topic]
                        break
                    await trio.sleep(rng.uniform(0.05, seconds / 3))
                    drops_left[0] -= 1
                    seen |= socket.seqs[topic]
                    # Leaving the block closes the socket: a drop in the middle of traffic.
            missing = set(range(1, highest[0] + 1)) - seen
            missing_total += len(missing)

        finished = trio.Event()
        highest = [0]
        async with trio.open_nursery() as drill:
            for user in readers:
                drill.start_soon(reader, user, [drops // len(readers)])
            await run_senders(senders, traffic, rate_per_second=100, seconds=seconds)
            highest[0] = max(ack.seq for ack in traffic.acks)
            finished.set()
    result = await audit(live.context.database, traffic)
    figure("R4", "socket_drops_rejoined", rejoins, f">={drops}")
    figure("R4", "missing_after_catch_up", missing_total, "0")
    figure("R4", "acked_lost", result.lost, "0")
    assert rejoins >= drops
    assert missing_total == 0
    assert result.lost == 0
