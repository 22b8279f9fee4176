"""The outbound queue of one connection: frames waiting for the transport's writer.

Bounded twice, in frames (`socket.outbound_max_messages`) and in bytes
(`socket.outbound_max_bytes`). `put` never blocks: pubsub fans a broadcast out by calling every
subscriber in turn, so a put that waited would let one slow socket stall a whole conversation.
A put that would cross either bound queues nothing and returns False; the session then closes the
connection as a slow consumer (close code 1013, docs/realtime.md).

The transport's writer takes *everything* pending with one `take_all` and writes it in one go,
so a burst of broadcasts costs one wake-up of the writer, not one per frame. A transport that can
write without waiting may also set `write_now`: while its writer is idle (parked, nothing queued),
frames skip it and are written with one non-blocking write and no task switch at all (the fast
path's fan-out, DESIGN §7); whatever the transport cannot write at once it keeps and asks for with
`request_flush`, and the writer takes over. When `defer` is set too (the hub's flusher), such
frames are not written by `put` itself but once per scheduler turn: `put` queues the frame and
hands the queue to `defer` once, and the flusher's `write_deferred` writes all the frames the
connection got in that turn with one system call. A write costs the same kernel time however
little it carries, and a loaded server publishes several messages of a conversation per turn:
under load the number of writes per delivery falls by itself, like the writer's batches
(docs/fast_path.md has the figures).

`close(code, reason)` is how the session (or the hub, for revocations) ends the connection: the
writer finishes what is queued (unless `discard` is set, as for a slow consumer whose queue is
the problem), then sends a close frame with that code. Frames put after `close` are dropped. A
protocol with close codes of its own (Pusher's 4200 for a restart) maps each close through
`closing_map`, which may add one last frame (its error frame) before the close.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import trio

from parley.api.socket.core.message import Frame

CloseMapping = Callable[[int, str], tuple[int, str, Frame | None]]
"""A protocol's own close: the core's close code and reason -> the code to send, its reason, and
a last frame to send before it (Pusher: `pusher:error`), or None."""


@dataclass(frozen=True, slots=True)
class CloseRequest:
    """Why and how the server closes the connection."""

    code: int
    reason: str


class OutboundQueue:
    """A non-blocking, doubly bounded frame queue with a single consumer (the writer)."""

    __slots__ = (
        "_deferred",
        "_flush_requested",
        "_frames",
        "_writer",
        "bytes",
        "close_request",
        "closing_map",
        "defer",
        "high_water_bytes",
        "high_water_frames",
        "max_bytes",
        "max_frames",
        "sent_bytes",
        "sent_frames",
        "write_now",
    )

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        if max_frames < 1 or max_bytes < 1:
            raise ValueError("outbound bounds must be >= 1")
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._frames: list[Frame] = []
        self._writer: trio.lowlevel.Task | None = None
        """The writer while it waits for frames. A bare task handle rather than a trio.Event:
        one wake-up per batch, and nothing allocated per idle connection."""
        self._flush_requested = False
        self.write_now: Callable[[list[Frame]], bool] | None = None
        """The transport's immediate write, if it has one: True when it took the frames."""
        self.defer: Callable[[OutboundQueue], None] | None = None
        """Schedules `write_deferred` for the end of the scheduler turn (the hub's flusher);
        without it, frames for the idle writer are written by `put` itself."""
        self._deferred = False
        self.closing_map: CloseMapping | None = None
        """The protocol's own close codes (`transport.Wire.closing`): maps each `close`."""
        self.bytes = 0
        self.close_request: CloseRequest | None = None
        self.high_water_frames = 0
        self.high_water_bytes = 0
        self.sent_frames = 0
        self.sent_bytes = 0

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def closing(self) -> bool:
        return self.close_request is not None

    def put(self, frame: Frame) -> bool:
        """Queue `frame`; False (nothing queued) when it would cross a bound.

        After `close` the frame is silently dropped and True is returned: the connection is going
        away anyway and the caller has nothing to do about it.
        """
        if self.close_request is not None:
            return True
        size = len(frame.data)
        if len(self._frames) >= self.max_frames or self.bytes + size > self.max_bytes:
            return False
        self._frames.append(frame)
        self.bytes += size
        if len(self._frames) > self.high_water_frames:
            self.high_water_frames = len(self._frames)
        if self.bytes > self.high_water_bytes:
            self.high_water_bytes = self.bytes
        if self.write_now is None or self._writer is None:
            self._wake_writer()  # no direct writes, or the writer is busy: it takes the frame
        elif self.defer is None:
            self.write_deferred()  # the writer is parked with nothing queued: nothing overtaken
        elif not self._deferred:
            self._deferred = True
            self.defer(self)
        return True

    def write_deferred(self) -> None:
        """Write what `put` queued for the idle writer, in one go (the flusher's turn, or at once
        without `defer`); if the writer was woken meanwhile (a close, a flush), it takes it."""
        self._deferred = False
        frames = self._frames
        if not frames or self._writer is None or self.write_now is None:
            return
        if self.write_now(frames):
            self._frames = []
            self.bytes = 0
            self.record_sent(frames)
        else:
            self._wake_writer()

    def close(self, code: int, reason: str, *, discard: bool = False) -> bool:
        """Ask the writer to close with `code` after the queued frames (or at once, `discard`).

        The first close wins; returns False if the queue was already closing.
        """
        if self.close_request is not None:
            return False
        last = None
        if self.closing_map is not None:
            code, reason, last = self.closing_map(code, reason)
        self.close_request = CloseRequest(code, reason)
        if discard:
            self._frames = []
            self.bytes = 0
        if last is not None:  # the protocol's last word (Pusher's `pusher:error`), past bounds
            self._frames.append(last)
            self.bytes += len(last)
        self._wake_writer()
        return True

    async def take_all(self) -> list[Frame]:
        """Wait until something is queued (or the queue closes) and take all of it.

        Returns an empty list when the transport asked for a flush (`request_flush`: it holds
        bytes it could not write at once), or once the queue is closing and drained: the writer
        then sends the close frame from `close_request`.
        """
        while not self._frames and not self._flush_requested:
            if self.close_request is not None:
                return []
            self._writer = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(self._abort_wait)
        self._flush_requested = False
        frames, self._frames = self._frames, []
        self.bytes = 0
        return frames

    def request_flush(self) -> None:
        """The transport holds unwritten bytes: wake the writer even with no frame queued."""
        self._flush_requested = True
        self._wake_writer()

    def _wake_writer(self) -> None:
        writer = self._writer
        if writer is not None:
            self._writer = None
            trio.lowlevel.reschedule(writer)

    def _abort_wait(self, _: object) -> trio.lowlevel.Abort:
        self._writer = None
        return trio.lowlevel.Abort.SUCCEEDED

    def record_sent(self, frames: list[Frame]) -> None:
        """Counters for the writer: frames and bytes actually handed to the transport."""
        self.sent_frames += len(frames)
        self.sent_bytes += sum(len(frame.data) for frame in frames)
