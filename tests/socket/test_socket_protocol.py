"""Raw-frame edge cases of PHOENIX_PROTOCOL.md §14 that the Node suite cannot observe, against the
real server: items 14, 21, 25, 26, 27, 30, 33, plus close codes (1009, 1007, 1003, 1001 idle),
rate limiting, duplicate joins, unjoined topics and refused joins.

`debug:{name}` is the test channel (outside prod only, see `DebugChannel`)."""

from __future__ import annotations

import uuid
from functools import partial

import orjson
import trio

from parley.service import RunningServer, serve
from tests.phoenix_client import PhoenixClient, open_phoenix_client
from tests.socket.conftest import Realtime, socket_settings

UNMATCHED = {"reason": "unmatched topic"}


def last_raw(client: PhoenixClient, needle: str) -> str:
    for raw in reversed(client.raw_frames):
        if isinstance(raw, str) and needle in raw:
            return raw
    raise AssertionError(f"no raw frame containing {needle!r}")


async def test_item_14_bare_status_reply_and_no_reply(realtime: Realtime) -> None:
    user = await realtime.user()
    async with open_phoenix_client(realtime.url, token=user.token) as client:
        assert (await client.join("debug:14")).ok
        ref = await client.push_nowait("debug:14", "reply_bare", {"status": "done"})
        reply = await client.wait_reply(ref)
        assert (reply.status, reply.response) == ("done", {})
        jr = client.join_refs["debug:14"]
        assert last_raw(client, '"done"') == (
            f'["{jr}","{ref}","debug:14","phx_reply",{{"status":"done","response":{{}}}}]'
        )
        silent = await client.push_nowait("debug:14", "noreply", {})
        # The channel handles its pushes in order: by the next push's reply, none came for it.
        assert (await client.push("debug:14", "reply_bare", {})).ok
        assert [m for m in client.inbox if m.ref == silent] == []
        assert (await client.heartbeat()).ok  # the socket is fine


async def test_item_21_handler_stop_sends_phx_close(realtime: Realtime) -> None:
    user = await realtime.user()
    async with open_phoenix_client(realtime.url, token=user.token) as client:
        await client.join("debug:21")
        jr = client.join_refs["debug:21"]
        reply = await client.push("debug:21", "stop", {})
        assert reply.ok
        close = await client.receive("phx_close", "debug:21")
        assert (close.join_ref, close.ref, close.payload) == (jr, jr, {})
        after = await client.push("debug:21", "noreply", {})
        assert after.response == UNMATCHED
        assert after.message.join_ref is None


async def test_item_25_broadcast_from_skips_the_sender(realtime: Realtime) -> None:
    a, b, c = await realtime.users(3)
    cid = await realtime.group(a, b, c)
    topic = f"conversation:{cid}"
    async with (
        open_phoenix_client(realtime.url, token=a.token) as ca,
        open_phoenix_client(realtime.url, token=b.token) as cb,
        open_phoenix_client(realtime.url, token=c.token, vsn=None) as cc,
    ):
        for client in (ca, cb, cc):
            assert (await client.join(topic)).ok
        await ca.push_nowait(topic, "typing", {"typing": True})
        for other in (cb, cc):
            typing = await other.receive("typing", topic)
            assert typing.payload == {"user_id": str(a.id), "typing": True}
            assert typing.ref is None
        await ca.expect_nothing("typing", topic)
        # debug channel: broadcast_from of any event
        for client in (ca, cb):
            await client.join("debug:25")
        assert (await ca.push("debug:25", "broadcast_from", {"event": "shout", "payload": {}})).ok
        shout = await cb.receive("shout", "debug:25")
        assert (shout.join_ref, shout.ref) == (None, None)
        await ca.expect_nothing("shout")


async def test_item_26_user_topic_intercept_pushes_with_join_ref_or_suppresses(
    realtime: Realtime,
) -> None:
    alice, bob = await realtime.users(2)
    cid = await realtime.group(alice, bob)
    async with (
        open_phoenix_client(realtime.url, token=alice.token) as ca,
        open_phoenix_client(realtime.url, token=bob.token) as cb,
    ):
        assert (await cb.join(f"user:{bob.id}")).ok
        assert (await ca.join(f"conversation:{cid}")).ok
        ack = await ca.push(f"conversation:{cid}", "new_msg", {"body": "one"})
        message = await cb.receive("message", f"user:{bob.id}")
        assert message.join_ref == cb.join_refs[f"user:{bob.id}"]  # a push, not a fastlane frame
        assert message.ref is None
        assert message.payload["id"] == ack.response["id"]
        # Once bob's socket joins the conversation, the user-topic copy is suppressed.
        assert (await cb.join(f"conversation:{cid}")).ok
        await ca.push(f"conversation:{cid}", "new_msg", {"body": "two"})
        assert (await cb.receive("new_msg", f"conversation:{cid}")).payload["body"] == "two"
        await cb.expect_nothing("message", f"user:{bob.id}")


async def test_item_27_binary_push_reply_and_broadcast(realtime: Realtime) -> None:
    user, other = await realtime.users(2)
    async with (
        open_phoenix_client(realtime.url, token=user.token) as client,
        open_phoenix_client(realtime.url, token=other.token) as watcher,
        open_phoenix_client(realtime.url, token=other.token, vsn="1.0.0") as v1,
    ):
        for each in (client, watcher, v1):
            assert (await each.join("debug:27")).ok
        jr = client.join_refs["debug:27"]
        ref = str(await client.push_nowait("debug:27", "blob", b"\x01\x02\x03"))
        reply = await client.wait_reply(ref)
        assert reply.status == "ok"
        assert reply.response == b"\x01\x02\x03"
        binary = [raw for raw in client.raw_frames if isinstance(raw, bytes)]
        kind_1 = next(raw for raw in binary if raw[0] == 1)
        assert kind_1 == bytes([1, len(jr), len(ref), 8, 2]) + f"{jr}{ref}debug:27ok".encode() + (
            b"\x01\x02\x03"
        )
        pushed = await client.receive("binary_push", "debug:27")
        assert (pushed.join_ref, pushed.ref, pushed.payload) == (jr, None, b"\x01\x02\x03")
        kind_0 = next(raw for raw in binary if raw[0] == 0)
        assert kind_0[:4] == bytes([0, len(jr), 8, 11])  # 4-byte header: no ref (§13.12)
        for each in (client, watcher):
            broadcast = await each.receive("binary_broadcast", "debug:27")
            assert (broadcast.join_ref, broadcast.ref, broadcast.payload) == (
                None,
                None,
                b"\x01\x02\x03",
            )
        # V1 cannot carry binary frames: the V1 socket gets nothing and stays open.
        await v1.expect_nothing("binary_broadcast")
        assert (await v1.heartbeat()).ok


async def test_item_30_presence_meta_update_is_one_diff(realtime: Realtime) -> None:
    user, watcher = await realtime.users(2)
    async with (
        open_phoenix_client(realtime.url, token=user.token) as client,
        open_phoenix_client(realtime.url, token=watcher.token) as other,
    ):
        assert (await other.join("debug:30")).ok
        await other.receive("presence_state", "debug:30")
        assert (await client.join("debug:30")).ok
        state = await client.receive("presence_state", "debug:30")
        old_ref = state.payload[user.key]["metas"][0]["phx_ref"]
        joined = await other.receive("presence_diff", "debug:30")
        while user.key not in joined.payload["joins"]:  # the watcher's own join comes first
            joined = await other.receive("presence_diff", "debug:30")
        assert joined.payload["joins"][user.key]["metas"][0]["phx_ref"] == old_ref
        reply = await client.push("debug:30", "presence_update", {"meta": {"status": "away"}})
        new_ref = reply.response["phx_ref"]
        diff = await other.receive("presence_diff", "debug:30")
        (new_meta,) = diff.payload["joins"][user.key]["metas"]
        (old_meta,) = diff.payload["leaves"][user.key]["metas"]
        assert new_meta["phx_ref"] == new_ref != old_ref
        assert new_meta["phx_ref_prev"] == old_ref
        assert new_meta["status"] == "away"
        assert old_meta["phx_ref"] == old_ref


async def test_item_33_revocation_closes_every_socket_with_1001_and_presence_leaves(
    realtime: Realtime,
) -> None:
    victim, watcher = await realtime.users(2)
    cid = await realtime.group(victim, watcher)
    topic = f"conversation:{cid}"
    async with (
        open_phoenix_client(realtime.url, token=watcher.token) as observer,
        open_phoenix_client(realtime.url, token=victim.token) as first,
        open_phoenix_client(realtime.url, token=victim.token, vsn=None) as second,
    ):
        assert (await observer.join(topic)).ok
        refs = set()
        for client in (first, second):
            assert (await client.join(topic)).ok
            state = await client.receive("presence_state", topic)
            refs.add(state.payload[victim.key]["metas"][-1]["phx_ref"])
        assert len(realtime.hub.sessions_of(victim.id)) == 2
        # Presence diffs are merged per broadcast period: a join and leave inside one period
        # cancel out. So the observer first sees both joins, then the revocation's leaves.
        joined: set[str] = set()
        with trio.fail_after(5):
            while joined != refs:
                diff = await observer.receive("presence_diff", topic)
                joined |= {
                    m["phx_ref"] for m in diff.payload["joins"].get(victim.key, {}).get("metas", [])
                }
        realtime.hub.revoke_user(victim.id)
        for client in (first, second):
            code, _reason = await client.wait_closed()
            assert code == 1001
        left: set[str] = set()
        with trio.fail_after(5):
            while left != refs:
                diff = await observer.receive("presence_diff", topic)
                left |= {
                    m["phx_ref"]
                    for m in diff.payload["leaves"].get(victim.key, {}).get("metas", [])
                }
        assert realtime.hub.sessions_of(victim.id) == []
        assert (await observer.heartbeat()).ok


async def test_operator_close_endpoint_uses_1012(realtime: Realtime) -> None:
    import httpx

    from tests.conftest import TEST_OPERATOR_TOKEN

    user = await realtime.user()
    async with open_phoenix_client(realtime.url, token=user.token) as client:
        async with httpx.AsyncClient(base_url=realtime.http) as http:
            refused = await http.post(f"/debug/sockets/{user.id}/close")
            assert refused.status_code == 401
            response = await http.post(
                f"/debug/sockets/{user.id}/close",
                headers={"Authorization": f"Bearer {TEST_OPERATOR_TOKEN}"},
            )
            assert response.status_code == 202
            answer = response.json()
            assert (answer["closed"], answer["code"]) == (1, 1012)
        code, _ = await client.wait_closed()
        assert code == 1012


async def test_unmatched_unauthorized_and_duplicate_joins(realtime: Realtime) -> None:
    alice, bob = await realtime.users(2)
    cid = await realtime.group(bob)
    async with open_phoenix_client(realtime.url, token=alice.token) as client:
        # a push on a topic that is not joined: unmatched topic with join_ref null (§4.3)
        ref = await client.push_nowait("system:general", "anything", {}, join_ref="9")
        reply = await client.wait_reply(ref)
        assert (reply.status, reply.response, reply.message.join_ref) == ("error", UNMATCHED, None)
        # unroutable topic
        reply = await client.join("nothing:here")
        assert (reply.response, reply.message.join_ref) == (UNMATCHED, None)
        for topic in (
            f"user:{bob.id}",
            f"private_chat:{bob.id}",
            f"conversation:{cid}",
            f"conversation:{uuid.uuid4()}",
            "conversation:not-a-uuid",
        ):
            reply = await client.join(topic)
            assert (reply.status, reply.response) == ("error", {"reason": "unauthorized"}), topic
            assert reply.message.join_ref == reply.message.ref
        # a join whose handler raises
        reply = await client.join("debug:x", {"crash": True})
        assert reply.response == {"reason": "join crashed"}
        # duplicate join: phx_close with the OLD join_ref, the new one works, the old is stale
        assert (await client.join("debug:dup")).ok
        old = client.join_refs["debug:dup"]
        assert (await client.join("debug:dup")).ok
        new = client.join_refs["debug:dup"]
        close = await client.receive("phx_close", "debug:dup")
        assert (close.join_ref, close.ref) == (old, old)
        assert (await client.push("debug:dup", "reply_bare", {})).message.join_ref == new
        stale = await client.push_nowait("debug:dup", "reply_bare", {}, join_ref=old)
        # The socket handles its frames in order: by the next push's reply, none came for it.
        assert (await client.push("debug:dup", "reply_bare", {})).ok
        assert [m for m in client.inbox if m.ref == stale] == []
        assert realtime.hub.statistics()["counters"]["stale_join_ref"] == 1


async def test_channel_crash_is_isolated(realtime: Realtime) -> None:
    user = await realtime.user()
    async with open_phoenix_client(realtime.url, token=user.token) as client:
        await client.join("debug:a")
        await client.join("debug:b")
        jr = client.join_refs["debug:a"]
        await client.push_nowait("debug:a", "crash", {})
        error = await client.receive("phx_error", "debug:a")
        assert (error.join_ref, error.ref, error.payload) == (jr, jr, {"reason": "channel_crash"})
        assert (await client.push("debug:b", "reply_bare", {})).ok
        assert (await client.join("debug:a")).ok


async def test_malformed_frames_close_the_socket_never_crash_it(realtime: Realtime) -> None:
    user = await realtime.user()
    cases: list[tuple[str | None, str | bytes, int]] = [
        ("2.0.0", "{not json", 1007),
        ("2.0.0", '["1","1","phoenix"]', 1007),
        ("2.0.0", '{"topic":"phoenix"}', 1007),
        ("2.0.0", b"", 1007),  # an empty binary frame (Quart would hand it over as None)
        ("2.0.0", b"\x07junk", 1007),
        (None, '["a","b","c","d",{}]', 1007),
        ("1.0.0", b"\x00\x01", 1003),
    ]
    for vsn, frame, code in cases:
        async with open_phoenix_client(realtime.url, token=user.token, vsn=vsn) as client:
            if isinstance(frame, bytes):
                await client.send_bytes(frame)
            else:
                await client.send_text(frame)
            closed, _ = await client.wait_closed()
            assert closed == code, (vsn, frame)
    # the server is fine
    async with open_phoenix_client(realtime.url, token=user.token) as client:
        assert (await client.heartbeat()).ok


async def test_frame_over_the_size_limit_closes_with_1009(realtime: Realtime) -> None:
    user = await realtime.user()
    limit = realtime.context.settings.socket.max_frame_bytes
    async with open_phoenix_client(realtime.url, token=user.token) as client:
        big = orjson.dumps([None, "1", "phoenix", "heartbeat", {"pad": "x" * limit}]).decode()
        await client.send_text(big)
        code, _ = await client.wait_closed()
        assert code == 1009


async def test_push_rate_limit(tmp_path: object, database_url: str, nursery: trio.Nursery) -> None:
    settings = socket_settings(
        tmp_path,  # type: ignore[arg-type]
        database_url,
        # A token every 2 s: the burst is spent long before one comes back, however slow the
        # machine (the bucket's arithmetic is test_ratelimit.py's, on a clock of its own).
        socket={"pushes_per_second": 0.5, "push_burst": 5},
    )
    running: RunningServer = await nursery.start(partial(serve, settings, handle_signals=False))
    realtime = Realtime(running)
    user = await realtime.user()
    async with open_phoenix_client(realtime.url, token=user.token) as client:
        assert (await client.join("debug:rl")).ok  # 1 token
        statuses = [(await client.push("debug:rl", "reply_bare", {})).response for _ in range(6)]
        assert statuses[:4] == [{}] * 4
        assert statuses[4:] == [{"reason": "rate_limited"}] * 2
        assert (await client.heartbeat()).ok  # heartbeats are never limited
        with trio.fail_after(30):  # the bucket refills on the real clock: a token within 2 s
            while not (await client.push("debug:rl", "reply_bare", {})).ok:  # noqa: ASYNC110
                await trio.sleep(0.1)


async def test_idle_connection_is_closed_with_1001(
    tmp_path: object, database_url: str, nursery: trio.Nursery
) -> None:
    settings = socket_settings(
        tmp_path,  # type: ignore[arg-type]
        database_url,
        socket={"heartbeat_timeout_seconds": 1.5},
    )
    running: RunningServer = await nursery.start(partial(serve, settings, handle_signals=False))
    realtime = Realtime(running)
    user = await realtime.user()
    async with open_phoenix_client(
        realtime.url, token=user.token, heartbeat_interval=0.1
    ) as lively:
        assert (await lively.heartbeat()).ok  # its session is up before the silent one connects
        async with open_phoenix_client(realtime.url, token=user.token) as silent:
            code, reason = await silent.wait_closed(timeout=30)
        assert (code, reason) == (1001, "idle timeout")
        # The check that found the silent socket idle would have found the older lively one idle
        # too, had its heartbeats not counted: it closed exactly one socket, and not this one.
        assert realtime.hub.statistics()["counters"]["idle_timeouts"] == 1
        assert (await lively.heartbeat()).ok
        assert lively.close_reason is None
