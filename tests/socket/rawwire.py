"""Wire-level helpers for socket tests: a bare HTTP upgrade, and a WebSocket client that can stop
reading (a slow consumer), both on a plain trio TCP stream with wsproto framing."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    RejectConnection,
    Request,
    TextMessage,
)


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]


def _target(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


async def http_request(url: str, method: str, path: str, headers: dict[str, str]) -> HttpAnswer:
    """Send one HTTP/1.1 request with exactly these headers; return the status and headers."""
    host, port = _target(url)
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        with trio.fail_after(5):
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    answer: dict[str, str] = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        answer[name.strip().lower()] = value.strip()
    return HttpAnswer(status, answer)


def upgrade_headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
        **(extra or {}),
    }


class RawSocket:
    """A V2 WebSocket client on a TCP socket with a tiny receive buffer; reads only when asked."""

    def __init__(self, stream: trio.SocketStream, ws: WSConnection) -> None:
        self.stream = stream
        self.ws = ws
        self.messages: list[Any] = []
        self.close_code: int | None = None
        self._refs = 0
        self._partial: list[Any] = []

    @classmethod
    async def open(cls, url: str, token: str, *, rcvbuf: int = 4096) -> RawSocket:
        host, port = _target(url)
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        await sock.connect((host, port))
        stream = trio.SocketStream(sock)
        ws = WSConnection(ConnectionType.CLIENT)
        target = f"/socket/websocket?{urlencode({'token': token, 'vsn': '2.0.0'})}"
        await stream.send_all(ws.send(Request(host=f"{host}:{port}", target=target)))
        raw = cls(stream, ws)
        with trio.fail_after(5):
            while True:
                ws.receive_data(await stream.receive_some(65536))
                for event in ws.events():
                    if isinstance(event, AcceptConnection):
                        return raw
                    if isinstance(event, RejectConnection):
                        raise ConnectionError(f"refused with {event.status_code}")

    async def send(self, frame: list[Any]) -> None:
        await self.stream.send_all(self.ws.send(TextMessage(orjson.dumps(frame).decode())))

    async def join(self, topic: str) -> Any:
        self._refs += 1
        ref = str(self._refs)
        await self.send([ref, ref, topic, "phx_join", {}])
        return await self.read_until(lambda f: f[3] == "phx_reply" and f[1] == ref)

    async def read_until(self, predicate: Any, timeout: float = 5) -> Any:  # noqa: ASYNC109
        with trio.fail_after(timeout):
            while True:
                for index, frame in enumerate(self.messages):
                    if predicate(frame):
                        return self.messages.pop(index)
                if not await self.read_some():
                    raise ConnectionError(f"closed ({self.close_code})")

    async def read_some(self) -> bool:
        """Read and decode what arrives next; False once the server closed the connection."""
        data = await self.stream.receive_some(65536)
        if not data:
            return False
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, TextMessage | BytesMessage):
                self._partial.append(event.data)
                if event.message_finished:
                    parts, self._partial = self._partial, []
                    if isinstance(event, TextMessage):
                        self.messages.append(orjson.loads("".join(parts)))
                    else:
                        self.messages.append(b"".join(parts))
            elif isinstance(event, CloseConnection):
                self.close_code = event.code
                return False
        return True

    async def drain_until_closed(self, timeout: float = 10) -> int | None:  # noqa: ASYNC109
        """Resume reading: everything queued, then the close frame; returns its code."""
        with trio.fail_after(timeout):
            while await self.read_some():
                pass
        return self.close_code

    async def aclose(self) -> None:
        await self.stream.aclose()
