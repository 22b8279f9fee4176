"""Chat traffic for the drills: senders over sockets at a set rate, each message resent by its
client_id until acknowledged, and the check of what the database holds against every ack."""

from __future__ import annotations

import itertools
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import trio

from parley.store import Database
from tests.drills.wire import DrillSocket


@dataclass(frozen=True)
class Ack:
    conversation_id: uuid.UUID
    client_id: str
    seq: int
    sent_at: float
    acked_at: float


@dataclass
class Traffic:
    """What every sender saw: acks, refusals (by reason) and pushes that got no reply."""

    acks: list[Ack] = field(default_factory=list)
    refusals: Counter[str] = field(default_factory=Counter)
    unanswered: int = 0
    resends: int = 0

    def ack_times(self) -> list[float]:
        return sorted(ack.acked_at for ack in self.acks)

    def longest_gap(self, start: float, end: float) -> float:
        """The longest time without any ack in [start, end] (the window's edges count)."""
        inside = [t for t in self.ack_times() if start <= t <= end]
        points = [start, *inside, end]
        return max(b - a for a, b in itertools.pairwise(points))


@dataclass(frozen=True)
class Sender:
    socket: DrillSocket
    conversation_id: uuid.UUID
    name: str

    @property
    def topic(self) -> str:
        return f"conversation:{self.conversation_id}"


async def send_until_acked(
    sender: Sender,
    client_id: str,
    traffic: Traffic,
    *,
    push_timeout: float,
    retry_seconds: float,
) -> None:
    """Send one message, resending the same client_id until it is acknowledged."""
    first = time.monotonic()
    while True:
        reply = await sender.socket.request(
            sender.topic,
            "new_msg",
            {"body": f"drill {client_id}", "client_id": client_id},
            timeout=push_timeout,
        )
        if reply is not None and reply.status == "ok":
            traffic.acks.append(
                Ack(
                    sender.conversation_id,
                    client_id,
                    reply.response["seq"],
                    first,
                    time.monotonic(),
                )
            )
            return
        if reply is None:
            traffic.unanswered += 1
        else:
            traffic.refusals[str(reply.response.get("reason"))] += 1
        traffic.resends += 1
        await trio.sleep(retry_seconds)


async def run_senders(
    senders: list[Sender],
    traffic: Traffic,
    *,
    rate_per_second: float,
    seconds: float,
    push_timeout: float = 10.0,
    retry_seconds: float = 0.1,
) -> None:
    """Every sender sends its share of `rate_per_second` for `seconds`; each message is resent
    until acknowledged, so this returns once every message sent has been acked."""
    interval = len(senders) / rate_per_second

    async def one(index: int, sender: Sender) -> None:
        start = trio.current_time() + interval * index / len(senders)
        for number in range(int(seconds / interval)):
            await trio.sleep_until(start + number * interval)
            await send_until_acked(
                sender,
                f"{sender.name}-{number}",
                traffic,
                push_timeout=push_timeout,
                retry_seconds=retry_seconds,
            )

    async with trio.open_nursery() as nursery:
        for index, sender in enumerate(senders):
            nursery.start_soon(one, index, sender)


@dataclass(frozen=True)
class Audit:
    lost: int
    """Acks whose message the database does not hold at that seq."""
    duplicates: int
    """Messages stored more than once for one client_id, or acked at two different seqs."""
    stored: int


async def audit(database: Database, traffic: Traffic) -> Audit:
    """Compare every ack with the rows of its conversation."""
    conversations = sorted({ack.conversation_id for ack in traffic.acks})
    rows = await database.fetch(
        "SELECT conversation_id, seq, client_id FROM messages"
        " WHERE conversation_id = ANY($1::uuid[])",
        conversations,
    )
    stored = {(row["conversation_id"], row["seq"]): row["client_id"] for row in rows}
    lost = sum(
        1 for ack in traffic.acks if stored.get((ack.conversation_id, ack.seq)) != ack.client_id
    )
    per_client = Counter((row["conversation_id"], row["client_id"]) for row in rows)
    acked_seqs: dict[tuple[uuid.UUID, str], set[int]] = {}
    for ack in traffic.acks:
        acked_seqs.setdefault((ack.conversation_id, ack.client_id), set()).add(ack.seq)
    duplicates = sum(count - 1 for count in per_client.values() if count > 1) + sum(
        len(seqs) - 1 for seqs in acked_seqs.values()
    )
    return Audit(lost, duplicates, len(rows))
