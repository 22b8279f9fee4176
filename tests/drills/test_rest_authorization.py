"""Drill A10: every REST route x {anonymous, registered, owner, other, moderator, admin, banned,
member} against the expected statuses in `rest_authorization.txt`, kept beside this test.

Every cell runs in a world of its own (fresh users, a conversation of the owner's with a partner
and one message, a listing of the owner's with a reply of the partner's, an API token of the
owner's, an organization the owner created (so its admin) with `member` enrolled without admin and
one application), so a cell that deletes or bans changes nothing for the next. Bodies are valid,
so what decides each status is who asks. A route with no row in the table fails the drill: a new
route needs its row (and a look at who may call it).
"""

from __future__ import annotations

import itertools
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from parley.accounts import new_opaque_token
from parley.api.endpoint import OPERATIONS
from parley.integrations import applications as application_rules
from parley.store.applications import NewApplication
from parley.store.listing_records import NewListing
from tests.drills.figures import figure
from tests.drills.live import start_parley
from tests.drills.roles import ROLES
from tests.socket.conftest import Realtime, User

TABLE = Path(__file__).with_name("rest_authorization.txt")
A10_ROLES = (*ROLES, "member")
"""The drills' roles and `member`: a registered user enrolled (without admin) in the owner's
organization, and in nothing else of the owner's; the owner is that organization's admin."""
PASSWORD = "correct horse battery staple"
_numbers = itertools.count(1)


@dataclass(frozen=True)
class World:
    users: dict[str, User]
    emails: dict[str, str]
    partner: User
    conversation_id: uuid.UUID
    listing_id: uuid.UUID
    reply_id: uuid.UUID
    token_id: uuid.UUID
    api_token: str
    slug: str
    app_key: str
    number: int


async def make_world(live: Realtime, password_hash: str) -> World:
    number = next(_numbers)
    stores, tokens = live.context.stores, live.context.tokens
    users: dict[str, User] = {}
    emails: dict[str, str] = {}
    for role in (*A10_ROLES[1:], "partner"):
        name = f"a10w{number}{role}"
        stored = await stores.users.create(
            email=f"{name}@example.com",
            username=name,
            password_hash=password_hash,
            role={"moderator": "moderator", "admin": "admin"}.get(role, "registered"),
            confirmed=True,
        )
        if role == "banned":
            changed = await stores.users.set_role_and_ban(stored.id, role=None, banned=True)
            assert changed is not None
            stored = changed
        token, _ = tokens.issue_access(stored.id, stored.role, stored.token_version)
        users[role] = User(stored.id, name, stored.role, token)
        emails[role] = f"{name}@example.com"
    owner, partner = users["owner"], users.pop("partner")
    conversation = await stores.conversations.create_group(owner.id, "a10", [partner.id])
    await live.runtime.chat.send(conversation.id, owner.id, "first", None)
    listing = await stores.listings.create(
        owner.id, NewListing(title="A car", make="Volvo", model="240", year=1990, price_cents=9)
    )
    added = await stores.listings.add_reply(listing.id, partner.id, "interested")
    assert added is not None
    plaintext, digest = new_opaque_token("plt_")
    api_token = await stores.tokens.add_api_token(owner.id, "a10", digest)
    organization = await stores.organizations.create(f"A10 {number}", f"a10-{number}", owner.id)
    await stores.organizations.add_member(organization.id, users["member"].id, False)
    application = await stores.applications.create(
        NewApplication(
            organization_id=organization.id,
            name="a10",
            app_key=application_rules.new_key(),
            app_secret=application_rules.new_secret(),
            webhook_url=None,
            client_events=False,
            max_connections=None,
        )
    )
    return World(
        users, emails, partner, conversation.id, listing.id, added[0].id, api_token.id,
        plaintext, organization.slug, application.app_key, number,
    )  # fmt: skip


def request_of(route: str, world: World) -> tuple[str, str, Any]:
    """The method, path and a valid body of `route` ("METHOD /path/{param}") in `world`."""
    method, template = route.split(" ", 1)
    n = world.number
    owner = world.users["owner"]
    if template.startswith("/api/organizations/"):
        member_path_user = world.users["member"].id  # a member may leave; only admins unenroll
    else:
        member_path_user = world.partner.id
    values = {
        "user_id": member_path_user if "/members/" in template else owner.id,
        "conversation_id": world.conversation_id,
        "listing_id": world.listing_id,
        "reply_id": world.reply_id,
        "token_id": world.token_id,
        "seq": 1,
        "slug": world.slug,
        "app_key": world.app_key,
        "event": "new_message",
    }
    path = re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), template)
    bodies: dict[str, Any] = {
        "PATCH /api/admin/users/{user_id}": {"role": "moderator"},
        "POST /api/admin/announcements": {"message": "hello"},
        "POST /api/auth/register": {
            "email": f"a10new{n}@example.com", "password": PASSWORD, "username": f"a10new{n}",
        },
        "POST /api/auth/confirm": {"token": "not-a-token"},
        "POST /api/auth/login": {"email": world.emails["owner"], "password": PASSWORD},
        "POST /api/auth/refresh": {"refresh_token": "not-a-token"},
        "POST /api/auth/logout": {"refresh_token": "not-a-token"},
        "POST /api/auth/logout_all": {},
        "POST /api/auth/password/forgot": {"email": world.emails["owner"]},
        "POST /api/auth/password/reset": {"token": "not-a-token", "password": PASSWORD},
        "POST /api/conversations": {"member_ids": [str(world.partner.id)]},
        "POST /api/conversations/{conversation_id}/members": {
            "user_ids": [str(world.users["registered"].id)]
        },
        "POST /api/conversations/{conversation_id}/messages": {"body": "hi"},
        "PATCH /api/conversations/{conversation_id}/messages/{seq}": {"body": "edited"},
        "POST /api/conversations/{conversation_id}/read": {"seq": 1},
        "POST /api/conversations/{conversation_id}/channel_token": {},
        "POST /api/listings": {
            "title": "B car", "make": "Saab", "model": "900", "year": 1991, "price_cents": 5,
        },
        "PATCH /api/listings/{listing_id}": {"title": "A better car"},
        "POST /api/listings/{listing_id}/hide": {"reason": "spam"},
        "POST /api/listings/{listing_id}/unhide": {"reason": "fine after all"},
        "POST /api/listings/{listing_id}/replies": {"body": "still for sale?"},
        "POST /api/listings/{listing_id}/replies/{reply_id}/hide": {"reason": "spam"},
        "POST /api/listings/{listing_id}/replies/{reply_id}/unhide": {"reason": "fine"},
        "POST /api/listings/{listing_id}/contact": {"body": "hello"},
        "PATCH /api/me": {"bio": "drilled"},
        "PATCH /api/me/password": {"current_password": PASSWORD, "password": PASSWORD + " 2"},
        "PATCH /api/me/email": {"email": f"a10moved{n}@example.com", "password": PASSWORD},
        "POST /api/tokens": {"name": "ci"},
        "POST /api/session": {"token": world.api_token},
        "POST /api/users": {"email": f"a10made{n}@example.com", "username": f"a10made{n}"},
        "POST /api/organizations": {"name": f"A10 new {n}"},
        "PATCH /api/organizations/{slug}": {"name": f"A10 renamed {n}"},
        "POST /api/organizations/{slug}/members": {"user_id": str(world.partner.id)},
        "PATCH /api/organizations/{slug}/members/{user_id}": {"admin": True},
        "POST /api/organizations/{slug}/applications": {"name": "another"},
        "PATCH /api/organizations/{slug}/applications/{app_key}": {"name": "renamed"},
        "POST /api/organizations/{slug}/applications/{app_key}/event/{event}": {
            "data": {"name": "John", "message": "Hello"},
        },
    }  # fmt: skip
    body = bodies.get(route)
    if body is None and method in ("POST", "PATCH"):
        body = {}
    return method, path, body


def routes() -> list[str]:
    return sorted(f"{op.method.upper()} {op.path}" for op in OPERATIONS)


def read_table() -> dict[str, dict[str, int]]:
    expected: dict[str, dict[str, int]] = {}
    for line in TABLE.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        (*route,) = line.split()
        statuses = route[-len(A10_ROLES) :]
        expected[" ".join(route[: -len(A10_ROLES)])] = dict(
            zip(A10_ROLES, map(int, statuses), strict=True)
        )
    return expected


def format_table(observed: dict[str, dict[str, int]]) -> str:
    width = max(map(len, observed)) + 2
    header = "# route".ljust(width) + " ".join(f"{role:>10}" for role in A10_ROLES)
    rows = [
        route.ljust(width) + " ".join(f"{observed[route][role]:>10}" for role in A10_ROLES)
        for route in sorted(observed)
    ]
    return "\n".join([header, *rows]) + "\n"


@pytest.mark.slow
async def test_a10_every_route_by_every_role_answers_as_the_table_says(
    database_url: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    live = await start_parley(
        nursery, tmp_path, database_url, auth={"per_ip_requests_per_hour": 1_000_000}
    )
    password_hash = await live.context.passwords.hash(PASSWORD)
    observed: dict[str, dict[str, int]] = {}
    async with httpx.AsyncClient(base_url=live.http, timeout=30) as http:
        for route in routes():
            observed[route] = {}
            for role in A10_ROLES:
                world = await make_world(live, password_hash)
                method, path, body = request_of(route, world)
                user = world.users.get(role)
                headers = {} if user is None else {"Authorization": f"Bearer {user.token}"}
                response = await http.request(method, path, json=body, headers=headers)
                observed[route][role] = response.status_code
    (tmp_path / "observed.txt").write_text(format_table(observed))
    expected = read_table()
    missing = [route for route in observed if route not in expected]
    differing = [
        f"{route} {role}: expected {expected[route][role]}, got {status}"
        for route, statuses in observed.items()
        if route in expected
        for role, status in statuses.items()
        if status != expected[route][role]
    ]
    server_errors = [
        f"{route} {role}" for route, s in observed.items() for role, status in s.items()
        if status >= 500
    ]  # fmt: skip
    cells = len(observed) * len(A10_ROLES)
    figure("A10", "cells", cells, f"{len(observed)} routes x {len(A10_ROLES)} roles")
    figure("A10", "cells_differing_from_table", len(differing), "0")
    figure("A10", "routes_without_a_row", len(missing), "0")
    figure("A10", "server_errors", len(server_errors), "0")
    assert not missing, f"add rows for {missing} (observed: {tmp_path / 'observed.txt'})"
    assert not differing, differing
    assert not server_errors
