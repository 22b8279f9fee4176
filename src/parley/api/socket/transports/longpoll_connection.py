"""One long-poll session's `transport.Connection`, and the POST bodies that feed it.

POSTs hand their frames to the pump's reader (`post` -> `receive`), polls take what the writer
sends (`send_frames` -> `poll`); both meet the pump through unbuffered channels, so a session
holds at most the one batch its writer offers to the next poll and one POST in flight. The
connection also keeps the session's idle deadline: the session timeout while no poll is
outstanding, infinity while one is (long-poll clients send no heartbeats, PHOENIX_PROTOCOL.md §8.6).
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson
import trio

from parley.api.socket.core.message import Frame
from parley.api.socket.core.transport import InboundFrame

if TYPE_CHECKING:
    from parley.api.socket.core.hub import SessionHandle, SocketHub


@dataclass(eq=False, slots=True)
class _Batch:
    """The frames of one POST, handed to the session one by one by the pump's reader."""

    frames: list[InboundFrame]
    next: int = 0
    gone: bool = False
    """The session ended before every frame was handed over."""
    done: trio.Event = field(default_factory=trio.Event)


class LongPollConnection:
    """`transport.Connection` of one session: POSTs feed `receive`, polls take `send_frames`.

    Both meet the pump through unbuffered channels, so nothing queues here beyond the batch the
    writer holds out to the next poll: frames wait in the session's bounded outbound queue, and
    a client that stops polling becomes a slow consumer (1013) as on a websocket.
    """

    def __init__(self, hub: SocketHub, handle: SessionHandle, timeout: float) -> None:
        self._hub = hub
        self._handle = handle
        self._timeout = timeout
        self._batches_in, self._batches = trio.open_memory_channel[_Batch](0)
        self._offers_in, self._offers = trio.open_memory_channel[list[Frame]](0)
        self._batch: _Batch | None = None
        self._post_lock = trio.Lock()
        self.polls = 0
        """Polls of this session being held (at most one for long, see `poll`)."""
        self._poll_scope: trio.CancelScope | None = None
        self.idle = trio.CancelScope(deadline=trio.current_time() + timeout)
        """The scope the pump runs in: its deadline is the session timeout while no poll is
        outstanding, infinity while one is."""
        handle.last_frame_at = math.inf

    async def receive(self) -> InboundFrame | None:
        # The pump asks for the next frame once the previous one is in the session's mailbox.
        self._handle.last_frame_at = math.inf  # `SessionHandle.inbound` set it to now
        batch = self._batch
        if batch is not None:
            if batch.next < len(batch.frames):
                batch.next += 1
                return batch.frames[batch.next - 1]
            self._batch = None
            batch.done.set()
        batch = self._batch = await self._batches.receive()
        batch.next = 1
        return batch.frames[0]

    async def send_frames(self, frames: list[Frame]) -> None:
        texts = [frame for frame in frames if not frame.binary]
        if len(texts) < len(frames):  # §8.6: messages are JSON strings, binary cannot go
            self._hub.count("longpoll_binary_dropped", len(frames) - len(texts))
        if texts:
            await self._offers_in.send(texts)  # returns once a poll took them

    async def close(self, code: int, reason: str) -> None:
        # No close frame over HTTP: every waiting and later poll gets 410, and the client
        # reconnects, which is what each of the session's close codes asks for.
        self._offers_in.close()
        await trio.lowlevel.checkpoint()

    async def poll(self, window: float) -> list[Frame] | None:
        """Frames for a poll: some, [] after `window` (or when a newer poll takes over), or None
        once the session is over."""
        if self._poll_scope is not None:
            self._poll_scope.cancel()
        self.polls += 1
        self.idle.deadline = math.inf
        scope = self._poll_scope = trio.move_on_after(window)
        try:
            with scope:
                try:
                    return await self._offers.receive()
                except trio.EndOfChannel:
                    return None
            return []
        finally:
            if self._poll_scope is scope:
                self._poll_scope = None
            self.polls -= 1
            if not self.polls:
                self.idle.deadline = trio.current_time() + self._timeout

    async def post(self, frames: list[InboundFrame], window: float) -> int:
        """Hand `frames` to the session in order, one POST after the other: 200 once each is in
        its mailbox, 408 when that takes longer than `window`, 410 when the session ends first."""
        batch = _Batch(frames)
        with trio.move_on_after(window):
            async with self._post_lock:
                try:
                    await self._batches_in.send(batch)
                except trio.BrokenResourceError:
                    return 410
                await batch.done.wait()
            return 410 if batch.gone else 200
        return 408

    def end(self) -> None:
        """The pump is over: answer what waits (410) and refuse what comes."""
        self._offers_in.close()
        self._batches.close()
        batch, self._batch = self._batch, None
        if batch is not None:
            batch.gone = True
            batch.done.set()


class BadBody(ValueError):
    """A POST body to refuse whole (400)."""


def parse_body(body: bytes, *, ndjson: bool, max_lines: int) -> list[InboundFrame]:
    """The frames of a POST body (§8.4), or `BadBody` for a body not to hand over at all."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadBody("the body is not UTF-8") from None
    lines = [line.removesuffix("\r") for line in text.split("\n")] if ndjson else [text]
    lines = [line for line in lines if line]
    if len(lines) > max_lines:
        raise BadBody(f"more than {max_lines} frames in one POST")
    frames: list[InboundFrame] = []
    for number, line in enumerate(lines, 1):
        if line[0] in "[{" or not ndjson:
            try:
                orjson.loads(line)
            except orjson.JSONDecodeError:
                raise BadBody(f"line {number} is not JSON") from None
            frames.append(InboundFrame(line))
        else:
            try:
                frames.append(InboundFrame(base64.b64decode(line, validate=True)))
            except ValueError:  # binascii.Error
                raise BadBody(f"line {number} is neither JSON nor base64") from None
    return frames
