"""Writer throughput: messages persisted per second through the whole conversation-actor path.

Runs the real runtime (store, writer, registry, conversation actors) on an embedded PostgreSQL (or
DATABASE_URL), seeds users and conversations, then has concurrent senders push messages through
`Chat.send` (membership check, client-id de-dup, group commit, ack after commit, publish). The same
load is then sent with batching off (`batch_max_rows=1`: one insert and one commit per message) for
comparison, in the same run. Prints one figure line per mode plus the batch-size histogram.

    .venv/bin/python bench/writer.py [--messages 20000] [--conversations 100] [--senders 200]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
import uuid

import trio

from parley.actors.tree import Runtime
from parley.config import Settings, load_settings
from parley.service import database_url, open_database
from parley.store.conversations import ConversationStore
from parley.store.users import UserStore


async def seed(runtime: Runtime, conversations: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Create one group of two users per conversation; returns (conversation, sender) pairs."""
    users, store = UserStore(runtime.database), ConversationStore(runtime.database)
    tag = uuid.uuid4().hex[:8]
    pairs = []
    for n in range(conversations):
        a = await users.create(
            email=f"a{n}-{tag}@b.test", username=f"a{n}_{tag}", password_hash="x"
        )
        b = await users.create(
            email=f"b{n}-{tag}@b.test", username=f"b{n}_{tag}", password_hash="x"
        )
        conversation = await store.create_group(a.id, f"bench {n}", [b.id])
        pairs.append((conversation.id, a.id))
    return pairs


async def measure(
    settings: Settings, dsn: str, messages: int, conversations: int, senders: int
) -> tuple[float, dict[str, int], int]:
    database = open_database(settings, dsn)
    runtime = Runtime(settings, database)
    root = runtime.build_root([])
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        pairs = await seed(runtime, conversations)
        per_sender = messages // senders
        started = time.perf_counter()

        async def sender(index: int) -> None:
            conversation_id, user_id = pairs[index % len(pairs)]
            for n in range(per_sender):
                await runtime.chat.send(conversation_id, user_id, f"message {n}", f"{index}-{n}")

        async with trio.open_nursery() as senders_nursery:
            for index in range(senders):
                senders_nursery.start_soon(sender, index)
        elapsed = time.perf_counter() - started
        stats = runtime.writer.statistics()
        stored = await database.fetchval("SELECT count(*) FROM messages")
        await root.shutdown()
        nursery.cancel_scope.cancel()
    print(
        f"  {stats.batches} batches,"
        f" {stats.commit_seconds_total:.2f}s committing of {elapsed:.2f}s,"
        f" mean commit {1000 * stats.commit_seconds_total / max(stats.batches, 1):.1f} ms"
    )
    return per_sender * senders / elapsed, stats.batch_sizes, int(stored)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = load_settings(overrides={"server": {"data_dir": data_dir, "env": "test"}})
        async with database_url(settings) as dsn:
            total = args.messages - args.messages % args.senders
            batched = await measure(settings, dsn, total, args.conversations, args.senders)
            unbatched_settings = dataclasses.replace(
                settings, writer=dataclasses.replace(settings.writer, batch_max_rows=1)
            )
            unbatched = await measure(
                unbatched_settings, dsn, total // 4, args.conversations, args.senders
            )
    print(f"W5 writer, batched:   {batched[0]:9.0f} messages/s persisted  batch sizes {batched[1]}")
    print(f"W5 writer, unbatched: {unbatched[0]:9.0f} messages/s persisted  (batch_max_rows=1)")
    print(f"W5 batching speed-up: {batched[0] / unbatched[0]:.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--senders", type=int, default=200)
    trio.run(main, parser.parse_args())
