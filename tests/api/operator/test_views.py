"""The console's JSON views: what they show of the live node, and how they refuse bad paging."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import httpx
import trio

from parley.service import RunningServer, serve
from tests.api.operator.conftest import Operator, console_settings, sign_in, wait_for
from tests.phoenix_client import open_phoenix_client
from tests.socket.conftest import Realtime


async def _conversations(realtime: Realtime, count: int) -> list[str]:
    """`count` conversations whose actors are running; their registry keys."""
    alice, bob = await realtime.users(2)
    keys = []
    for _ in range(count):
        conversation_id = await realtime.group(alice, bob)
        await realtime.runtime.chat.send(conversation_id, alice.id, "wake", None)
        keys.append(f"conversation:{conversation_id}")
    return keys


async def test_every_view_names_the_node(operator: Operator, server: RunningServer) -> None:
    name = server.console.node.name
    for path in ("/debug/session", "/debug/overview", "/debug/nodes", "/debug/actors",
                 "/debug/tree", "/debug/sockets", "/debug/topics", "/debug/audit"):  # fmt: skip
        response = await operator.get(path)
        assert response.status_code == 200, path
        assert response.json()["node"] == name
    (node,) = (await operator.get("/debug/nodes")).json()["nodes"]
    assert node["self"] is True and node["drain"]["state"] == "serving"


async def test_actors_filter_by_kind_and_key_sort_and_page(
    operator: Operator, realtime: Realtime
) -> None:
    keys = await _conversations(realtime, 3)
    listing = (await operator.get("/debug/actors", kind="conversation")).json()
    assert listing["total"] == 3 and listing["kinds"]["conversation"] == 3
    assert {a["key"] for a in listing["actors"]} == set(keys)
    assert all(a["kind"] == "conversation" for a in listing["actors"])
    one = (await operator.get("/debug/actors", key=keys[1][-12:])).json()
    assert [a["key"] for a in one["actors"]] == [keys[1]]
    first = (await operator.get("/debug/actors", kind="conversation", limit=2)).json()
    rest = (await operator.get("/debug/actors", kind="conversation", limit=2, offset=2)).json()
    assert len(first["actors"]) == 2 and len(rest["actors"]) == 1
    assert {a["id"] for a in first["actors"] + rest["actors"]} == {
        a["id"] for a in listing["actors"]
    }
    by_processed = (
        await operator.get("/debug/actors", sort="processed", order="desc", limit=500)
    ).json()
    processed = [a["processed"] for a in by_processed["actors"]]
    assert processed == sorted(processed, reverse=True)
    by_id = (await operator.get("/debug/actors", limit=500)).json()["actors"]
    assert by_id[0]["kind"] == "registry"  # the oldest actor first


async def test_bad_paging_and_filters_are_refused_with_the_field_named(
    operator: Operator,
) -> None:
    for params, field in (
        ({"limit": 501}, "limit"),
        ({"limit": 10**9}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"sort": "password"}, "sort"),
        ({"order": "sideways"}, "order"),
        ({"key": "k" * 201}, "key"),
    ):
        for path in ("/debug/actors", "/debug/sockets", "/debug/topics"):
            if field == "sort" and path != "/debug/actors":
                continue
            if field == "key" and path != "/debug/actors":
                continue
            response = await operator.get(path, **params)
            assert response.status_code == 422, (path, params)
            assert field in response.json()["error"]["fields"]
    assert (await operator.get("/debug/audit", limit=501)).status_code == 422
    assert (await operator.get("/debug/audit", before="not a cursor")).status_code == 422
    assert (await operator.get("/debug/overview", since="yesterday")).status_code == 422


async def test_an_actor_detail_has_its_describe_mailbox_and_recent_errors(
    operator: Operator, realtime: Realtime, server: RunningServer
) -> None:
    (key,) = await _conversations(realtime, 1)
    ref = server.runtime.registry.lookup(key)
    assert ref is not None
    detail = (await operator.get(f"/debug/actors/{ref.id}")).json()
    actor = detail["actor"]
    assert actor["id"] == ref.id and actor["key"] == key
    assert actor["state"]["conversation_id"] == key.split(":", 1)[1]
    assert detail["mailbox"] == [] and actor["recent_errors"] == []
    assert (
        await operator.post(f"/debug/actors/{ref.id}/kill", {"reason": "drill"})
    ).status_code == 202

    async def restarted() -> bool:
        return bool((await operator.get(f"/debug/actors/{ref.id}")).json()["actor"]["running"])

    await wait_for(restarted, "the killed actor is running again")
    after = (await operator.get(f"/debug/actors/{ref.id}")).json()["actor"]
    assert after["restarts"] == 1
    (error,) = after["recent_errors"]
    assert "drill" in error["error"] and error["at"]
    missing = await operator.get("/debug/actors/conversation-999999")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


async def test_the_tree_lists_a_bounded_number_of_children_and_counts_the_rest(
    tmp_path: Path, database_url: str, nursery: trio.Nursery
) -> None:
    settings = console_settings(tmp_path, database_url, supervision={"describe_max_children": 1})
    server: RunningServer = await nursery.start(partial(serve, settings, handle_signals=False))
    await _conversations(Realtime(server), 2)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        operator = await sign_in(http)
        tree = (await operator.get("/debug/tree")).json()["tree"]
    assert tree["name"] == "parley" and tree["strategy"] == "rest_for_one"
    assert tree["intensity"]["max_restarts"] == settings.supervision.max_restarts
    # The root's own children are listed whole: the bound is the dynamic supervisors'.
    conversations = next(c for c in tree["children"] if c["name"] == "conversations")
    details = conversations["details"]
    assert details["strategy"] == "one_for_one" and details["children_total"] == 2
    (shown,) = details["children"]
    assert shown["details"]["kind"] == "conversation"
    assert tree["children_total"] == len(tree["children"]) > 10


async def test_sockets_and_topics_show_users_transports_channels_and_presence(
    operator: Operator, realtime: Realtime
) -> None:
    alice = await realtime.user()
    async with open_phoenix_client(realtime.url, token=alice.token) as client:
        assert (await client.join("system:general")).status == "ok"
        listing = (await operator.get("/debug/sockets")).json()
        assert listing["total"] == 1 and listing["summary"]["connections"] == 1
        (socket,) = listing["sockets"]
        assert socket["user"] == {"id": str(alice.id), "username": alice.username}
        assert (socket["transport"], socket["protocol"], socket["vsn"]) == (
            "websocket",
            "phoenix",
            "2.0.0",
        )
        assert socket["peer"].startswith("127.0.0.1:")
        assert socket["channels"] == ["system:general"]
        assert socket["rate_limit"]["burst"] >= 1 and socket["frames_in"] >= 1
        assert (await operator.get("/debug/sockets", transport="longpoll")).json()["total"] == 0
        assert (await operator.get("/debug/sockets", user=alice.username[:6])).json()["total"] == 1
        detail = (await operator.get(f"/debug/sockets/{socket['id']}")).json()["socket"]
        assert detail["session"]["kind"] == "session"

        async def present() -> bool:
            topics = (await operator.get("/debug/topics", prefix="system:")).json()["topics"]
            return bool(topics) and topics[0]["presence"]["keys"] == 1

        await wait_for(present, "alice is present on system:general")
        (topic,) = (await operator.get("/debug/topics", prefix="system:")).json()["topics"]
        assert topic == {
            "topic": "system:general",
            "subscribers": 1,
            "presence": {"keys": 1, "metas": 1},
        }
        one = (await operator.get("/debug/topics/system:general")).json()
        assert one["presence"]["entries"][0]["key"] == str(alice.id)
    assert (await operator.get("/debug/sockets/session-424242")).status_code == 404
    assert (await operator.get("/debug/topics/nobody:here")).status_code == 404


async def test_the_overview_has_samples_for_the_charts(operator: Operator) -> None:
    async def sampled() -> bool:
        return len((await operator.get("/debug/overview")).json()["samples"]) >= 2

    await wait_for(sampled, "the monitor took samples")
    overview = (await operator.get("/debug/overview")).json()
    sample = overview["samples"][-1]
    for name in ("connections", "messages_in_per_second", "deliveries_per_second",
                 "commit_ms_p99", "loop_lag_ms_max", "gc_pause_ms", "rss_bytes"):  # fmt: skip
        assert name in sample
    assert sample["rss_bytes"] > 0 and sample["loop_lag_ms_max"] >= 0
    newer = (await operator.get("/debug/overview", since=sample["at"])).json()["samples"]
    assert all(s["at"] > sample["at"] for s in newer)
    assert overview["connections"]["total"] == 0 and overview["version"]
