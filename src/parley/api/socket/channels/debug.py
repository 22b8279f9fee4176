"""`debug:{name}`: protocol edge cases for conformance tests, routed outside prod only."""

from __future__ import annotations

import time
from typing import Any

from parley.api.socket.core.channel import (
    NO_REPLY,
    UNAUTHORIZED,
    UNKNOWN_EVENT,
    Channel,
    HandlerReply,
    HandlerResult,
    StopChannel,
    ok,
    refused,
    reply,
)
from parley.api.socket.core.message import Message


class DebugChannel(Channel):
    """A test channel for protocol edge cases the app channels never produce (§14 items 14, 21,
    25, 26, 27, 30). Routed only when `server.env` is not `prod`; any signed-in user may join.

    Events: `reply_bare` {status?} -> that status with `{}`; `noreply` -> nothing; `stop` -> ok,
    then `phx_close`; `broadcast_from` / `broadcast` {event, payload} -> to the topic; `push`
    {event, payload} -> this client; `presence_update` {meta} -> a presence meta update; `crash`
    -> raises; any binary payload -> a binary reply (kind 1), push (kind 0) and broadcast (kind 2)
    of the same bytes. `join` {fail: reason} refuses with that reason.
    """

    presence = True

    async def join(self, payload: Any) -> HandlerReply:
        if not self.signed_in:
            return refused(UNAUTHORIZED)
        if isinstance(payload, dict) and isinstance(payload.get("fail"), str):
            return refused(payload["fail"])
        if isinstance(payload, dict) and payload.get("crash"):
            raise RuntimeError("join crash requested")
        return ok({"joined": self.topic})

    def presence_meta(self) -> dict[str, Any]:
        return {"online_at": int(time.time()), "status": "online"}

    async def handle_in(self, event: str, payload: Any, message: Message) -> HandlerResult:
        if isinstance(payload, bytes):
            self.socket.push("binary_push", payload)
            self.socket.broadcast("binary_broadcast", payload)
            return ok(payload)
        data = payload if isinstance(payload, dict) else {}
        if event == "reply_bare":
            status = data.get("status", "ok")
            return reply(status if isinstance(status, str) else "ok")
        if event == "noreply":
            return NO_REPLY
        if event == "stop":
            return StopChannel("normal", ok({"stopping": True}))
        if event in ("broadcast", "broadcast_from", "push"):
            name = data.get("event")
            body = data.get("payload", {})
            if not isinstance(name, str) or not isinstance(body, dict):
                return refused("invalid")
            if event == "broadcast":
                self.socket.broadcast(name, body)
            elif event == "broadcast_from":
                self.socket.broadcast_from(name, body)
            else:
                self.socket.push(name, body)
            return ok()
        if event == "presence_update":
            meta = data.get("meta")
            if not isinstance(meta, dict):
                return refused("invalid")
            ref = self.socket.update_presence(str(self.user_id), meta)
            return ok({"phx_ref": ref})
        if event == "crash":
            raise RuntimeError("crash requested")
        return refused(UNKNOWN_EVENT)
