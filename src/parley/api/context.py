"""What request handlers reach: the running system's parts, handed to the app by the service.

Handlers get it with `parley_context()`; nothing in the API layer builds these parts itself, so the
same app can be served by `parley serve` or by another ASGI server through `parley.asgi`.
"""

from __future__ import annotations

from dataclasses import dataclass

from quart import current_app

from parley.accounts import AuthThrottle, PasswordHasher, TokenService
from parley.actors.tree import Runtime
from parley.api.app_sockets import AppSockets
from parley.api.pusher_http import PusherApi
from parley.api.socket.core.hub import SocketHub
from parley.api.trigger import Triggers
from parley.config import Settings
from parley.integrations.directory import ApplicationDirectory
from parley.integrations.webhooks.node import Webhooks
from parley.store import Database
from parley.store.applications import ApplicationStore
from parley.store.audit import AuditStore
from parley.store.conversations import ConversationStore
from parley.store.listings import ListingStore
from parley.store.messages import MessageStore
from parley.store.organizations import OrganizationStore
from parley.store.outbox import OutboxStore
from parley.store.tokens import TokenStore
from parley.store.users import UserStore


@dataclass
class Stores:
    users: UserStore
    tokens: TokenStore
    conversations: ConversationStore
    messages: MessageStore
    outbox: OutboxStore
    listings: ListingStore
    audit: AuditStore
    organizations: OrganizationStore
    applications: ApplicationStore

    @classmethod
    def on(cls, database: Database) -> Stores:
        return cls(
            UserStore(database),
            TokenStore(database),
            ConversationStore(database),
            MessageStore(database),
            OutboxStore(database),
            ListingStore(database),
            AuditStore(database),
            OrganizationStore(database),
            ApplicationStore(database),
        )


@dataclass(frozen=True)
class AppContext:
    settings: Settings
    database: Database
    stores: Stores
    tokens: TokenService
    passwords: PasswordHasher
    throttle: AuthThrottle
    runtime: Runtime
    """The actor runtime: chat, registry, supervisors, pubsub, presence, the actor directory."""
    sockets: SocketHub
    """This node's sockets (revocation closes them; operators list and close them)."""
    applications: ApplicationDirectory
    """Applications by key, in memory: triggers read this, never the store, per request."""
    app_sockets: AppSockets
    """Closes end-user sockets when their application is archived or its secret retired."""
    triggers: Triggers
    """Verifies and delivers triggers (the REST route, and the listener's fast path)."""
    pusher_api: PusherApi
    """Pusher's HTTP API under `/apps/{app_id}` (its routes, and the listener's fast path)."""
    webhooks: Webhooks | None = None
    """Pusher webhooks: the recorder and deliverer (metrics, `/debug/webhooks`)."""


def parley_context() -> AppContext:
    context: AppContext = current_app.extensions["parley"]
    return context
