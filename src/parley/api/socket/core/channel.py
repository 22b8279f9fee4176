"""The channel contract: what a topic handler implements, in the shape of Phoenix's `channel.ex`.

A `Channel` subclass handles one topic pattern (the `Router` says which). The session makes one
instance per join and calls, in order:

* `join(payload)` -> `ok(response)` or `error(response)`; runs before anything is registered, so
  a refusal leaves nothing behind (§14 item 10). It must not push (§4.2: the join reply comes
  first); pushes belong in `after_join`.
* `after_join()` -> runs first in the instance's own task, after the join reply is queued
  (presence: track, then push `presence_state` to this client only).
* `handle_push(event, payload, message, answer)` -> the one entry point for a client's push,
  callback-first as Phoenix's `handle_in/3` is (`{:noreply, socket}` now, `reply/2` later): the
  channel calls `answer` exactly once, now or later and from any task, with `ok(...)` /
  `error(...)` / `reply(status, ...)` (a reply with this message's ref and join_ref), `NO_REPLY`,
  `StopChannel(...)` (reply if any, then `phx_close`), or `Awaiting(handler)` to have the
  instance run `await handler()` in its task and answer with that. Events stay in order: the
  instance hands the channel nothing else until it is answered. The default answers
  `Awaiting(handle_in)`.
* `handle_in(event, payload, message)` -> the awaiting form, for events whose work must wait
  (a database read): the same results, returned. An exception from either is a crash:
  `phx_error` for this instance only, and the client rejoins (§4.6).
* `handle_out(broadcast)` -> only for events named in `intercept` and for broadcasts of extra
  topics the channel subscribed to: return the broadcast (fastlane), a modified `Broadcast` (or
  a tuple of them: each goes through the fastlane, so derived broadcasts cached on the original
  are still encoded once per serializer), a
  `Message` push for this client only (`self.push_message`), None to suppress it, or
  `StopChannel` to end the instance at once (`phx_close`; nothing published after this
  broadcast reaches it, as Phoenix's `{:stop, reason, socket}`). Must not block: it runs inside
  the publisher's fan-out.
* `terminate(reason)` -> last, synchronously, whatever ended the instance (left, closed,
  crashed, duplicate join, socket closed).

`self.socket` is the join as a channel sees it (`ChannelSocket`, implemented by the core's
`ChannelInstance`): `push`, `broadcast`, `broadcast_from`, `subscribe`, `track`,
`update_presence`, `presence_state`, `has_joined`, `joined_topics`, `principal`.
Application channels (`parley.api.socket.channels`) get what else they need (chat, settings)
through their constructor, from the route table built at the composition root.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Final, Protocol

from parley.api.socket.core import message as m
from parley.api.socket.core.message import Broadcast, Message, Payload, Ref

if TYPE_CHECKING:
    from parley.api.socket.core.principal import SocketPrincipal

# -- handler results ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HandlerReply:
    """A `phx_reply` with `status` and `response` (None -> `{}`, §14 item 14)."""

    status: str
    response: Payload = None


class _NoReply:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_REPLY"


NO_REPLY: Final = _NoReply()
"""The handler sends no reply (the client's push times out unless it expects none)."""


@dataclass(frozen=True, slots=True)
class StopChannel:
    """End this channel instance normally: the optional reply, then `phx_close` (§14 item 21)."""

    reason: str = "normal"
    reply: HandlerReply | None = None


HandlerResult = HandlerReply | _NoReply | StopChannel


@dataclass(frozen=True, slots=True)
class Awaiting:
    """An answer still to be awaited: the instance runs `await handler()` in its own task
    (cancelled if the channel ends first) and answers the push with the result."""

    handler: Callable[[], Awaitable[HandlerResult]]


Answer = Callable[[HandlerResult | Awaiting], None]
"""How a channel answers a push (`Channel.handle_push`): once, now or later, from any task."""


def ok(response: Payload = None) -> HandlerReply:
    return HandlerReply("ok", response)


def error(response: Payload = None) -> HandlerReply:
    return HandlerReply("error", response)


def reply(status: str, response: Payload = None) -> HandlerReply:
    return HandlerReply(status, response)


def refused(reason: str) -> HandlerReply:
    return HandlerReply("error", {"reason": reason})


def invalid(errors: dict[str, list[str]]) -> HandlerReply:
    """The reply refusing a push whose payload breaks a rule, naming each field and why (the
    `errors` map of Phoenix apps' changeset replies; REST puts the same map in `error.fields`)."""
    return HandlerReply("error", {"reason": "invalid", "errors": errors})


UNAUTHORIZED: Final = "unauthorized"
UNKNOWN_EVENT: Final = "unknown event"


# -- what a channel sees of its join ------------------------------------------------------------


class ChannelSocket(Protocol):
    """A channel's view of its join, the `ChannelInstance` (`self.socket`): it is also the
    pubsub subscriber of the topic (`deliver`), so it can be excluded from a broadcast."""

    @property
    def principal(self) -> SocketPrincipal: ...

    @property
    def join_ref(self) -> Ref: ...

    def joined_topics(self) -> frozenset[str]:
        """Topics this socket has joined right now."""
        ...

    def has_joined(self, topic: str) -> bool:
        """Whether this socket has `topic` joined right now (cheap: for handle_out intercepts)."""
        ...

    def push(self, event: str, payload: Any) -> None:
        """Send `event` to this client only (the channel's join_ref, ref null)."""
        ...

    def broadcast(self, event: str, payload: Any) -> int:
        """`event` to every subscriber of the topic, this one included."""
        ...

    def broadcast_from(self, event: str, payload: Any) -> int:
        """`event` to every subscriber of the topic but this channel instance (§14 item 25)."""
        ...

    def subscribe(self, topic: str) -> None:
        """Also take broadcasts of `topic`; they reach the channel's `handle_out`."""
        ...

    def track(self, key: str, meta: dict[str, Any]) -> str:
        """Presence on this topic for as long as the join lives; returns the `phx_ref`."""
        ...

    def update_presence(self, key: str, meta: dict[str, Any]) -> str: ...

    def presence_state(self) -> dict[str, Any]: ...

    def deliver(self, broadcast: Broadcast) -> None: ...


# -- the behaviour --------------------------------------------------------------------------


class Channel:
    """Base class: joins nobody, answers unknown events with `{"reason": "unknown event"}`."""

    intercept: frozenset[str] = frozenset()
    """Events of the channel's own topic that go through `handle_out` (may be set per instance)."""
    presence: bool = False
    """The channel shows its client a presence snapshot of the topic (`socket.presence_state()`,
    in `join` or `after_join`) and then its diffs; the core drops the topic's diffs until that
    snapshot, so none repeats what it holds. The base class's `after_join` then tracks the user
    (key: user id) and pushes `presence_state`. May be set per instance (before the join ends)."""

    def __init__(self, socket: ChannelSocket, topic: str) -> None:
        self.socket = socket
        self.topic = topic

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.topic}>"

    @property
    def principal(self) -> SocketPrincipal:
        return self.socket.principal

    @property
    def user_id(self) -> uuid.UUID:
        return self.socket.principal.user_id

    @property
    def signed_in(self) -> bool:
        """A full session (access or API-session token), not a one-topic token."""
        return self.principal.signed_in

    async def join(self, payload: Any) -> HandlerReply:
        return refused(UNAUTHORIZED)

    async def after_join(self) -> None:
        if self.presence:
            self.socket.track(str(self.user_id), self.presence_meta())
            self.socket.push(m.PRESENCE_STATE, self.socket.presence_state())

    def presence_meta(self) -> dict[str, Any]:
        return {"online_at": int(time.time())}

    def handle_push(self, event: str, payload: Any, message: Message, answer: Answer) -> None:
        """Answer a client's push by calling `answer` exactly once (see the module docstring).

        Events whose work actors answer through callbacks (a chat send: the conversation's
        actor, then the writer) answer from those callbacks, so a push costs no task, cancel
        scope or wake-up of its own (docs/realtime.md, "Pushes without a task"). The default
        hands the event to `handle_in` in the instance's task.
        """
        answer(Awaiting(partial(self.handle_in, event, payload, message)))

    async def handle_in(self, event: str, payload: Any, message: Message) -> HandlerResult:
        """The awaiting form of `handle_push`, run in the instance's task: the push's answer."""
        return refused(UNKNOWN_EVENT)

    def handle_out(
        self, broadcast: Broadcast
    ) -> Broadcast | tuple[Broadcast, ...] | Message | StopChannel | None:
        return broadcast

    def terminate(self, reason: str) -> None:
        """Last call for this instance; nothing may be awaited here."""

    def push_message(self, event: str, payload: Any) -> Message:
        """A push for this client only, for `handle_out` to return (carries the join_ref)."""
        return m.push(self.socket.join_ref, self.topic, event, payload)


ChannelFactory = Callable[[ChannelSocket, str], Channel]
"""Makes the channel for one join: (the instance, the topic)."""
