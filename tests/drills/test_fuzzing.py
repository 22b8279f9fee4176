"""Drill W10: frame fuzzing against a live Parley, on both WebSocket transports.

Hypothesis (fixed seed: `derandomize`) generates and mutates three kinds of hostile input
(`tests/drills/fuzz.py`): frames sent after a real handshake (with and without
permessage-deflate), upgrade requests to the socket paths, and long-poll POST bodies. Each
example runs on its own connection; the client then half-closes, so whatever state the server
was left in (half a frame, half a head) the exchange ends by itself.

Checked after every example, so Hypothesis shrinks a failure to its smallest input: nothing
logged at ERROR or with a traceback by the server (an uncaught exception), no 5xx answer, no
restart under Parley's supervisor, no exchange left hanging. After the run a normal client
connects, joins a conversation and gets its heartbeat answered.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import httpx
import orjson
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.drills.figures import figure
from tests.drills.frames import OP_TEXT, frame, open_raw
from tests.drills.fuzz import frame_streams, longpoll_posts, upgrade_requests
from tests.drills.live import parley_restarts, start_parley
from tests.drills.wire import drill_socket
from tests.socket.conftest import Realtime, User

EXCHANGE_SECONDS: Final = 10.0
"""Generous: an exchange ends as soon as the server has answered the client's half-close."""
PROBE: Final = frame(OP_TEXT, b'[null,"probe","phoenix","heartbeat",{}]')


def server_error(status: int) -> bool:
    """A 5xx that means the server failed. Not 501: h11's (correct, RFC 9112 §6.1) answer to a
    transfer coding it does not implement (`Transfer-Encoding: gzip`)."""
    return status >= 500 and status != 501


class ServerErrors(logging.Handler):
    """Every record at ERROR or above, or carrying a traceback, from any logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)

    def describe(self) -> str:
        return "; ".join(f"{r.name}: {r.getMessage()} {r.exc_info!r}" for r in self.records[:3])


@contextmanager
def server_errors() -> Iterator[ServerErrors]:
    handler = ServerErrors()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@dataclass
class Target:
    """The live server and what the examples need of it; the counts of what happened."""

    live: Realtime
    user: User
    http: httpx.AsyncClient
    errors: ServerErrors
    topics: list[str]
    longpoll_token: str | None = None
    outcomes: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.live.url)
        return parts.hostname or "127.0.0.1", parts.port or 80

    async def drain(self, stream: trio.SocketStream) -> bytes:
        """Half-close, then read until the server closes (bounded: a hang fails the example)."""
        received = b""
        with trio.fail_after(EXCHANGE_SECONDS):
            try:
                await stream.send_eof()
                while chunk := await stream.receive_some(65_536):
                    received += chunk
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # reset by the server: also an end
        return received

    async def frames(self, data: bytes, deflate: bool) -> None:
        raw = await open_raw(self.live.url, self.user.token, deflate=deflate)
        try:
            with suppress(trio.BrokenResourceError):  # closed already, on an earlier frame
                await raw.stream.send_all(data + PROBE)
            await self.drain(raw.stream)
        finally:
            await raw.aclose()
        self.outcomes["frames"] += 1

    async def upgrade(self, head: bytes) -> None:
        stream = await trio.open_tcp_stream(*self.address)
        async with stream:
            with suppress(trio.BrokenResourceError):
                await stream.send_all(head)
            try:
                answer = await self.drain(stream)
            except trio.TooSlowError:
                raise AssertionError(f"no answer and no close for {head!r}") from None
        if answer.startswith(b"HTTP/1.1 "):
            status = int(answer[9:12])
            self.statuses[status] += 1
            assert not server_error(status), (head, answer[:300])
        self.outcomes["upgrades"] += 1

    async def longpoll(self, content_type: str, body: bytes, query: str) -> None:
        if self.longpoll_token is None:
            opened = await self.http.get(
                f"/socket/longpoll?{urlencode({'vsn': '2.0.0', 'token': self.user.token})}"
            )
            self.longpoll_token = opened.json()["token"]
        token = query or self.longpoll_token
        headers = {"content-type": content_type} if content_type else {}
        with trio.fail_after(EXCHANGE_SECONDS):
            answer = await self.http.post(
                f"/socket/longpoll?{urlencode({'vsn': '2.0.0', 'token': token})}",
                content=body,
                headers=headers,
            )
        self.statuses[answer.status_code] += 1
        assert not server_error(answer.status_code), answer.text
        is_json = answer.headers.get("content-type", "").startswith("application/json")
        if is_json and orjson.loads(answer.content).get("status") == 410 and not query:
            self.longpoll_token = None  # the session ended: open another next time
        self.outcomes["longpoll_posts"] += 1

    def check(self, restarts_before: int) -> None:
        assert not self.errors.records, self.errors.describe()
        assert parley_restarts(self.live) == restarts_before


def run_examples(target: Target, examples: int) -> None:
    """The three kinds of example, `examples` of each, in this (worker) thread."""
    base = settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,  # a fixed seed: every run tries the same inputs
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    restarts = trio.from_thread.run_sync(parley_restarts, target.live)

    def on_trio(fn: Callable[..., Any], *args: Any) -> None:
        trio.from_thread.run(partial(fn, *args))
        trio.from_thread.run_sync(target.check, restarts)

    @base
    @given(data=frame_streams(target.topics), deflate=st.booleans())
    def frames(data: bytes, deflate: bool) -> None:
        on_trio(target.frames, data, deflate)

    @base
    @given(head=upgrade_requests(target.user.token, "no-such-app"))
    def upgrades(head: bytes) -> None:
        on_trio(target.upgrade, head)

    @base
    @given(
        post=longpoll_posts(target.topics),
        query=st.sampled_from(["", "", "", "lp1.garbage.x", "lp1.", target.user.token]),
    )
    def longpoll(post: tuple[str, bytes], query: str) -> None:
        on_trio(target.longpoll, post[0], post[1], query)

    frames()
    upgrades()
    longpoll()


async def run_drill(
    database_url: str, tmp_path: Path, nursery: trio.Nursery, *, fast_path: bool, examples: int
) -> None:
    socket = {"fast_path": fast_path, "compression": True, "longpoll_max_sessions_per_user": 1000}
    live = await start_parley(nursery, tmp_path, database_url, socket=socket)
    name = "fast_path" if fast_path else "asgi"
    user, other = await live.users(2)
    conversation = await live.group(user, other)
    topics = ["phoenix", f"conversation:{conversation}", f"user:{user.id}", "conversation:x"]
    with server_errors() as errors:
        async with httpx.AsyncClient(base_url=live.http, timeout=30) as http:
            target = Target(live, user, http, errors, topics)
            try:
                await trio.to_thread.run_sync(run_examples, target, examples)
            finally:
                cases = sum(target.outcomes.values())
                figure("W10", f"{name}_cases", cases, f">={3 * examples}")
                figure("W10", f"{name}_uncaught_exceptions", len(errors.records), "0")
                figure("W10", f"{name}_server_restarts", parley_restarts(live), "0")
                fivexx = sum(n for status, n in target.statuses.items() if server_error(status))
                figure("W10", f"{name}_5xx", fivexx, "0")
        # A normal client afterwards: connects, joins, is answered.
        async with drill_socket(live.url, user.token) as client:
            joined = await client.join(f"conversation:{conversation}")
            beat = await client.request("phoenix", "heartbeat", {})
        served = joined is not None and joined.status == "ok" and beat is not None
        figure("W10", f"{name}_normal_client_served", int(served), "1")
    assert served, (joined, beat)
    assert not errors.records, errors.describe()
    assert cases >= 3 * examples, target.outcomes


TRANSPORTS = pytest.mark.parametrize("fast_path", [True, False], ids=["fast_path", "asgi"])


@TRANSPORTS
async def test_w10_short_fuzz_run(
    database_url: str, tmp_path: Path, nursery: trio.Nursery, fast_path: bool
) -> None:
    await run_drill(database_url, tmp_path, nursery, fast_path=fast_path, examples=30)


@pytest.mark.slow
@TRANSPORTS
async def test_w10_long_fuzz_run(
    database_url: str, tmp_path: Path, nursery: trio.Nursery, fast_path: bool
) -> None:
    await run_drill(database_url, tmp_path, nursery, fast_path=fast_path, examples=600)
