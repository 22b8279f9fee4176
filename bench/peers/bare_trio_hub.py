"""A bare trio WebSocket broadcaster with no database: the baseline Parley is compared with.

It speaks just enough of the Phoenix Channels V2 protocol for the official phoenix client and
the bench workloads: heartbeats on `phoenix`, `phx_join` of any topic (no auth, the token is
ignored), `phx_leave`, and `new_msg` {body, client_id}, acknowledged at once with {id, seq} and
broadcast as `new_msg` {id, seq, body, client_id} to every subscriber of the topic, the sender
included (as Parley does). The broadcast frame is encoded once and queued to each subscriber; every
connection has one writer task draining a bounded queue (a full queue closes that connection,
counted). Nothing is stored.

    .venv/bin/python bench/peers/bare_trio_hub.py --port 4200
"""

from __future__ import annotations

import argparse
import itertools
from collections import defaultdict

import orjson
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

OUTBOUND_MAX = 1024


class Hub:
    def __init__(self) -> None:
        self.topics: dict[str, set[trio.MemorySendChannel[str]]] = defaultdict(set)
        self.ids = itertools.count(1)
        self.seqs: dict[str, int] = defaultdict(int)
        self.overflows = 0

    def broadcast(self, topic: str, frame: str) -> None:
        for queue in list(self.topics.get(topic, ())):
            try:
                queue.send_nowait(frame)
            except trio.WouldBlock:
                self.overflows += 1
                queue.close()
            except trio.ClosedResourceError:
                pass


def reply(join_ref: object, ref: object, topic: str, response: object) -> str:
    return orjson.dumps(
        [join_ref, ref, topic, "phx_reply", {"status": "ok", "response": response}]
    ).decode()


async def writer(ws: WebSocketConnection, queue: trio.MemoryReceiveChannel[str]) -> None:
    async with queue:
        async for frame in queue:
            await ws.send_message(frame)
    await ws.aclose()


async def handler(hub: Hub, request: WebSocketRequest) -> None:
    ws = await request.accept()
    send, receive = trio.open_memory_channel[str](OUTBOUND_MAX)
    joined: set[str] = set()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer, ws, receive)
            while True:
                try:
                    raw = await ws.get_message()
                except ConnectionClosed:
                    break
                join_ref, ref, topic, event, payload = orjson.loads(raw)[:5]
                if event == "heartbeat":
                    send.send_nowait(reply(None, ref, "phoenix", {}))
                elif event == "phx_join":
                    joined.add(topic)
                    hub.topics[topic].add(send)
                    send.send_nowait(reply(join_ref, ref, topic, {}))
                elif event == "phx_leave":
                    joined.discard(topic)
                    hub.topics[topic].discard(send)
                    send.send_nowait(reply(join_ref, ref, topic, {}))
                elif event == "new_msg" and topic in joined:
                    hub.seqs[topic] += 1
                    message = {
                        "id": next(hub.ids),
                        "seq": hub.seqs[topic],
                        "body": payload.get("body"),
                        "client_id": payload.get("client_id"),
                    }
                    send.send_nowait(
                        reply(join_ref, ref, topic, {"id": message["id"], "seq": message["seq"]})
                    )
                    hub.broadcast(
                        topic, orjson.dumps([None, None, topic, "new_msg", message]).decode()
                    )
            nursery.cancel_scope.cancel()
    except trio.WouldBlock:
        hub.overflows += 1
    finally:
        for topic in joined:
            hub.topics[topic].discard(send)
        send.close()


async def main(port: int) -> None:
    hub = Hub()
    print(f"bare trio hub on ws://127.0.0.1:{port}/socket/websocket", flush=True)
    await serve_websocket(
        lambda request: handler(hub, request),
        "127.0.0.1",
        port,
        ssl_context=None,
        max_message_size=1 << 20,
        handler_nursery=None,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=4200)
    trio.run(main, parser.parse_args().port)
