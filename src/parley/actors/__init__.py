"""The actor runtime (mailboxes, refs, call/cast/info, actors as supervised children) and the
registry. Actor kinds and services (conversation, writer, pubsub, ...) live in their own modules
here; docs/architecture.md ("Actors") says which is which, and how the runtime's modules stack.
"""

from parley.actors.actor import Actor as Actor
from parley.actors.actor import ExitKind as ExitKind
from parley.actors.actor import ExitReason as ExitReason
from parley.actors.errors import ActorCrashed as ActorCrashed
from parley.actors.errors import ActorError as ActorError
from parley.actors.errors import ActorKilled as ActorKilled
from parley.actors.errors import ActorUnavailable as ActorUnavailable
from parley.actors.errors import AlreadyRegistered as AlreadyRegistered
from parley.actors.errors import CallTimeout as CallTimeout
from parley.actors.errors import MailboxFull as MailboxFull
from parley.actors.mailbox import Overflow as Overflow
from parley.actors.ref import ActorRef as ActorRef
from parley.actors.registry import Registry as Registry
from parley.actors.runtime import ActorChild as ActorChild
from parley.actors.runtime import ActorDirectory as ActorDirectory
from parley.actors.runtime import ActorSystem as ActorSystem
from parley.actors.slot import ActorStats as ActorStats

__all__ = [
    "Actor",
    "ActorChild",
    "ActorCrashed",
    "ActorDirectory",
    "ActorError",
    "ActorKilled",
    "ActorRef",
    "ActorStats",
    "ActorSystem",
    "ActorUnavailable",
    "AlreadyRegistered",
    "CallTimeout",
    "ExitKind",
    "ExitReason",
    "MailboxFull",
    "Overflow",
    "Registry",
]
