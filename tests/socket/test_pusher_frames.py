"""The Pusher protocol's sans-IO parts: the signature test vectors of PUSHER_PROTOCOL.md §5, the
channel and user rules, the frames as core messages and back, per-user presence changes, the
cache channels and the one trigger path."""

from __future__ import annotations

import orjson
import pytest

from parley.actors.realtime.pubsub import Broadcast, LocalPubSub
from parley.api.socket.core import message as m
from parley.api.socket.core.message import Message, Reply
from parley.api.socket.core.serializer import FrameError
from parley.api.socket.pusher import frames, members
from parley.api.socket.pusher.connect import new_socket_id
from parley.api.socket.pusher.frames import PusherSerializer
from parley.api.socket.pusher.rules import (
    Kind,
    RuleError,
    channel_kind,
    channel_string,
    name_problem,
    presence_member,
    signature_valid,
    signed_in_user,
    signin_string,
)
from parley.integrations.channel_cache import ChannelCache
from parley.integrations.signing import Secret, channel_authorization
from parley.integrations.triggers import AppBroadcast, Trigger, TriggerPublisher

VECTOR_KEY = "278d425bdf160c739803"
VECTOR_SECRET = "7ad3773142a6692b25b8"
SOCKET = "1234.1234"
PRESENCE_DATA = '{"user_id":10,"user_info":{"name":"Mr. Pusher"}}'
APP = "a" * 20
SECRETS = (Secret(1, VECTOR_SECRET),)


# -- §5 test vectors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "signature"),
    [
        (
            channel_string(SOCKET, "private-foobar", None),
            "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4",
        ),
        (
            signin_string(SOCKET, '{"id":"12345"}'),
            "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba",
        ),
        (
            channel_string(SOCKET, "presence-foobar", PRESENCE_DATA),
            "afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c",
        ),
    ],
)
def test_signature_vectors(text: str, signature: str) -> None:
    assert channel_authorization(VECTOR_KEY, VECTOR_SECRET, text) == f"{VECTOR_KEY}:{signature}"
    assert signature_valid(f"{VECTOR_KEY}:{signature}", VECTOR_KEY, SECRETS, text)


def test_a_signature_over_anything_else_is_refused() -> None:
    good = channel_authorization(
        VECTOR_KEY, VECTOR_SECRET, channel_string(SOCKET, "presence-foobar", PRESENCE_DATA)
    )
    off_by_one = channel_string(SOCKET, "presence-foobar", PRESENCE_DATA + " ")
    assert not signature_valid(good, VECTOR_KEY, SECRETS, off_by_one)
    respaced = channel_string(SOCKET, "presence-foobar", PRESENCE_DATA.replace(":", ": "))
    assert not signature_valid(good, VECTOR_KEY, SECRETS, respaced)  # never re-serialised
    text = channel_string(SOCKET, "private-foobar", None)
    auth = channel_authorization(VECTOR_KEY, VECTOR_SECRET, text)
    assert not signature_valid(auth, "otherkey", SECRETS, text)
    assert not signature_valid(auth[:-1] + "0", VECTOR_KEY, SECRETS, text)
    assert not signature_valid(None, VECTOR_KEY, SECRETS, text)
    assert not signature_valid(auth, VECTOR_KEY, (), text)
    rotated = (Secret(2, "n" * 40), Secret(1, VECTOR_SECRET))
    assert signature_valid(auth, VECTOR_KEY, rotated, text)


# -- names, kinds, members, users -----------------------------------------------------------


def test_channel_kinds_by_prefix() -> None:
    cases = {
        "news": (Kind.PUBLIC, False),
        "cache-news": (Kind.PUBLIC, True),
        "private-a": (Kind.PRIVATE, False),
        "private-cache-a": (Kind.PRIVATE, True),
        "private-encrypted-a": (Kind.ENCRYPTED, False),
        "private-encrypted-cache-a": (Kind.ENCRYPTED, True),
        "presence-a": (Kind.PRESENCE, False),
        "presence-cache-a": (Kind.PRESENCE, True),
        "#server-to-user-7": (Kind.USER, False),
    }
    for name, (kind, cache) in cases.items():
        found = channel_kind(name)
        assert (found.kind, found.cache) == (kind, cache), name
    assert channel_kind("private-a").takes_client_events
    assert channel_kind("presence-a").takes_client_events
    assert not channel_kind("private-encrypted-a").takes_client_events
    assert not channel_kind("news").takes_client_events


def test_channel_names() -> None:
    assert name_problem("A-z_0=9@,.;", 200) is None
    assert name_problem("x" * 200, 200) is None
    assert name_problem("x" * 201, 200) is not None
    assert name_problem("", 200) is not None
    for bad in ("a:b", "a b", "a/b", "#x", "ü"):
        assert name_problem(bad, 200) is not None, bad
    assert name_problem("#server-to-user-anything at all", 200) is None
    assert name_problem("#server-to-user-", 200) is not None


def test_presence_members() -> None:
    member = presence_member(PRESENCE_DATA, max_id_chars=128, max_info_bytes=1024)
    assert (member.user_id, member.user_info) == ("10", {"name": "Mr. Pusher"})
    big = orjson.dumps({"user_id": "u", "user_info": {"x": "y" * 1100}}).decode()
    for bad in (None, "not json", "[1]", '{"user_info":{}}', '{"user_id":true}', big,
                orjson.dumps({"user_id": "x" * 129}).decode()):  # fmt: skip
        with pytest.raises(RuleError):
            presence_member(bad, max_id_chars=128, max_info_bytes=1024)


def test_signed_in_users() -> None:
    user = signed_in_user('{"id":"12345","watchlist":["a","b","a"]}', max_id_chars=128)
    assert (user.user_id, user.watchlist) == ("12345", ("a", "b"))
    for bad in (None, "x", '{"id":""}', '{"id":12}', '{"id":"a","watchlist":"b"}'):
        with pytest.raises(RuleError):
            signed_in_user(bad, max_id_chars=128)


def test_socket_ids_are_what_the_sdks_accept_and_differ() -> None:
    ids = {new_socket_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(frames.SOCKET_ID.fullmatch(i) for i in ids)


# -- frames -------------------------------------------------------------------------------


def encoded(frame: m.Frame | None) -> dict[str, object]:
    assert frame is not None
    decoded: dict[str, object] = orjson.loads(frame.data)
    return decoded


def test_client_frames_become_core_messages() -> None:
    s = PusherSerializer(APP)
    ping = s.decode_text('{"event":"pusher:ping","data":{}}')
    assert ping.is_heartbeat and ping.ref == frames.REF_PING
    sub = s.decode_text('{"event":"pusher:subscribe","data":{"channel":"private-x","auth":"k:s"}}')
    assert (sub.event, sub.topic, sub.ref) == (m.PHX_JOIN, f"app:{APP}:private-x", "subscribe")
    user = s.decode_text('{"event":"pusher:subscribe","data":{"channel":"#server-to-user-u:1"}}')
    assert user.topic == f"app:{APP}:user:u:1"
    leave = s.decode_text('{"event":"pusher:unsubscribe","data":"{\\"channel\\":\\"x\\"}"}')
    assert (leave.event, leave.topic) == (m.PHX_LEAVE, f"app:{APP}:x")
    client = s.decode_text('{"event":"client-a","channel":"private-x","data":[1]}')
    assert (client.event, client.topic, client.payload) == ("client-a", f"app:{APP}:private-x", [1])
    signin = s.decode_text('{"event":"pusher:signin","data":{"auth":"a","user_data":"{}"}}')
    assert (signin.event, signin.topic) == (m.PHX_JOIN, frames.users_topic(APP))
    # Names that are no channel never map onto another topic of the application.
    for name in ("user:bob", "#users", ""):
        bad = s.decode_text(orjson.dumps({"event": "pusher:subscribe", "data": {"channel": name}}))
        assert bad.topic.startswith(frames.INVALID_PREFIX), name
    unknown = s.decode_text('{"event":"pusher:nope"}')
    assert unknown.topic == frames.NO_CHANNEL_TOPIC and str(unknown.ref).startswith("error:")
    for junk in ("nope", "[1]", '{"data":{}}', '{"event":1}'):
        with pytest.raises(FrameError):
            s.decode_text(junk)
    with pytest.raises(FrameError):
        s.decode_binary(b"{}")


def test_server_frames() -> None:
    s = PusherSerializer(APP)
    topic = f"app:{APP}:presence-r"
    ok = encoded(s.encode_reply(Reply(None, "subscribe", topic, "ok", {"presence": {"count": 1}})))
    assert ok == {
        "event": "pusher_internal:subscription_succeeded",
        "channel": "presence-r",
        "data": '{"presence":{"count":1}}',
    }
    refused = encoded(
        s.encode_reply(Reply(None, "subscribe", topic, "error", {"reason": "unmatched topic"}))
    )
    assert refused["event"] == "pusher:subscription_error"
    assert orjson.loads(str(refused["data"]))["status"] == 400
    assert encoded(s.encode_reply(m.heartbeat_reply("ping")))["event"] == "pusher:pong"
    assert s.encode_reply(m.heartbeat_reply("pong")) is None
    assert s.encode_reply(Reply(None, "unsubscribe", topic, "ok", {})) is None
    assert s.encode_push(m.close_message(topic, "subscribe")) is None
    error = encoded(
        s.encode_reply(Reply(None, "client", topic, "error", {"code": 4301, "message": "rate"}))
    )
    assert error == {
        "event": "pusher:error",
        "channel": "presence-r",
        "data": {"code": 4301, "message": "rate"},
    }
    user = encoded(s.encode_push(Message(None, None, f"app:{APP}:user:u", "hi", {"a": 1})))
    assert user == {"event": "hi", "channel": "#server-to-user-u", "data": '{"a":1}'}


def test_a_broadcast_is_encoded_once_for_every_pusher_socket() -> None:
    one, two = PusherSerializer(APP), PusherSerializer(APP)
    broadcast = AppBroadcast(f"app:{APP}:news", "e", {"data": "hi"}, data="hi", user_id="u")
    first, second = one.fastlane(broadcast), two.fastlane(broadcast)
    assert first is second
    assert encoded(first) == {"event": "e", "channel": "news", "data": "hi", "user_id": "u"}
    diff = Broadcast(f"app:{APP}:presence-x", m.PRESENCE_DIFF, {"joins": {}, "leaves": {}})
    assert one.fastlane(diff) is None and two.fastlane(diff) is None


def test_close_codes_map_to_pushers() -> None:
    assert frames.close_mapping(1012, "server restart")[0] == 4200
    assert frames.close_mapping(1001, "closed")[0] == 4200
    assert frames.close_mapping(1013, "slow consumer")[0] == 4100
    code, _, last = frames.close_mapping(4009, "terminated")
    assert code == 4009
    assert encoded(last) == {
        "event": "pusher:error",
        "data": {"code": 4009, "message": "terminated"},
    }


# -- presence per user --------------------------------------------------------------------


def diff(joins: dict[str, int], leaves: dict[str, int]) -> Broadcast:
    def metas(counts: dict[str, int]) -> dict[str, object]:
        return {k: {"metas": [{"user_info": {"n": k}}] * n} for k, n in counts.items()}

    return Broadcast(
        "app:k:presence-x", m.PRESENCE_DIFF, {"joins": metas(joins), "leaves": metas(leaves)}
    )


def test_member_events_are_per_user() -> None:
    now = {"a": 1, "b": 2, "c": 0}
    events = members.member_events(diff({"a": 1, "b": 1}, {"c": 1}), lambda key: now[key])
    assert [(e.event, e.payload["user_id"]) for e in events] == [
        ("pusher_internal:member_added", "a"),
        ("pusher_internal:member_removed", "c"),
    ]
    assert events[0].payload["user_info"] == {"n": "a"}
    now = {"b": 1}  # one of b's two tabs left: b is still there
    assert members.member_events(diff({}, {"b": 1}), lambda key: now[key]) == ()
    now = {"d": 0}  # joined and left within one merged diff: nothing
    assert members.member_events(diff({"d": 1}, {"d": 1}), lambda key: now[key]) == ()


def test_member_events_are_computed_once_per_diff() -> None:
    calls: list[str] = []

    def metas_of(key: str) -> int:
        calls.append(key)
        return 1

    shared = diff({"a": 1}, {})
    assert members.member_events(shared, metas_of) is members.member_events(shared, metas_of)
    assert calls == ["a"]


# -- cache channels and the trigger path --------------------------------------------------


def test_the_cache_keeps_the_last_event_of_cache_channels_only() -> None:
    clock = [0.0]
    cache = ChannelCache(ttl_seconds=10, max_channels=2, clock=lambda: clock[0])
    assert not cache.remember("app:k:news", "e", {}, None)
    assert not cache.remember("app:k", "e", {}, None)
    assert cache.remember("app:k:cache-a", "e1", {"n": 1}, None)
    assert cache.remember("app:k:cache-a", "e2", {"n": 2}, "raw")
    last = cache.last("app:k:cache-a")
    assert last is not None and (last.event, last.data) == ("e2", "raw")
    assert cache.remember("app:k:private-cache-b", "e", {}, None)
    assert cache.remember("app:k:presence-cache-c", "e", {}, None)  # the bound: a goes first
    assert len(cache) == 2 and cache.last("app:k:cache-a") is None
    clock[0] = 10
    assert cache.last("app:k:private-cache-b") is None


def test_the_trigger_path_fills_the_cache_and_leaves_the_named_socket_out() -> None:
    pubsub = LocalPubSub()
    got: dict[str, list[Broadcast]] = {"a": [], "b": []}

    class Sub:
        def __init__(self, name: str) -> None:
            self.name = name

        def deliver(self, broadcast: Broadcast) -> None:
            got[self.name].append(broadcast)

    a, b = Sub("a"), Sub("b")
    for sub in (a, b):
        pubsub.subscribe("app:k:cache-x", sub)
    cache = ChannelCache(ttl_seconds=60, max_channels=10)
    publisher = TriggerPublisher(
        pubsub, cache, lambda socket_id, topic: a if socket_id == "1.2" else None
    )
    trigger = Trigger("e", ("app:k:cache-x",), {"data": "s"}, "1.2", "s")
    assert publisher.publish(trigger) == 1
    assert got["a"] == [] and len(got["b"]) == 1
    sent = got["b"][0]
    assert isinstance(sent, AppBroadcast) and sent.data == "s" and sent.socket_id == "1.2"
    cached = cache.last("app:k:cache-x")
    assert cached is not None and cached.data == "s"
