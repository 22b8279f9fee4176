"""What nodes say to each other on the bus, and how it is packed into NOTIFYs and PUBLISHes.

A bus message is one *batch*: `[node, epoch, [envelope, ...]]` in JSON, at most
`cluster.envelope_batch_max_bytes` long. Batching is the lever on every engine (docs/cluster.md:
32 envelopes per NOTIFY cost the publisher 5.8 µs each instead of 153), so a node's flusher packs
every envelope queued while its previous batch was in flight into as few batches as fit.

Envelopes (JSON arrays, the kind first):
- `["p", topics, event, payload]` a broadcast on every topic of `topics` (one payload shared by
  the topics it went to: a message's `message` event to every member's `user:` topic is one).
- `["o", topics, event, payload, stream, seq]` the same, ordered: receivers deliver each topic's
  `stream` (a conversation) in `seq` order, drop repeats and fill gaps from PostgreSQL.
- `["h", presence_counter]` the node's heartbeat (and its own bus probe).
- `["d", counter, topic, joins, leaves]` a presence delta of the sender's own entries.
- `["s", counter, state]` the sender's whole presence (`{topic: {key: {"metas": [...]}}}`).
- `["q", node]` asks `node` for its presence state.
- `["f", fragment_id, index, count, base64]` a piece of one envelope too big for a batch alone
  (PostgreSQL's NOTIFY payload ends at 8000 bytes); the receiver joins the pieces back.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson


class MalformedBatch(ValueError):
    """A bus message that is not a batch (another program on the channel, or a bug)."""


@dataclass(frozen=True, slots=True)
class Batch:
    node: str
    epoch: int
    envelopes: list[list[Any]]


def encode_envelope(envelope: list[Any]) -> bytes:
    """One envelope's JSON; a payload of bytes travels as `{"$bytes": base64}`."""
    return orjson.dumps(envelope, default=_bytes_as_json)


def pack(node: str, epoch: int, envelopes: Iterable[bytes], max_bytes: int) -> Iterator[bytes]:
    """The batches that carry `envelopes` (encoded), in order, each at most `max_bytes` long;
    an envelope too long for a batch alone is split into fragments."""
    head = orjson.dumps(node) + b"," + str(epoch).encode()
    budget = max_bytes - len(head) - 8
    parts: list[bytes] = []
    size = 0
    fragment_id = 0
    for envelope in envelopes:
        pieces = [envelope]
        if len(envelope) > budget:
            fragment_id += 1
            pieces = list(_fragments(envelope, fragment_id, budget))
        for piece in pieces:
            if parts and size + len(piece) + 1 > budget:
                yield b"[" + head + b",[" + b",".join(parts) + b"]]"
                parts, size = [], 0
            parts.append(piece)
            size += len(piece) + 1
    if parts:
        yield b"[" + head + b",[" + b",".join(parts) + b"]]"


def unpack(message: bytes | str) -> Batch:
    """A batch as `pack` made it; raises `MalformedBatch` for anything else."""
    try:
        decoded = orjson.loads(message)
        node, epoch, envelopes = decoded
    except (orjson.JSONDecodeError, TypeError, ValueError):
        raise MalformedBatch("not a batch") from None
    if not isinstance(node, str) or not isinstance(epoch, int) or not isinstance(envelopes, list):
        raise MalformedBatch("not a batch")
    return Batch(node, epoch, [e for e in envelopes if isinstance(e, list) and e])


class Reassembly:
    """Joins the fragments of one sender back into envelopes (they arrive in order; a fragment
    lost on the way loses only its own envelope)."""

    def __init__(self) -> None:
        self._id: int | None = None
        self._pieces: list[bytes] = []

    def add(self, fragment: list[Any]) -> list[Any] | None:
        """The whole envelope once its last piece is in, else None."""
        try:
            _, fragment_id, index, count, text = fragment
            piece = base64.b64decode(text)
        except (ValueError, TypeError):
            return None
        if index == 0:
            self._id, self._pieces = fragment_id, []
        if fragment_id != self._id or index != len(self._pieces):
            self._id, self._pieces = None, []  # a piece went missing: drop the envelope
            return None
        self._pieces.append(piece)
        if len(self._pieces) < count:
            return None
        whole = b"".join(self._pieces)
        self._id, self._pieces = None, []
        try:
            envelope = orjson.loads(whole)
        except orjson.JSONDecodeError:
            return None
        return envelope if isinstance(envelope, list) and envelope else None


def payload_of(raw: Any) -> Any:
    """A payload as it was published: `{"$bytes": base64}` back to bytes."""
    if isinstance(raw, dict) and len(raw) == 1 and "$bytes" in raw:
        return base64.b64decode(raw["$bytes"])
    return raw


def _fragments(envelope: bytes, fragment_id: int, budget: int) -> Iterator[bytes]:
    step = max(1, (budget - 64) * 3 // 4)
    count = -(-len(envelope) // step)
    for index in range(count):
        text = base64.b64encode(envelope[index * step : (index + 1) * step]).decode()
        yield orjson.dumps(["f", fragment_id, index, count, text])


def _bytes_as_json(value: object) -> object:
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    raise TypeError(f"{type(value).__name__} is not JSON")
