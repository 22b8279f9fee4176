"""What each identity of drill F1 owns, made through the API, and how a leak of it is told.

Every owner gets a group conversation and a 1:1 one (each with a message, with a bystander who is
never fuzzed), a public listing with a reply of its own, a listing an admin hid, an organization
with an application, and an API token. The private text of each (titles, bodies, names, the
application secret, the owner's e-mail address) carries the owner's canary: a random string
nobody else ever sends, so finding it in an answer to another user is a leak whatever route
answered.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.drills.api_process import Identity

LISTING = {"make": "Volvo", "model": "240", "year": 1990, "price_cents": 900}
LISTING_FIELDS = ("title", "make", "model", "year", "price_cents", "status", "hidden_reason")
"""The fields of a listing that only its seller (or a moderator) may change; `reply_count` is not
one of them: anybody may reply."""


@dataclass
class Holdings:
    owner: Identity
    canaries: list[str]
    path_values: dict[str, list[str]]
    """For each path parameter, the values naming the owner's things."""
    hidden_listing: str
    reads: list[str] = field(default_factory=list)
    """The owner's own reads of its things: their answers must not change while others try."""

    def targets(self, path: str) -> list[dict[str, str]]:
        """Every assignment of the owner's values to the path parameters of `path` that have
        any (the others, such as a trigger's event name, stay generated)."""
        names = [n for n in self.path_values if "{" + n + "}" in path]
        if not names:
            return []
        choices = [self.path_values[n] for n in names]
        return [dict(zip(names, values, strict=True)) for values in itertools.product(*choices)]

    def private(self, target: dict[str, str]) -> bool:
        """A hidden listing is the seller's alone, whatever the route says of listings."""
        return target.get("listing_id") == self.hidden_listing

    def leaked(self, content: bytes) -> list[str]:
        text = content.decode("utf-8", "replace")
        return [canary for canary in self.canaries if canary in text]

    def snapshot(self) -> list[Any]:
        """What the owner reads of its things now (listings: the seller's fields only)."""
        result = []
        for path in self.reads:
            body = self.owner.call("GET", path)
            if path.startswith("/api/listings/"):
                body = {key: body[key] for key in LISTING_FIELDS}
            result.append(body)
        return result


def furnish(owner: Identity, bystander: Identity, admin: Identity) -> Holdings:
    canary = uuid.uuid4().hex[:16]
    email_canary = owner.email.split("@")[0]
    group = owner.call(
        "POST", "/api/conversations",
        {"member_ids": [bystander.user_id], "title": f"conversation {canary}"},
    )["id"]  # fmt: skip
    direct = owner.call("POST", "/api/conversations", {"member_ids": [bystander.user_id]})["id"]
    for conversation in (group, direct):
        owner.call("POST", f"/api/conversations/{conversation}/messages", {"body": f"m {canary}"})
    listing = owner.call("POST", "/api/listings", {"title": "A car", **LISTING})["id"]
    reply = owner.call("POST", f"/api/listings/{listing}/replies", {"body": "still for sale"})
    hidden = owner.call("POST", "/api/listings", {"title": f"hidden {canary}", **LISTING})["id"]
    admin.call("POST", f"/api/listings/{hidden}/hide", {"reason": "drill"})
    # The slug is sent by the intruder in its paths, so it must not carry the canary.
    organization = owner.call(
        "POST", "/api/organizations", {"name": f"org {canary}", "slug": uuid.uuid4().hex[:12]}
    )["slug"]
    application = owner.call(
        "POST", f"/api/organizations/{organization}/applications", {"name": f"app {canary}"}
    )  # fmt: skip
    token = owner.call("POST", "/api/tokens", {"name": f"token {canary}"})
    holdings = Holdings(
        owner=owner,
        canaries=[canary, email_canary, application["app_secret"], token["token"]],
        path_values={
            "conversation_id": [group, direct],
            "seq": ["1"],
            "listing_id": [listing, hidden],
            "reply_id": [reply["id"]],
            "slug": [organization],
            "app_key": [application["app_key"]],
            "token_id": [token["id"]],
            "user_id": [owner.user_id, bystander.user_id],
        },
        hidden_listing=hidden,
    )
    holdings.reads = [
        f"/api/conversations/{group}",
        f"/api/conversations/{direct}",
        f"/api/conversations/{group}/messages",
        f"/api/conversations/{direct}/messages",
        f"/api/listings/{listing}",
        f"/api/listings/{hidden}",
        f"/api/organizations/{organization}",
        f"/api/organizations/{organization}/members",
        f"/api/organizations/{organization}/applications/{application['app_key']}",
        "/api/tokens",
        "/api/me",
    ]
    return holdings
