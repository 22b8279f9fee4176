"""Actor faults (R1, R4): conversation actors killed and sockets dropped in the middle of traffic.

The promises: an acknowledged message is never lost or doubled whatever happens to the actor
that forwarded it (the writer answers the sender, DESIGN §3), a crash of one conversation never
touches another, and a socket that comes back with `last_seq` misses nothing.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
import trio

from tests.conftest import TEST_OPERATOR_TOKEN
from tests.drills.figures import figure, percentile
from tests.drills.live import parley_restarts, start_parley
from tests.drills.load import Sender, Traffic, audit, run_senders
from tests.drills.wire import DrillSocket, drill_socket
from tests.socket.conftest import Realtime, User

SEED = 19
OPERATOR = {"Authorization": f"Bearer {TEST_OPERATOR_TOKEN}"}


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
        # Each conversation may restart `max_restarts` times within the window (a conversation
        # past that is given up, drill R2): a kill goes to a conversation with room left, so the
        # drill measures restarts, not giving up.
        supervision = live.runtime.settings.supervision
        seconds, kill_interval = 26.0, 0.2
        killed_at_times: dict[uuid.UUID, list[float]] = {cid: [] for cid in touched}

        def has_room(cid: uuid.UUID) -> bool:
            since = trio.current_time() - supervision.restart_window_seconds - 0.5
            return sum(t > since for t in killed_at_times[cid]) < supervision.max_restarts

        async def kill_loop() -> None:
            await trio.sleep(0.5)
            for _ in range(kills):
                cid = rng.choice([cid for cid in sorted(touched) if has_room(cid)])
                key = f"conversation:{cid}"
                ref = live.runtime.registry.lookup(key)
                if ref is not None and ref.running:
                    before = ref.describe()["restarts"]
                    assert isinstance(before, int)
                    killed_at = time.monotonic()
                    killed_at_times[cid].append(trio.current_time())
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
async def test_r2_a_poisoned_conversation_is_given_up_alone_as_the_intensity_allows(
    database_url: str, tmp_path: Path, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    live = await start_parley(nursery, tmp_path, database_url)
    supervision = live.runtime.settings.supervision
    users = await live.users(20)
    healthy = await conversations_of_pairs(live, users, 10)
    victim, other = await live.users(2)
    poisoned = await live.group(victim, other)
    poisoned_key = f"conversation:{poisoned}"
    traffic = Traffic()
    replies: list[str] = []
    seen_in_debug: list[dict[str, object]] = []
    async with AsyncExitStack() as stack:
        senders = []
        for cid, members in healthy:
            for member in members:
                socket = await stack.enter_async_context(drill_socket(live.url, member.token))
                reply = await socket.join(f"conversation:{cid}")
                assert reply is not None and reply.status == "ok"
                senders.append(Sender(socket, cid, f"{member.username}-{cid.hex[:8]}"))
        poisoner = await stack.enter_async_context(drill_socket(live.url, victim.token))
        reply = await poisoner.join(f"conversation:{poisoned}")
        assert reply is not None and reply.status == "ok"
        # A member row whose join time no Python datetime can hold: loading the members raises
        # OverflowError, on every message, in this one conversation only.
        await live.context.database.execute(
            "UPDATE members SET joined_at = '20000-01-01' WHERE conversation_id = $1", poisoned
        )
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=live.http, timeout=30))

        async def poison() -> None:
            for number in range(30):
                answer = await poisoner.request(
                    f"conversation:{poisoned}", "new_msg", {"body": "x", "client_id": f"p{number}"}
                )
                replies.append("none" if answer is None else answer.status)
                listed = await http.get("/debug/actors", headers=OPERATOR)
                assert listed.status_code == 200
                seen_in_debug.extend(
                    actor for actor in listed.json()["actors"] if actor["key"] == poisoned_key
                )
                await trio.sleep(0.2)

        async with trio.open_nursery() as drill:
            drill.start_soon(poison)
            await run_senders(senders, traffic, rate_per_second=50, seconds=8)
    crashes: Counter[str] = Counter(
        str(record.args[1])
        for record in caplog.records
        if record.getMessage().startswith("supervisor 'conversations': child ")
        and record.getMessage().endswith(" crashed")
        and isinstance(record.args, tuple)
    )
    given_up = {
        str(record.args[1])
        for record in caplog.records
        if record.getMessage().startswith("supervisor 'conversations': gave up child")
        and isinstance(record.args, tuple)
    }
    restarts_before_give_up = {crashes[name] - 1 for name in given_up}
    failure_shown = [
        actor
        for actor in seen_in_debug
        if "OverflowError" in str(actor.get("last_error")) and actor.get("restarts", 0)
    ]
    errors_elsewhere = traffic.unanswered + sum(traffic.refusals.values())
    result = await audit(live.context.database, traffic)
    conversations = live.runtime.conversations
    figure("R2", "poisoned_sends_acked", replies.count("ok"), "0")
    figure("R2", "conversations_given_up", len(given_up), ">=1")
    figure(
        "R2",
        "restarts_before_give_up",
        "/".join(map(str, sorted(restarts_before_give_up))),
        str(supervision.max_restarts),
    )
    figure("R2", "failure_in_debug_actors", len(failure_shown), ">=1")
    figure("R2", "errors_in_other_conversations", errors_elsewhere, "0")
    figure("R2", "other_conversations_acked_lost", result.lost, "0")
    figure("R2", "parley_restarts", parley_restarts(live), "0")
    assert len(replies) == 30 and replies.count("ok") == 0
    assert given_up and restarts_before_give_up == {supervision.max_restarts}
    assert conversations.given_up == len(given_up)
    assert conversations.running
    assert failure_shown
    assert errors_elsewhere == 0
    assert result.lost == 0
    assert parley_restarts(live) == 0


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
