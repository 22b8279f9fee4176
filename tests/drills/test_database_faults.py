"""Database faults (D1-D3): PostgreSQL restarted, stopped and saturated under a live Parley.

The promises: an acknowledged message is never lost or doubled, REST answers 503 with Retry-After
while the database cannot answer (never a 500, never a hang past its timeout), sockets stay up,
and everything recovers by itself, with no restart of anything in Parley.
"""

from __future__ import annotations

import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import trio

from parley.store import pg
from parley.store.embedded import pause_embedded, restart_embedded, resume_embedded
from tests.drills.conftest import DrillPostgres
from tests.drills.figures import figure
from tests.drills.live import parley_restarts, start_parley
from tests.drills.load import Sender, Traffic, audit, run_senders
from tests.drills.wire import drill_socket
from tests.socket.conftest import Realtime, User

DRILL_DATABASE: dict[str, Any] = {
    "pool_min_size": 2,
    "pool_max_size": 4,
    "command_timeout_seconds": 5.0,
    "connect_timeout_seconds": 3.0,
    "pool_acquire_timeout_seconds": 2.0,
}
ANSWER_BOUND_SECONDS = (
    DRILL_DATABASE["pool_acquire_timeout_seconds"]
    + DRILL_DATABASE["connect_timeout_seconds"]
    + DRILL_DATABASE["command_timeout_seconds"]
)
"""The longest a request may take while the database is down: waiting for a connection, making
one, and a statement's timeout."""


async def chat_senders(
    live: Realtime, stack: AsyncExitStack, *, conversations: int, senders_each: int
) -> list[Sender]:
    """`conversations` groups of `senders_each` members, every member sending on a socket."""
    senders = []
    for number in range(conversations):
        members = await live.users(senders_each)
        conversation_id = await live.group(*members)
        for member in members:
            socket = await stack.enter_async_context(drill_socket(live.url, member.token))
            reply = await socket.join(f"conversation:{conversation_id}")
            assert reply is not None and reply.status == "ok", reply
            senders.append(Sender(socket, conversation_id, f"c{number}-{member.username}"))
    return senders


@pytest.mark.slow
async def test_d1_restarts_under_200_msg_per_s_lose_and_double_nothing(
    drill_postgres: DrillPostgres, tmp_path: Path, nursery: trio.Nursery
) -> None:
    live = await start_parley(nursery, tmp_path, drill_postgres.dsn, database=DRILL_DATABASE)
    traffic = Traffic()
    restarts: list[tuple[float, float, str]] = []
    seconds = 60.0
    modes: list[Literal["fast", "immediate"]] = [
        "fast", "fast", "fast", "fast", "fast", "immediate", "immediate"
    ]  # fmt: skip
    async with AsyncExitStack() as stack:
        senders = await chat_senders(live, stack, conversations=10, senders_each=2)

        async def restart_loop() -> None:
            spacing = seconds / (len(modes) + 1)
            for number, mode in enumerate(modes, start=1):
                await trio.sleep_until(started + number * spacing)
                begin = time.monotonic()
                await trio.to_thread.run_sync(restart_embedded, drill_postgres.server, mode)
                restarts.append((begin, time.monotonic(), mode))

        started = trio.current_time()
        async with trio.open_nursery() as drill:
            drill.start_soon(restart_loop)
            await run_senders(senders, traffic, rate_per_second=200, seconds=seconds)
        dropped = sum(1 for sender in senders if sender.socket.closed is not None)
    result = await audit(live.context.database, traffic)
    outages = []
    for index, (begin, end, _) in enumerate(restarts):
        window_end = restarts[index + 1][0] if index + 1 < len(restarts) else end + 10
        outages.append(traffic.longest_gap(begin, window_end))
    figure("D1", "acked_messages", len(traffic.acks), f">={int(seconds * 200 * 0.95)}")
    figure("D1", "acked_lost", result.lost, "0")
    figure("D1", "duplicates", result.duplicates, "0")
    figure("D1", "worst_outage_per_restart_s", max(outages), "<=5")
    figure("D1", "restarts_fast_immediate", f"{modes.count('fast')}+{modes.count('immediate')}",
           "5+2")  # fmt: skip
    figure("D1", "sockets_dropped", dropped, "0")
    figure("D1", "parley_restarts", parley_restarts(live), "0")
    assert len(restarts) == len(modes)
    assert len(traffic.acks) >= seconds * 200 * 0.95
    assert result.lost == 0
    assert result.duplicates == 0
    assert max(outages) <= 5, outages
    assert dropped == 0
    assert parley_restarts(live) == 0


@dataclass(frozen=True)
class Answer:
    at: float
    route: str
    status: int
    retry_after: str | None
    seconds: float


def rest_routes(user: User, conversation_id: uuid.UUID) -> list[tuple[str, str, Any]]:
    return [
        ("GET", "/api/me", None),
        ("GET", "/api/conversations", None),
        ("GET", f"/api/conversations/{conversation_id}", None),
        ("GET", f"/api/conversations/{conversation_id}/messages", None),
        ("POST", f"/api/conversations/{conversation_id}/messages", {"body": "over REST"}),
        ("POST", f"/api/conversations/{conversation_id}/read", {"seq": 1}),
        ("GET", "/api/users", None),
        ("GET", f"/api/users/{user.id}", None),
        ("POST", "/api/auth/login", {"email": "nobody@example.com", "password": "wrong 0123456"}),
    ]


@dataclass
class Poller:
    """REST requests in a loop, every answer kept; `ok_after(t)` waits for a 200 begun after t."""

    http: httpx.AsyncClient
    user: User
    routes: list[tuple[str, str, Any]]
    answers: list[Answer]
    _ok: dict[float, trio.Event] | None = None

    async def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.user.token}"}
        while True:
            for method, path, body in self.routes:
                began = time.monotonic()
                response = await self.http.request(method, path, json=body, headers=headers)
                self.answers.append(
                    Answer(
                        began,
                        f"{method} {path}",
                        response.status_code,
                        response.headers.get("retry-after"),
                        time.monotonic() - began,
                    )
                )
                if response.status_code == 200:
                    for since, event in (self._ok or {}).items():
                        if began > since:
                            event.set()
                await trio.sleep(0.02)

    async def ok_after(self, since: float) -> None:
        event = trio.Event()
        self._ok = {**(self._ok or {}), since: event}
        await event.wait()


@pytest.mark.slow
async def test_d2_a_30_s_outage_under_load_answers_503_and_recovers_by_itself(
    drill_postgres: DrillPostgres, tmp_path: Path, nursery: trio.Nursery
) -> None:
    live = await start_parley(nursery, tmp_path, drill_postgres.dsn, database=DRILL_DATABASE)
    outage_seconds = 30.0
    traffic = Traffic()
    answers: list[Answer] = []
    async with AsyncExitStack() as stack:
        senders = await chat_senders(live, stack, conversations=4, senders_each=2)
        poller = await live.user()
        polled = await live.group(poller, *(await live.users(1)))
        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=live.http, timeout=ANSWER_BOUND_SECONDS * 3)
        )
        pollers = [Poller(http, poller, rest_routes(poller, polled), answers) for _ in range(4)]
        async with trio.open_nursery() as drill:
            for each in pollers:
                drill.start_soon(each.run)
            drill.start_soon(
                partial(run_senders, senders, traffic, rate_per_second=40, seconds=50.0)
            )
            await trio.sleep(5)
            stopped = time.monotonic()
            await trio.to_thread.run_sync(pause_embedded, drill_postgres.server)
            await trio.sleep(outage_seconds)
            await trio.to_thread.run_sync(resume_embedded, drill_postgres.server)
            resumed = time.monotonic()
            with trio.fail_after(60):
                await pollers[0].ok_after(resumed)
            recovered = time.monotonic()
            await trio.sleep(5)
            drill.cancel_scope.cancel()
        dropped = sum(1 for sender in senders if sender.socket.closed is not None)
    during = [a for a in answers if stopped < a.at < resumed]
    errors_500 = [a for a in answers if a.status >= 500 and a.status != 503]
    bare_503 = [a for a in answers if a.status == 503 and a.retry_after is None]
    slowest = max(a.seconds for a in answers)
    result = await audit(live.context.database, traffic)
    figure("D2", "answers_during_outage", len(during), ">=100")
    figure("D2", "answers_503_during_outage", sum(a.status == 503 for a in during), ">=1")
    figure("D2", "answers_5xx_not_503", len(errors_500), "0")
    figure("D2", "routes_5xx_not_503", ",".join(sorted({a.route for a in errors_500})) or "none",
           "none")  # fmt: skip
    figure("D2", "answers_503_without_retry_after", len(bare_503), "0")
    figure("D2", "slowest_answer_s", slowest, f"<={ANSWER_BOUND_SECONDS:g}")
    figure("D2", "recovery_after_restart_s", recovered - resumed, "<=5")
    figure("D2", "sockets_dropped", dropped, "0")
    figure("D2", "acked_lost", result.lost, "0")
    figure("D2", "parley_restarts", parley_restarts(live), "0")
    assert len(during) >= 100
    assert errors_500 == [], errors_500[:5]
    assert bare_503 == [], bare_503[:5]
    assert slowest <= ANSWER_BOUND_SECONDS
    assert recovered - resumed <= 5
    assert dropped == 0
    assert result.lost == 0
    assert parley_restarts(live) == 0


@pytest.mark.slow
async def test_d3_ten_times_the_pool_in_slow_requests_sheds_the_excess_and_recovers(
    database_url: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    live = await start_parley(nursery, tmp_path, database_url, database=DRILL_DATABASE)
    pool_size = DRILL_DATABASE["pool_max_size"]
    user = await live.user()
    headers = {"Authorization": f"Bearer {user.token}"}
    held_seconds = DRILL_DATABASE["pool_acquire_timeout_seconds"] * 2
    answers: list[Answer] = []
    locker = await pg.connect(database_url, connect_timeout=10)
    async with httpx.AsyncClient(
        base_url=live.http,
        timeout=ANSWER_BOUND_SECONDS * 3,
        limits=httpx.Limits(max_connections=None),
    ) as http:

        async def request() -> None:
            began = time.monotonic()
            response = await http.get("/api/me", headers=headers)
            answers.append(
                Answer(
                    began,
                    "GET /api/me",
                    response.status_code,
                    response.headers.get("retry-after"),
                    time.monotonic() - began,
                )
            )

        try:
            # Every request reads `users`: locked, each one holds its pooled connection until the
            # lock goes, and the ones that find no free connection wait their acquire timeout.
            await locker.execute("BEGIN")
            await locker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            async with trio.open_nursery() as requests:
                for _ in range(pool_size * 10):
                    requests.start_soon(request)
                await trio.sleep(held_seconds)
                await locker.execute("ROLLBACK")
                released = time.monotonic()
        finally:
            locker.close()
        after = await http.get("/api/me", headers=headers)
        recovered = time.monotonic()
    statuses = [answer.status for answer in answers]
    slowest = max(answer.seconds for answer in answers)
    figure("D3", "requests", len(statuses), f"{pool_size * 10}")
    figure("D3", "answered_200", statuses.count(200), f"<={pool_size}")
    figure("D3", "answered_503", statuses.count(503), f">={pool_size * 9}")
    figure("D3", "answered_other", len(statuses) - statuses.count(200) - statuses.count(503), "0")
    figure("D3", "slowest_answer_s", slowest, f"<={held_seconds + 1:g}")
    figure("D3", "recovery_after_release_s", recovered - released, "<=1")
    assert len(statuses) == pool_size * 10
    assert statuses.count(503) >= pool_size * 9
    assert statuses.count(200) + statuses.count(503) == len(statuses)
    assert all(a.retry_after for a in answers if a.status == 503)
    assert slowest <= held_seconds + 1
    assert after.status_code == 200
    assert recovered - released <= 1
