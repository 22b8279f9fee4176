"""Long polling at /socket/longpoll (PHOENIX_PROTOCOL.md §8, §14 items 35-40) against the real
server: httpx requests shaped as phoenix.js sends them, the session core behind them, bad input.

The server runs with a short poll window (so idle polls come back quickly) and a generous session
timeout, except where a test is about the timeout; waits poll a condition under a deadline.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
import trio

from parley.api.socket.transports.longpoll import LongPollTransport
from parley.api.socket.transports.longpoll_tokens import TOKEN_PREFIX, SessionTokens
from parley.config import Settings
from tests.phoenix_client import open_phoenix_client
from tests.socket.conftest import Realtime, User, socket_settings

NDJSON = "application/x-ndjson"
_OWN: Any = object()
WINDOW = 0.25
LONGPOLL: dict[str, Any] = {
    "longpoll_window_seconds": WINDOW,
    "longpoll_session_timeout_seconds": 30.0,
}


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Settings:
    """Long-poll test settings; `indirect` parametrization adds `socket` values of a test's own
    (and those of other sections under their section's name, e.g. `{"actors": {...}}`)."""
    extra: dict[str, Any] = dict(getattr(request, "param", {}))
    sections = {key: extra.pop(key) for key in list(extra) if isinstance(extra[key], dict)}
    return socket_settings(tmp_path, database_url, socket={**LONGPOLL, **extra}, **sections)


@pytest.fixture
async def http(realtime: Realtime) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=realtime.http, timeout=30) as client:
        yield client


class LongPollClient:
    """A raw long-poll client: the user's params first, `vsn`, then the session token, as
    phoenix.js's LongPoll builds its URLs; every frame polled is kept in `frames` (decoded)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        params: dict[str, str],
        *,
        vsn: str | None = "2.0.0",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.http = http
        self.params = params
        self.vsn = vsn
        self.headers = headers or {}
        self.token: str | None = None
        self.frames: list[Any] = []
        self._refs = 0

    def url(self, token: str | None = None) -> str:
        query = dict(self.params) | ({} if self.vsn is None else {"vsn": self.vsn})
        tail = f"&token={token}" if token is not None else "&"  # phoenix.js's dangling `&`
        return f"/socket/longpoll?{urlencode(query)}{tail}"

    async def get(self, token: str | None = None, **headers: str) -> httpx.Response:
        return await self.http.get(self.url(token), headers=self.headers | headers)

    async def open(self) -> dict[str, Any]:
        response = await self.get()
        body: dict[str, Any] = response.json()
        assert (response.status_code, body["status"]) == (200, 410), body
        self.token = body["token"]
        return body

    async def poll(self) -> dict[str, Any]:
        response = await self.get(self.token)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] in (200, 204):
            self.token = body["token"]
            self.frames += [orjson.loads(message) for message in body["messages"]]
        return body

    async def post_raw(
        self, body: bytes | str, content_type: str = NDJSON, token: Any = _OWN
    ) -> httpx.Response:
        """POST `body` with the session's token, or with `token` (None: none at all)."""
        return await self.http.post(
            self.url(self.token if token is _OWN else token),
            content=body,
            headers=self.headers | {"content-type": content_type},
        )

    async def post(self, *frames: Any) -> dict[str, Any]:
        lines = "\n".join(f if isinstance(f, str) else orjson.dumps(f).decode() for f in frames)
        response = await self.post_raw(lines)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def ref(self) -> str:
        self._refs += 1
        return str(self._refs)

    async def until(self, predicate: Callable[[Any], bool], timeout: float = 10.0) -> Any:  # noqa: ASYNC109 (test helper: a deadline per wait)
        """Poll until a frame matching `predicate` arrived; return (and consume) it."""
        with trio.fail_after(timeout):
            while True:
                for index, frame in enumerate(self.frames):
                    if predicate(frame):
                        return self.frames.pop(index)
                body = await self.poll()
                assert body["status"] in (200, 204), body

    async def request(self, join_ref: Any, topic: str, event: str, payload: Any = None) -> Any:
        ref = self.ref()
        assert await self.post([join_ref, ref, topic, event, payload or {}]) == {"status": 200}
        return await self.until(lambda f: f[3] == "phx_reply" and f[1] == ref)

    async def join(self, topic: str, payload: Any = None) -> tuple[Any, str]:
        ref = self.ref()
        assert await self.post([ref, ref, topic, "phx_join", payload or {}]) == {"status": 200}
        reply = await self.until(lambda f: f[3] == "phx_reply" and f[1] == ref)
        return reply, ref

    async def heartbeat(self) -> Any:
        return await self.request(None, "phoenix", "heartbeat")


def client_for(http: httpx.AsyncClient, user: User, **kwargs: Any) -> LongPollClient:
    return LongPollClient(http, {"token": user.token}, **kwargs)


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109 (test helper: a deadline per wait)
    with trio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 (polling the server's state)
            await trio.sleep(0.01)


def tokens(realtime: Realtime) -> SessionTokens:
    """The server's own token signer (same key), for tokens a client could not make."""
    secret = realtime.context.settings.auth.jwt_secret
    assert secret is not None
    return SessionTokens(secret, 60.0)


# -- the protocol --------------------------------------------------------------------------


async def test_open_post_and_poll_carry_frames_as_a_websocket_would(
    realtime: Realtime, http: httpx.AsyncClient
) -> None:
    user = await realtime.user()
    client = client_for(http, user)
    response = await client.get()
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == 410 and body["messages"] == []  # §8.2: "session created"
    assert body["token"].startswith(TOKEN_PREFIX)
    client.token = body["token"]
    assert realtime.hub.connection_count == 1

    topic = f"user:{user.id}"
    posted = await client.post(
        ["1", "1", topic, "phx_join", {}], [None, "2", "phoenix", "heartbeat", {}]
    )
    assert posted == {"status": 200}
    joined = await client.until(lambda f: f[1] == "1")
    assert joined == ["1", "1", topic, "phx_reply", {"status": "ok", "response": {}}]
    heartbeat = await client.until(lambda f: f[1] == "2")
    assert heartbeat == [None, "2", "phoenix", "phx_reply", {"status": "ok", "response": {}}]

    idle = await client.poll()  # §8.3: nothing within the window
    assert idle == {"status": 204, "token": idle["token"], "messages": []}
    assert idle["token"].startswith(TOKEN_PREFIX)


async def test_tokens_in_headers_and_without_vsn_v1(
    realtime: Realtime, http: httpx.AsyncClient
) -> None:
    # §8.5: authToken as X-Phoenix-AuthToken (no token parameter), the session token as
    # X-Phoenix-Longpoll-Token; and no vsn means V1 objects, sent without the ndjson type.
    user = await realtime.user()
    client = LongPollClient(http, {}, vsn=None, headers={"x-phoenix-authtoken": user.token})
    await client.open()
    response = await http.post(
        client.url(),
        content=orjson.dumps({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": 7}),
        headers=client.headers | {"x-phoenix-longpoll-token": client.token or ""},
    )
    assert response.json() == {"status": 200}
    polled = await http.get(
        client.url(), headers=client.headers | {"x-phoenix-longpoll-token": client.token or ""}
    )
    body = polled.json()
    assert body["status"] == 200
    assert [orjson.loads(m) for m in body["messages"]] == [
        {
            "topic": "phoenix",
            "event": "phx_reply",
            "payload": {"status": "ok", "response": {}},
            "ref": 7,
        }
    ]


async def test_preflight_and_other_methods(http: httpx.AsyncClient) -> None:
    preflight = await http.options(
        "/socket/longpoll",
        headers={
            "origin": "https://app.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type, x-phoenix-authtoken",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-headers"] == "content-type, x-phoenix-authtoken"
    assert preflight.headers["access-control-allow-methods"] == "get, post, options"
    assert preflight.headers["access-control-max-age"] == "3600"
    assert preflight.headers["access-control-allow-origin"] == "*"
    for method in ("PUT", "DELETE", "PATCH", "HEAD"):
        answer = await http.request(method, "/socket/longpoll?vsn=2.0.0")
        assert answer.status_code == 400, method
        if method != "HEAD":
            assert answer.json()["error"]["code"] == "bad_request"


async def test_refused_connects_answer_403(realtime: Realtime, http: httpx.AsyncClient) -> None:
    user = await realtime.user()
    for params in ({}, {"token": "garbage"}, {"token": user.token, "vsn": "3.0.0"}):
        response = await http.get(f"/socket/longpoll?{urlencode(params)}")
        assert response.status_code == 200
        assert response.json() == {"status": 403}, params
    assert realtime.hub.connection_count == 0


@pytest.mark.parametrize("settings", [{"longpoll_window_seconds": 60.0}], indirect=True)
async def test_a_newer_poll_answers_the_older_one(
    realtime: Realtime, http: httpx.AsyncClient
) -> None:
    # At most one poll per session is held: the newer one takes over (and gets the frames).
    user = await realtime.user()
    client = client_for(http, user)
    await client.open()

    transport: LongPollTransport = realtime.server.longpoll
    answers: list[dict[str, Any]] = []

    async def poll() -> None:
        answers.append((await client.get(client.token)).json())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(poll)
        await wait_until(lambda: transport.held_polls == 1)
        nursery.start_soon(poll)
        await wait_until(lambda: len(answers) == 1)
        assert answers[0]["status"] == 204  # long before its 60 s window
        await wait_until(lambda: transport.held_polls == 1)
        assert await client.post([None, "1", "phoenix", "heartbeat", {}]) == {"status": 200}
    assert answers[1]["status"] == 200
    assert [orjson.loads(m)[1] for m in answers[1]["messages"]] == ["1"]


# -- everything channels do ------------------------------------------------------------------


async def test_chat_presence_and_leave_between_long_poll_and_websocket(
    realtime: Realtime, http: httpx.AsyncClient
) -> None:
    alice, bob = await realtime.users(2)
    cid = await realtime.group(alice, bob)
    topic = f"conversation:{cid}"
    client = client_for(http, alice)
    await client.open()
    async with open_phoenix_client(realtime.url, token=bob.token) as ws:
        assert (await ws.join(topic)).ok
        reply, join_ref = await client.join(topic)
        assert reply[4]["status"] == "ok"
        state = await client.until(lambda f: f[3] == "presence_state")
        assert state[0] == join_ref and bob.key in state[4]
        with trio.fail_after(10):
            while alice.key not in (await ws.receive("presence_diff", topic)).payload["joins"]:
                pass

        ack = await client.request(join_ref, topic, "new_msg", {"body": "over long poll"})
        assert ack[4]["status"] == "ok" and isinstance(ack[4]["response"]["seq"], int)
        got = await ws.receive("new_msg", topic)
        assert got.payload["body"] == "over long poll"

        assert (await ws.push(topic, "new_msg", {"body": "over a websocket"})).ok
        pushed = await client.until(
            lambda f: f[3] == "new_msg" and f[4]["body"] != "over long poll"
        )
        assert pushed[4]["body"] == "over a websocket"

        left = await client.request(join_ref, topic, "phx_leave")
        assert left[4] == {"status": "ok", "response": {}}
        await client.until(lambda f: f[3] == "phx_close")
        with trio.fail_after(10):
            while alice.key not in (await ws.receive("presence_diff", topic)).payload["leaves"]:
                pass


async def test_revocation_ends_the_long_poll_session(
    realtime: Realtime, http: httpx.AsyncClient
) -> None:
    user = await realtime.user()
    client = client_for(http, user)
    await client.open()
    assert (await client.join(f"user:{user.id}"))[0][4]["status"] == "ok"
    await realtime.context.stores.users.bump_token_version(user.id)
    realtime.hub.revoke_user(user.id)
    with trio.fail_after(10):
        while (await client.poll())["status"] != 410:
            pass
    await wait_until(lambda: realtime.hub.connection_count == 0)
    assert (await client.get()).json() == {"status": 403}  # its token is dead now


@pytest.mark.parametrize(
    "settings",
    [{"longpoll_session_timeout_seconds": 0.5, "heartbeat_timeout_seconds": 0.5}],
    indirect=True,
)
async def test_an_unpolled_session_ends_and_a_polled_one_needs_no_heartbeats(
    realtime: Realtime, http: httpx.AsyncClient
) -> None:
    # §14 item 38: no poll for the session timeout ends the session (presence leaves for the
    # others); polling keeps it, although long-poll clients send no heartbeats (§8.6) and the
    # heartbeat timeout is as short.
    alice, bob = await realtime.users(2)
    cid = await realtime.group(alice, bob)
    topic = f"conversation:{cid}"
    lively = client_for(http, alice)
    await lively.open()
    silent = client_for(http, bob)
    await silent.open()
    _, join_ref = await lively.join(topic)
    await lively.until(lambda f: f[3] == "presence_state")
    assert (await silent.join(topic))[0][4]["status"] == "ok"
    await lively.until(lambda f: f[3] == "presence_diff" and bob.key in f[4]["joins"])
    # bob stops polling: his session ends, and alice (polling all along) sees him leave.
    leave = await lively.until(lambda f: f[3] == "presence_diff" and bob.key in f[4]["leaves"])
    assert leave[0] is None or leave[0] == join_ref
    await wait_until(lambda: len(realtime.hub.sessions_of(bob.id)) == 0)
    assert (await silent.get(silent.token)).json() == {"status": 410}
    assert realtime.hub.counters["longpoll_timeouts"] == 1
    # alice kept polling for longer than both timeouts: still the same session.
    assert len(realtime.hub.sessions_of(alice.id)) == 1
    assert (await lively.heartbeat())[4]["status"] == "ok"
    assert "idle_timeouts" not in realtime.hub.counters


@pytest.mark.parametrize("settings", [{"outbound_max_messages": 4}], indirect=True)
async def test_a_client_that_does_not_poll_is_a_slow_consumer(
    realtime: Realtime, http: httpx.AsyncClient
) -> None:
    user = await realtime.user()
    client = client_for(http, user)
    await client.open()
    heartbeats: list[Any] = [[None, str(n), "phoenix", "heartbeat", {}] for n in range(20)]
    assert await client.post(*heartbeats) == {"status": 200}
    await wait_until(lambda: realtime.hub.counters.get("slow_consumers") == 1)
    with trio.fail_after(10):
        while (await client.poll())["status"] != 410:
            pass
    assert len(client.frames) < 20  # the queue was discarded, as on a websocket (1013)
    await wait_until(lambda: realtime.hub.connection_count == 0)


@pytest.mark.parametrize("settings", [{"max_frame_bytes": 1024}], indirect=True)
async def test_frame_size_and_push_rate_apply_as_on_websockets(
    realtime: Realtime, http: httpx.AsyncClient
) -> None:
    user = await realtime.user()
    limited = client_for(http, user)
    await limited.open()
    # Twice the burst (100) at once: far faster than the 50/s refill, so the bucket runs dry.
    pushes: list[Any] = [[None, str(n), "room:chat", "ping", {}] for n in range(200)]
    assert await limited.post(*pushes[:100]) == {"status": 200}
    assert await limited.post(*pushes[100:]) == {"status": 200}
    refused = await limited.until(lambda f: f[4]["response"].get("reason") == "rate_limited")
    assert refused[4]["status"] == "error"

    big = client_for(http, user)
    await big.open()
    assert await big.post([None, "1", "phoenix", "heartbeat", {"pad": "x" * 2000}]) == {
        "status": 200
    }
    with trio.fail_after(10):
        while (await big.poll())["status"] != 410:
            pass
    assert realtime.hub.counters["oversize_frames"] == 1


# -- bad input ---------------------------------------------------------------------------------


async def test_tokens_that_resolve_to_no_session_of_theirs_get_410(
    realtime: Realtime, http: httpx.AsyncClient
) -> None:
    alice, bob = await realtime.users(2)
    client = client_for(http, alice)
    await client.open()
    assert client.token is not None
    other = client_for(http, bob)
    await other.open()
    signer = tokens(realtime)
    found = signer.verify(client.token)
    assert found is not None
    session_id, user_id = found
    assert user_id == alice.id
    body, _, mac = client.token.partition(".")[2].partition(".")
    flipped = ("A" if mac[0] != "A" else "B") + mac[1:]
    bad = {
        "garbage": f"{TOKEN_PREFIX}garbage",
        "tampered": f"{TOKEN_PREFIX}{body}.{flipped}",
        "signed with another key": SessionTokens("k" * 40, 60).issue(session_id, alice.id),
        "expired": signer.issue(session_id, alice.id, expires=trio.current_time() - 1),
        "another user's id": signer.issue(session_id, bob.id),
        "no such session": signer.issue(uuid.uuid4().bytes, alice.id),
    }
    for name, token in bad.items():
        polled = await client.get(token)
        assert polled.json() == {"status": 410}, name
        posted = await client.post_raw('[null,"9","phoenix","heartbeat",{}]', token=token)
        assert posted.json() == {"status": 410}, name
    # Alice's session token with Bob's credential (his token parameter, or his authToken).
    as_bob = LongPollClient(http, {"token": bob.token})
    assert (await as_bob.get(client.token)).json() == {"status": 410}
    assert (await client.get(client.token, **{"x-phoenix-authtoken": bob.token})).json() == {
        "status": 410
    }
    # POST before open: no session token at all.
    assert (await client.post_raw('[null,"9","phoenix","heartbeat",{}]', token=None)).json() == {
        "status": 410
    }
    # No session was made or lost on the way, and both real ones still work.
    assert realtime.hub.connection_count == 2
    assert realtime.hub.counters["longpoll_opened"] == 2
    for live in (client, other):
        assert (await live.heartbeat())[4]["status"] == "ok"
    assert not [f for f in client.frames if f[1] == "9"]


@pytest.mark.parametrize("settings", [{"longpoll_max_body_bytes": 4096}], indirect=True)
async def test_malformed_posts_are_refused_whole_and_leave_the_session_alone(
    realtime: Realtime, http: httpx.AsyncClient
) -> None:
    user = await realtime.user()
    client = client_for(http, user)
    await client.open()
    heartbeat = '[null,"bad","phoenix","heartbeat",{}]'
    cases: dict[str, tuple[bytes | str, int]] = {
        "oversized": (heartbeat + "\n" + "[" + " " * 5000 + "]", 413),
        "101 lines": ("\n".join([heartbeat] * 101), 400),
        "not JSON": (heartbeat + "\n[not json", 400),
        "neither JSON nor base64": (heartbeat + "\nhello world!", 400),
        "not UTF-8": (heartbeat.encode() + b'\n["\xff"]', 400),
    }
    for name, (body, status) in cases.items():
        response = await client.post_raw(body)
        assert response.status_code == status, name
        answer = response.json()
        assert answer["status"] == status, name
        assert set(answer["error"]) >= {"code", "message"}, name
    # Nothing of those bodies reached the session (their heartbeats would be answered first).
    assert (await client.heartbeat())[4]["status"] == "ok"
    assert not [f for f in client.frames if f[1] == "bad"]
    # 100 lines is the limit, not over it; blank lines and \r\n line ends are fine.
    hundred = "\r\n".join(f'[null,"h{n}","phoenix","heartbeat",{{}}]' for n in range(100))
    assert (await client.post_raw(hundred + "\n\n")).json() == {"status": 200}
    await client.until(lambda f: f[1] == "h99")
    assert realtime.hub.connection_count == 1
    assert realtime.hub.counters["longpoll_bad_posts"] == len(cases)


async def test_binary_frames_in_and_binary_replies_dropped(
    realtime: Realtime, http: httpx.AsyncClient
) -> None:
    # A base64 line is a binary frame (phoenix.js's LongPoll sends ArrayBuffers so); the binary
    # answers cannot be carried in JSON strings (§8.6) and are dropped, text ones still arrive.
    import base64

    from tests.phoenix_client import encode_client_frame

    user = await realtime.user()
    client = client_for(http, user)
    await client.open()
    _, join_ref = await client.join("debug:bin")
    raw = encode_client_frame("2.0.0", join_ref, "77", "debug:bin", "echo", b"\x01\x02")
    assert isinstance(raw, bytes)
    assert await client.post(base64.b64encode(raw).decode()) == {"status": 200}
    # The reply, the push and the broadcast: all binary. They reach the transport's writer as
    # polls take what is queued before them.
    with trio.fail_after(10):
        while realtime.hub.counters.get("longpoll_binary_dropped", 0) < 3:
            await client.poll()
    assert not [f for f in client.frames if f[1] == "77"]
    assert (await client.heartbeat())[4]["status"] == "ok"


@pytest.mark.parametrize(
    "settings", [{"longpoll_max_sessions": 2, "longpoll_max_sessions_per_user": 1}], indirect=True
)
async def test_sessions_are_bounded_in_count(realtime: Realtime, http: httpx.AsyncClient) -> None:
    alice, bob, carol = await realtime.users(3)
    await client_for(http, alice).open()
    again = await client_for(http, alice).get()
    assert again.status_code == 429
    assert again.json()["status"] == 500  # phoenix.js retries a GET only on 500
    assert again.json()["error"]["code"] == "too_many_sessions"
    await client_for(http, bob).open()
    full = await client_for(http, carol).get()
    assert full.status_code == 503 and full.json()["status"] == 500
    assert full.headers["retry-after"]
    assert realtime.hub.connection_count == 2


@pytest.mark.parametrize("settings", [{"actors": {"session_mailbox": 1}}], indirect=True)
async def test_a_post_the_session_does_not_take_within_the_window_gets_408(
    realtime: Realtime, http: httpx.AsyncClient
) -> None:
    # The session is held up in a join (its membership read waits for a table lock taken here),
    # its one-frame mailbox fills, and the next POST cannot hand its frames over in time.
    user, other = await realtime.users(2)
    cid = await realtime.group(user, other)
    client = client_for(http, user)
    await client.open()
    locker = await realtime.context.database.connect_own("test-lock")
    try:
        await locker.execute("BEGIN")
        await locker.execute("LOCK TABLE members IN ACCESS EXCLUSIVE MODE")
        join = ["1", "1", f"conversation:{cid}", "phx_join", {}]
        assert await client.post(join) == {"status": 200}
        heartbeats: list[Any] = [[None, f"h{n}", "phoenix", "heartbeat", {}] for n in range(3)]
        assert await client.post(*heartbeats) == {"status": 408}
        assert realtime.hub.counters["longpoll_post_timeouts"] == 1
        await locker.execute("ROLLBACK")
    finally:
        locker.close()
    # Once the session moves on it takes what was posted, as Phoenix's does after a 408.
    joined = await client.until(lambda f: f[1] == "1")
    assert joined[4]["status"] == "ok"
    await client.until(lambda f: f[1] == "h2")


@pytest.mark.parametrize("settings", [{"longpoll_window_seconds": 60.0}], indirect=True)
async def test_a_server_drain_answers_held_polls_and_stops(
    settings: Settings, nursery: trio.Nursery
) -> None:
    from parley.service import RunningServer, serve

    stop = trio.Event()
    done = trio.Event()

    async def run(task_status: trio.TaskStatus[RunningServer]) -> None:
        await serve(settings, stop=stop, task_status=task_status)
        done.set()

    running: RunningServer = await nursery.start(run)
    realtime = Realtime(running)
    user = await realtime.user()
    # No kept-alive connection: an idle one would hold Hypercorn's drain for its whole grace.
    no_keepalive = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=realtime.http, timeout=30, limits=no_keepalive) as http:
        client = client_for(http, user)
        await client.open()
        assert (await client.join(f"user:{user.id}"))[0][4]["status"] == "ok"

        transport: LongPollTransport = running.longpoll
        answers: list[dict[str, Any]] = []

        async def held_poll() -> None:
            answers.append(await client.poll())

        async with trio.open_nursery() as polls:
            polls.start_soon(held_poll)
            await wait_until(lambda: transport.held_polls == 1)
            stop.set()  # the sessions close with 1012 first: the held poll is answered 410
    with trio.fail_after(20):
        await done.wait()
    assert answers == [{"status": 410}]
