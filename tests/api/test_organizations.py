"""Organizations, enrollments and applications over REST (DESIGN §4.2): who may read and write
what, an organization's last admin, secrets for admins only, and the site admins' lists."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.api.account_helpers import make_admin
from tests.api.conftest import register
from tests.api.integration_helpers import enroll, new_app

if TYPE_CHECKING:
    import httpx

    from parley.service import RunningServer


async def test_an_organization_is_made_read_changed_and_deleted_by_its_roles(
    client: httpx.AsyncClient,
) -> None:
    founder = await register(client)
    created = await client.post(
        "/api/organizations", json={"name": "Acme, Inc."}, headers=founder.headers
    )
    assert created.status_code == 201, created.text
    org = created.json()
    assert org["slug"] == "acme-inc"
    again = await client.post(
        "/api/organizations", json={"name": "Acme Inc"}, headers=founder.headers
    )
    assert again.status_code == 409
    assert again.json()["error"]["fields"] == {"slug": ["is taken"]}
    member, stranger = await register(client), await register(client)
    added = await client.post(
        "/api/organizations/acme-inc/members", json={"user_id": member.id}, headers=founder.headers
    )
    assert added.status_code == 201
    assert added.json()["admin"] is False
    mine = await client.get("/api/organizations", headers=member.headers)
    assert [o["slug"] for o in mine.json()["data"]] == ["acme-inc"]
    assert (await client.get("/api/organizations", headers=stranger.headers)).json()["data"] == []
    assert (await client.get("/api/organizations/acme-inc", headers=member.headers)).is_success
    # Nobody else learns that it exists.
    for method in ("GET", "PATCH", "DELETE"):
        response = await client.request(
            method, "/api/organizations/acme-inc", json={}, headers=stranger.headers
        )
        assert response.status_code == 404, method
    # Members read; only admins write.
    renamed = await client.patch(
        "/api/organizations/acme-inc", json={"name": "Acme"}, headers=member.headers
    )
    assert renamed.status_code == 403
    renamed = await client.patch(
        "/api/organizations/acme-inc", json={"slug": "acme"}, headers=founder.headers
    )
    assert renamed.status_code == 200
    assert renamed.json()["slug"] == "acme"
    bad = await client.patch(
        "/api/organizations/acme", json={"slug": "Not A Slug"}, headers=founder.headers
    )
    assert bad.status_code == 422
    assert (
        await client.delete("/api/organizations/acme", headers=member.headers)
    ).status_code == 403
    assert (
        await client.delete("/api/organizations/acme", headers=founder.headers)
    ).status_code == 204
    assert (await client.get("/api/organizations/acme", headers=founder.headers)).status_code == 404


async def test_an_organization_always_keeps_an_admin(client: httpx.AsyncClient) -> None:
    app = await new_app(client)
    founder, other = app.admin, await register(client)
    members = f"/api/organizations/{app.slug}/members"
    demote = await client.patch(
        f"{members}/{founder.id}", json={"admin": False}, headers=founder.headers
    )
    assert demote.status_code == 409
    assert demote.json()["error"]["code"] == "last_admin"
    leave = await client.delete(f"{members}/{founder.id}", headers=founder.headers)
    assert leave.status_code == 409
    await enroll(client, app, other)
    assert (
        await client.post(members, json={"user_id": other.id}, headers=founder.headers)
    ).status_code == 409
    promoted = await client.patch(
        f"{members}/{other.id}", json={"admin": True}, headers=founder.headers
    )
    assert promoted.status_code == 200
    assert promoted.json()["admin"] is True
    assert (
        await client.delete(f"{members}/{founder.id}", headers=founder.headers)
    ).status_code == 204
    listed = await client.get(members, headers=other.headers)
    assert [m["user_id"] for m in listed.json()["data"]] == [other.id]
    unknown = await client.post(
        members, json={"user_id": "00000000-0000-0000-0000-000000000000"}, headers=other.headers
    )
    assert unknown.status_code == 422
    assert (
        await client.post(members, json={"user_id": "nope"}, headers=other.headers)
    ).status_code == 422


async def test_applications_show_their_secret_to_admins_only(client: httpx.AsyncClient) -> None:
    app = await new_app(client, webhook_url="https://example.com/hook", max_connections=10)
    member = await register(client)
    await enroll(client, app, member)
    path = f"/api/organizations/{app.slug}/applications"
    as_admin = (await client.get(path, headers=app.admin.headers)).json()["data"][0]
    as_member = (await client.get(path, headers=member.headers)).json()["data"][0]
    assert as_admin["app_secret"] == app.secret
    assert as_member["app_secret"] is None
    assert as_member["app_key"] == app.key
    assert as_admin["webhook_url"] == "https://example.com/hook"
    assert as_admin["max_connections"] == 10
    one = await client.get(app.base, headers=member.headers)
    assert one.json()["app_secret"] is None
    # Members may not create, change or rotate.
    assert (await client.post(path, json={"name": "x"}, headers=member.headers)).status_code == 403
    assert (
        await client.patch(app.base, json={"name": "x"}, headers=member.headers)
    ).status_code == 403
    assert (await client.post(f"{app.base}/secret", headers=member.headers)).status_code == 403
    changed = await client.patch(
        app.base,
        json={
            "name": "Renamed",
            "webhook_url": None,
            "client_events": True,
            "max_connections": None,
        },
        headers=app.admin.headers,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["name"], body["webhook_url"], body["client_events"], body["max_connections"]) == (
        "Renamed",
        None,
        True,
        None,
    )
    for bad in (
        {"name": ""},
        {"webhook_url": "ftp://example.com"},
        {"max_connections": -1},
        {"client_events": "yes"},
        {"archived": "no"},
    ):
        response = await client.patch(app.base, json=bad, headers=app.admin.headers)
        assert response.status_code == 422, bad
    other = await new_app(client)
    crossed = f"/api/organizations/{app.slug}/applications/{other.key}"
    assert (await client.get(crossed, headers=app.admin.headers)).status_code == 404


async def test_site_admins_see_every_organization_and_application(
    client: httpx.AsyncClient, server: RunningServer
) -> None:
    first, second = await new_app(client), await new_app(client)
    root = await register(client)
    assert (await client.get("/api/admin/applications", headers=root.headers)).status_code == 403
    await make_admin(server, root)
    orgs = await client.get("/api/admin/organizations", headers=root.headers)
    assert {first.slug, second.slug} <= {o["slug"] for o in orgs.json()["data"]}
    apps = await client.get("/api/admin/applications", params={"limit": 1}, headers=root.headers)
    page = apps.json()
    assert [a["app_key"] for a in page["data"]] == [second.key]
    assert page["data"][0]["app_secret"] == second.secret
    rest = await client.get(
        "/api/admin/applications", params={"before": page["next_cursor"]}, headers=root.headers
    )
    assert first.key in [a["app_key"] for a in rest.json()["data"]]
    # A site admin reads and triggers in any organization, and sees its secrets.
    listed = await client.get(f"/api/organizations/{first.slug}/applications", headers=root.headers)
    assert listed.json()["data"][0]["app_secret"] == first.secret
    assert (await client.post(first.event_path("e"), headers=root.headers)).status_code == 202
    mine = await client.get("/api/organizations", headers=root.headers)
    assert {first.slug, second.slug} <= {o["slug"] for o in mine.json()["data"]}


async def test_names_and_webhooks_postgresql_cannot_store_are_refused_not_a_500(
    client: httpx.AsyncClient,
) -> None:
    """Drill F1 found an organization name with a NUL answered 500 (PostgreSQL refuses the byte);
    names of organizations and applications, and webhook URLs, with one now get the documented
    422."""
    founder = await register(client)
    refused = "must not contain NUL characters"
    made = await client.post(
        "/api/organizations", json={"name": "Acme\x00", "slug": "nul-org"}, headers=founder.headers
    )
    assert made.status_code == 422, made.text
    assert made.json()["error"]["fields"] == {"name": [refused]}
    created = await client.post(
        "/api/organizations", json={"name": "Nul Org"}, headers=founder.headers
    )
    assert created.status_code == 201, created.text
    path = "/api/organizations/nul-org"
    renamed = await client.patch(path, json={"name": "N\x00"}, headers=founder.headers)
    assert renamed.status_code == 422, renamed.text
    for body, field in (
        ({"name": "app\x00"}, "name"),
        ({"name": "app", "webhook_url": "https://example.com/\x00"}, "webhook_url"),
    ):
        app = await client.post(f"{path}/applications", json=body, headers=founder.headers)
        assert app.status_code == 422, app.text
        assert app.json()["error"]["fields"] == {field: [refused]}
