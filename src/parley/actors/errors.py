"""Errors of the actor runtime. Domain errors are not here: actors put those in their replies."""

from __future__ import annotations


class ActorError(Exception):
    """Base class of every error raised by the actor runtime."""

    def __init__(self, actor_id: str, message: str) -> None:
        super().__init__(f"{actor_id}: {message}")
        self.actor_id = actor_id


class ActorUnavailable(ActorError):
    """The actor is gone, or went down before answering; the API edge maps it to 503."""


class ActorCrashed(ActorUnavailable):
    """The actor crashed while handling this very call; `__cause__` is the error it raised.

    The actor itself is restarted by its supervisor (as a GenServer would be), so retrying the call
    reaches a fresh incarnation.
    """


class CallTimeout(ActorError):
    """No reply arrived within the call's timeout."""

    def __init__(self, actor_id: str, message_type: str, timeout: float) -> None:
        super().__init__(actor_id, f"no reply to {message_type} within {timeout:g}s")
        self.message_type = message_type
        self.timeout = timeout


class MailboxFull(ActorError):
    """A cast found the mailbox full and the actor kind's overflow policy is `Overflow.RAISE`."""


class ActorKilled(ActorError):
    """The exit reason of an actor killed from outside (`ActorRef.kill`) or by mailbox overflow."""

    def __init__(self, actor_id: str, reason: str) -> None:
        super().__init__(actor_id, f"killed: {reason}")
        self.reason = reason


class AlreadyRegistered(ActorError):
    """`Registry.register` found another live actor under the key (`actor_id` is that actor)."""

    def __init__(self, actor_id: str, key: str) -> None:
        super().__init__(actor_id, f"already registered under {key!r}")
        self.key = key
