"""The organization the conformance suites' applications belong to, made straight in the store
(the suites test the sockets and SDKs, not the REST flow that makes organizations)."""

from __future__ import annotations

import uuid

from parley.api.context import Stores
from parley.store.organizations import Organization


async def owned_organization(stores: Stores, name: str) -> tuple[uuid.UUID, Organization]:
    """A confirmed user `{name}owner` (their id) and the organization `{Name} Co` they admin."""
    owner = await stores.users.create(
        email=f"{name}@example.com",
        username=f"{name}owner",
        password_hash="x" * 20,
        role="registered",
        confirmed=True,
    )
    return owner.id, await stores.organizations.create(f"{name.title()} Co", f"{name}-co", owner.id)
