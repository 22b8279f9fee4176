"""The console's safe actions: each does what it says, is audited, and refuses what it cannot do."""

from __future__ import annotations

import httpx
import pytest
from trio_websocket import ConnectionRejected

from parley.service import RunningServer
from tests.api.operator.conftest import BEARER, Operator, wait_for
from tests.phoenix_client import open_phoenix_client
from tests.socket.conftest import Realtime


async def _conversation_actor(realtime: Realtime) -> tuple[str, str]:
    """(actor id, registry key) of a running conversation actor."""
    alice, bob = await realtime.users(2)
    conversation_id = await realtime.group(alice, bob)
    await realtime.runtime.chat.send(conversation_id, alice.id, "wake", None)
    key = f"conversation:{conversation_id}"
    ref = realtime.runtime.registry.lookup(key)
    assert ref is not None
    return ref.id, key


async def _audit(server: RunningServer) -> list[tuple[str, str, str]]:
    entries = await server.context.stores.audit.page(limit=50, before=None)
    return [(e.action, e.target_id, str(e.details.get("by"))) for e in entries]


async def test_kill_restarts_the_actor_and_is_audited(
    operator: Operator, realtime: Realtime, server: RunningServer
) -> None:
    actor_id, key = await _conversation_actor(realtime)
    killed = await operator.post(f"/debug/actors/{actor_id}/kill", {"reason": "a drill"})
    assert killed.status_code == 202
    body = killed.json()
    assert body["action"] == "actor.kill" and body["audited"] is True
    assert body["target"] == {"type": "actor", "id": actor_id} and body["key"] == key

    async def restarted() -> bool:
        actor = (await operator.get(f"/debug/actors/{actor_id}")).json()["actor"]
        return bool(actor["running"] and actor["restarts"] == 1)

    await wait_for(restarted, "the conversation actor came back")
    (entry,) = [e for e in await server.context.stores.audit.page(limit=5, before=None)
                if e.action == "actor.kill"]  # fmt: skip
    assert entry.reason == "a drill" and entry.actor_id is None
    assert (
        entry.details["by"] == "operator token"
        and entry.details["node"] == server.console.node.name
    )
    assert entry.details["ip"] == "127.0.0.1" and entry.at is not None


async def test_actions_on_missing_things_and_bad_bodies_do_nothing(
    operator: Operator, realtime: Realtime, server: RunningServer
) -> None:
    actor_id, _ = await _conversation_actor(realtime)
    for path in (
        "/debug/actors/conversation-999999/kill",
        "/debug/actors/conversation-999999/end_idle",
        "/debug/sockets/session-999999/close",
        "/debug/sockets/00000000-0000-0000-0000-000000000000/close",
        "/debug/nodes/some-other-node/drain",
        "/debug/nodes/some-other-node/resume",
    ):
        response = await operator.post(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    too_long = await operator.post(f"/debug/actors/{actor_id}/kill", {"reason": "x" * 201})
    assert too_long.status_code == 422 and "reason" in too_long.json()["error"]["fields"]
    not_json = await operator.http.post(
        f"/debug/actors/{actor_id}/kill",
        content=b"kill it",
        headers={"X-CSRF-Token": operator.csrf_token, "Content-Type": "text/plain"},
    )
    assert not_json.status_code == 415
    not_object = await operator.http.post(
        f"/debug/actors/{actor_id}/kill",
        content=b"[1]",
        headers={"X-CSRF-Token": operator.csrf_token, "Content-Type": "application/json"},
    )
    assert not_object.status_code == 400
    for code in (1000, 4000, "1012", True, 1012.5):
        bad_code = await operator.post("/debug/sockets/session-1/close", {"code": code})
        assert bad_code.status_code == 422, code
    never_idle = next(r for r in server.runtime.system.directory.refs() if r.kind == "registry")
    refused = await operator.post(f"/debug/actors/{never_idle.id}/end_idle")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "never_idle"
    assert server.runtime.system.directory.get(actor_id) is not None
    assert [a for a, _, _ in await _audit(server)] == ["console.sign_in"]


async def test_ending_an_idle_conversation_stops_it_until_its_next_message(
    operator: Operator, realtime: Realtime, server: RunningServer
) -> None:
    alice, bob = await realtime.users(2)
    conversation_id = await realtime.group(alice, bob)
    chat = server.runtime.chat
    await chat.send(conversation_id, alice.id, "wake", None)
    key = f"conversation:{conversation_id}"
    ref = server.runtime.registry.lookup(key)
    assert ref is not None
    ended = await operator.post(f"/debug/actors/{ref.id}/end_idle")
    assert ended.status_code == 202 and ended.json()["action"] == "actor.end_idle"

    async def gone() -> bool:
        return (await operator.get(f"/debug/actors/{ref.id}")).status_code == 404

    await wait_for(gone, "the idle conversation actor ended")
    assert server.runtime.registry.lookup(key) is None
    assert (await chat.send(conversation_id, bob.id, "back", None)).message.seq == 2
    again = server.runtime.registry.lookup(key)
    assert again is not None and again.id != ref.id
    assert ("actor.end_idle", ref.id, "operator token") in await _audit(server)


async def test_closing_a_socket_closes_it_with_1012_and_by_user_closes_them_all(
    operator: Operator, realtime: Realtime, server: RunningServer
) -> None:
    alice = await realtime.user()
    async with open_phoenix_client(realtime.url, token=alice.token) as first:
        assert (await first.join("system:general")).status == "ok"
        (socket,) = (await operator.get("/debug/sockets")).json()["sockets"]
        closed = await operator.post(f"/debug/sockets/{socket['id']}/close")
        assert closed.status_code == 202 and closed.json()["code"] == 1012
        assert (await first.wait_closed())[0] == 1012
    async with (
        open_phoenix_client(realtime.url, token=alice.token) as one,
        open_phoenix_client(realtime.url, token=alice.token) as two,
    ):
        await one.heartbeat()
        await two.heartbeat()
        by_user = await operator.post(f"/debug/sockets/{alice.id}/close", {"code": 1001})
        assert by_user.status_code == 202 and by_user.json()["closed"] == 2
        assert (await one.wait_closed())[0] == 1001 and (await two.wait_closed())[0] == 1001
    actions = [a for a, _, _ in await _audit(server)]
    assert actions.count("socket.close") == 2


async def test_draining_refuses_new_sockets_closes_the_open_ones_and_can_be_undone(
    operator: Operator, realtime: Realtime, server: RunningServer
) -> None:
    node = server.console.node.name
    alice = await realtime.user()
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        async with open_phoenix_client(realtime.url, token=alice.token) as client:
            await client.heartbeat()
            drained = await operator.post(f"/debug/nodes/{node}/drain")
            assert drained.status_code == 202 and drained.json()["open_sockets"] == 1
            assert (await client.wait_closed())[0] == 1012
        with pytest.raises(ConnectionRejected) as refused:
            async with open_phoenix_client(realtime.url, token=alice.token):
                pass
        assert refused.value.status_code == 503
        health = await http.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "draining"

        async def reported_drained() -> bool:
            (state,) = (await operator.get("/debug/nodes")).json()["nodes"]
            return bool(state["drain"]["state"] == "drained")

        await wait_for(reported_drained, "the node reports drained")
        again = await operator.post(f"/debug/nodes/{node}/drain")
        assert again.status_code == 409
        resumed = await operator.post(f"/debug/nodes/{node}/resume")
        assert resumed.status_code == 202
        assert (await http.get("/health")).status_code == 200
        async with open_phoenix_client(realtime.url, token=alice.token) as back:
            await back.heartbeat()
        assert (await operator.post(f"/debug/nodes/{node}/resume")).status_code == 409
    actions = [a for a, _, _ in await _audit(server)]
    assert actions[:2] == ["node.resume", "node.drain"]


async def test_scripts_act_with_a_bearer_token_and_no_csrf(
    anonymous: httpx.AsyncClient, realtime: Realtime, server: RunningServer
) -> None:
    actor_id, _ = await _conversation_actor(realtime)
    killed = await anonymous.post(f"/debug/actors/{actor_id}/kill", headers=BEARER)
    assert killed.status_code == 202
    entries = await server.context.stores.audit.page(limit=5, before=None)
    assert entries[0].action == "actor.kill" and entries[0].details["via"] == "operator_token"
    # A killed session is not restarted: the socket closes with 1011 and its client reconnects.
    alice = await realtime.user()
    async with open_phoenix_client(realtime.url, token=alice.token) as client:
        await client.heartbeat()
        session = next(r for r in server.runtime.system.directory.refs() if r.kind == "session")
        killed_session = await anonymous.post(f"/debug/actors/{session.id}/kill", headers=BEARER)
        assert killed_session.status_code == 202
        assert (await client.wait_closed())[0] == 1011
