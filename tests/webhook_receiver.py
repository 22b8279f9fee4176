"""A real HTTP server for webhook tests: what an application's webhook endpoint is.

It listens on 127.0.0.1 (a port of its own), speaks HTTP/1.1 through h11 with keep-alive, and
answers each POST with the next status of its `plan` (then `default`); a planned `None` never
answers (a slow receiver: the request stays open until the test ends). Every POST is kept in
`received` (headers with lower-case names, the raw body, what was answered), and
`GET /received` returns them as JSON so that a Node test can validate them with the npm SDK.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import h11
import trio


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int | None
    """What was answered; None: nothing (it hung)."""

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def events(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.json["events"]
        return found


@dataclass
class WebhookReceiver:
    plan: list[int | None] = field(default_factory=list)
    default: int = 200
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _arrived: trio.Event = field(default_factory=trio.Event)

    async def serve(self, *, task_status: trio.TaskStatus[WebhookReceiver]) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hooks"
        task_status.started(self)
        await trio.serve_listeners(self._connection, listeners)

    async def wait_for(
        self,
        predicate: Callable[[list[Received]], bool],
        timeout: float = 30.0,  # noqa: ASYNC109 (test helper API: per-call deadlines)
    ) -> None:
        """Until `predicate(received)` holds (checked at each arrival), at most `timeout` s."""
        with trio.fail_after(timeout):
            while not predicate(self.received):
                self._arrived = trio.Event()
                await self._arrived.wait()

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every event received so far (of `name`), in order of arrival."""
        return [e for r in self.received for e in r.events if name is None or e["name"] == name]

    async def _connection(self, stream: trio.SocketStream) -> None:
        try:
            await self._serve_connection(stream)
        except (trio.BrokenResourceError, h11.RemoteProtocolError):
            return  # the client went away (a timed-out request, a closed pool): its business

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        async with stream:
            while True:
                request, body = await self._request(conn, stream)
                if request is None:
                    return
                if request.method == b"GET":
                    payload = [
                        {"headers": r.headers, "body": r.body.decode(), "status": r.status}
                        for r in self.received
                    ]
                    await self._answer(conn, stream, 200, json.dumps(payload).encode())
                else:
                    status = self.plan.pop(0) if self.plan else self.default
                    headers = {k.decode().lower(): v.decode() for k, v in request.headers}
                    self.received.append(Received(headers, body, status))
                    self._arrived.set()
                    if status is None:
                        await trio.sleep_forever()
                    await self._answer(conn, stream, status, b"ok")
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()

    async def _request(
        self, conn: h11.Connection, stream: trio.SocketStream
    ) -> tuple[h11.Request | None, bytes]:
        request: h11.Request | None = None
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return request, body
            else:  # ConnectionClosed, or PAUSED
                return None, b""

    async def _answer(
        self, conn: h11.Connection, stream: trio.SocketStream, status: int, body: bytes
    ) -> None:
        headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
        for event in (h11.Response(status_code=status, headers=headers), h11.Data(data=body)):
            await stream.send_all(conn.send(event) or b"")
        await stream.send_all(conn.send(h11.EndOfMessage()) or b"")
