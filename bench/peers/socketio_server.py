"""The python-socketio peer: a rooms server on uvicorn, the same workloads as Parley, no database.

Events (socket.io, acknowledged through the socket.io ack callback): `join` {topic} -> enters
the room; `heartbeat` {} -> {}; `new_msg` {topic, body, client_id} -> acked with {id, seq} and
emitted as `new_msg` {id, seq, body, client_id} to every socket in the room, the sender included
(as Parley does). No auth, nothing stored. One uvicorn process, one worker.

    .venv/bin/python bench/peers/socketio_server.py --port 4300
"""

from __future__ import annotations

import argparse
import itertools
from collections import defaultdict
from typing import Any

import socketio
import uvicorn

sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=[], logger=False)
app = socketio.ASGIApp(sio)
ids = itertools.count(1)
seqs: dict[str, int] = defaultdict(int)


@sio.event
async def join(sid: str, data: dict[str, Any]) -> dict[str, Any]:
    await sio.enter_room(sid, data["topic"])
    return {}


@sio.event
async def heartbeat(sid: str, data: Any) -> dict[str, Any]:
    return {}


@sio.event
async def new_msg(sid: str, data: dict[str, Any]) -> dict[str, Any]:
    topic = data["topic"]
    seqs[topic] += 1
    message = {
        "id": next(ids),
        "seq": seqs[topic],
        "body": data.get("body"),
        "client_id": data.get("client_id"),
    }
    await sio.emit("new_msg", message, room=topic)
    return {"id": message["id"], "seq": message["seq"]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=4300)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
