"""Serializers: exact catalogue frames (PHOENIX_PROTOCOL.md §2.7), binary layouts (§2.6),
version negotiation (§2.3), strict decoding and fuzzing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.api.socket.core import message as m
from parley.api.socket.core.close_codes import CLOSE_INVALID_DATA, CLOSE_UNSUPPORTED_DATA
from parley.api.socket.core.message import Broadcast, Frame, Message, Reply
from parley.api.socket.core.serializer import EncodeError, FrameError, Serializer
from parley.api.socket.phoenix.serializer import (
    V1,
    V2,
    UnsupportedVsnError,
    V1JsonSerializer,
    V2JsonSerializer,
    serializer_for_vsn,
)

SERIALIZERS: list[Serializer] = [V1, V2]


def text(frame: Frame) -> str:
    assert not frame.binary
    return frame.text()


# -- version negotiation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vsn", "expected"),
    [
        (None, V1),
        ("1.0.0", V1),
        ("1.0.7", V1),
        ("1.0.1-rc.1", V1),
        ("1.0.0+build.5", V1),
        ("2.0.0", V2),
        ("2.0.3", V2),
    ],
)
def test_vsn_selects_serializer(vsn: str | None, expected: Serializer) -> None:
    assert serializer_for_vsn(vsn) is expected


@pytest.mark.parametrize(
    "vsn",
    [
        "3.0.0",
        "2.1.0",
        "1.1.0",
        "0.9.0",
        "2.0.0-rc.1",
        "garbage",
        "",
        "2.0",
        "02.0.0",
        "2.0.0\n",
        "２.0.0",
        " 2.0.0",
    ],
)
def test_vsn_refused(vsn: str) -> None:
    with pytest.raises(UnsupportedVsnError) as info:
        serializer_for_vsn(vsn)
    assert info.value.vsn == vsn
    assert info.value.http_status == 403


def test_serializers_satisfy_protocol() -> None:
    serializers: list[Serializer] = [V1JsonSerializer(), V2JsonSerializer()]
    assert [s.vsn for s in serializers] == ["1.0.0", "2.0.0"]
    assert [s.supports_binary for s in serializers] == [False, True]
    assert V1.cache_key != V2.cache_key


# -- catalogue, V2 -------------------------------------------------------------------------

JOIN = Message("7", "7", "room:42", "phx_join", {"nick": "ada"})
EVENT = Message("7", "12", "room:42", "new_msg", {"body": "hello"})
LEAVE = Message("7", "15", "room:42", "phx_leave", {})
HEARTBEAT = Message(None, "8", "phoenix", "heartbeat", {})


def test_v2_decodes_client_frames() -> None:
    assert V2.decode_text('["7","7","room:42","phx_join",{"nick":"ada"}]') == JOIN  # F1
    assert V2.decode_text(b'["7","12","room:42","new_msg",{"body":"hello"}]') == EVENT  # F7
    assert V2.decode_text('["7","15","room:42","phx_leave",{}]') == LEAVE  # F11
    assert V2.decode_text('[null,"8","phoenix","heartbeat",{}]') == HEARTBEAT  # F15
    assert HEARTBEAT.is_heartbeat
    assert not EVENT.is_heartbeat


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            m.reply_ok(JOIN, {"history": []}),
            '["7","7","room:42","phx_reply",{"status":"ok","response":{"history":[]}}]',
        ),  # F2
        (
            m.reply_error(JOIN, {"reason": "unauthorized"}),
            '["7","7","room:42","phx_reply",{"status":"error","response":{"reason":"unauthorized"}}]',
        ),
        (
            m.reply_unmatched_topic(JOIN),
            '[null,"7","room:42","phx_reply",'
            '{"status":"error","response":{"reason":"unmatched topic"}}]',
        ),
        (
            m.reply_join_crashed(JOIN),
            '["7","7","room:42","phx_reply",'
            '{"status":"error","response":{"reason":"join crashed"}}]',
        ),
        (
            m.reply_too_many_channels(JOIN),
            '["7","7","room:42","phx_reply",{"status":"error","response":'
            '{"reason":"too many channels joined"}}]',
        ),  # F6
        (
            m.reply_ok(EVENT, {"id": 991}),
            '["7","12","room:42","phx_reply",{"status":"ok","response":{"id":991}}]',
        ),  # F8
        (m.reply_ok(LEAVE), '["7","15","room:42","phx_reply",{"status":"ok","response":{}}]'),
        (m.heartbeat_reply("8"), '[null,"8","phoenix","phx_reply",{"status":"ok","response":{}}]'),
        (m.reply_error(EVENT), '["7","12","room:42","phx_reply",{"status":"error","response":{}}]'),
    ],
)
def test_v2_reply_catalogue(reply: Reply, expected: str) -> None:
    assert text(V2.encode_reply(reply)) == expected
    assert text(V2.encode(reply)) == expected


@pytest.mark.parametrize(
    ("push", "expected"),
    [
        (
            m.push("7", "room:42", "typing", {"user": "bo"}),
            '["7",null,"room:42","typing",{"user":"bo"}]',
        ),  # F9
        (m.close_message("room:42", "7"), '["7","7","room:42","phx_close",{}]'),  # F13
        (
            m.error_message("room:42", "7"),
            '["7","7","room:42","phx_error",{"reason":"channel_crash"}]',
        ),  # F14
        (m.push("7", "room:42", "presence_state", {}), '["7",null,"room:42","presence_state",{}]'),
    ],
)
def test_v2_push_catalogue(push: Message, expected: str) -> None:
    assert text(V2.encode_push(push)) == expected
    assert text(V2.encode(push)) == expected


def test_v2_broadcast_catalogue() -> None:
    broadcast = Broadcast("room:42", "new_msg", {"body": "hello", "from": "ada"})  # F10
    assert (
        text(V2.fastlane(broadcast))
        == '[null,null,"room:42","new_msg",{"body":"hello","from":"ada"}]'
    )
    diff = Broadcast("room:42", "presence_diff", {"joins": {}, "leaves": {}})  # F18
    assert text(V2.encode(diff)) == '[null,null,"room:42","presence_diff",{"joins":{},"leaves":{}}]'


# -- catalogue, V1 -------------------------------------------------------------------------


def test_v1_decodes_client_frames() -> None:
    frame = (
        '{"topic":"room:42","event":"phx_join","payload":{"nick":"ada"},"ref":"7","join_ref":"7"}'
    )
    assert V1.decode_text(frame) == JOIN
    no_join_ref = V1.decode_text('{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"8"}')
    assert no_join_ref == HEARTBEAT
    extra = V1.decode_text('{"topic":"t","event":"e","payload":1,"ref":null,"x":[1]}')
    assert extra == Message(None, None, "t", "e", 1)


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (
            m.reply_ok(JOIN, {"history": []}),
            '{"topic":"room:42","event":"phx_reply","payload":{"status":"ok","response":{"history":[]}},'
            '"ref":"7"}',
        ),  # F2
        (
            m.reply_unmatched_topic(JOIN),
            '{"topic":"room:42","event":"phx_reply","payload":{"status":"error","response":'
            '{"reason":"unmatched topic"}},"ref":"7"}',
        ),  # F4
        (
            m.reply_ok(EVENT, {"id": 991}),
            '{"topic":"room:42","event":"phx_reply","payload":{"status":"ok","response":{"id":991}},'
            '"ref":"12"}',
        ),  # F8
        (
            m.push("7", "room:42", "typing", {"user": "bo"}),
            '{"topic":"room:42","event":"typing","payload":{"user":"bo"},"ref":null}',
        ),  # F9
        (
            Broadcast("room:42", "new_msg", {"body": "hi"}),
            '{"topic":"room:42","event":"new_msg","payload":{"body":"hi"},"ref":null}',
        ),  # F10
        (
            m.close_message("room:42", "7"),
            '{"topic":"room:42","event":"phx_close","payload":{},"ref":"7"}',
        ),  # F13
        (
            m.error_message("room:42", "7"),
            '{"topic":"room:42","event":"phx_error","payload":{"reason":"channel_crash"},"ref":"7"}',
        ),
        (
            m.heartbeat_reply("8"),
            '{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},'
            '"ref":"8"}',
        ),  # F16
    ],
)
def test_v1_catalogue_has_no_join_ref(item: Message | Reply | Broadcast, expected: str) -> None:
    encoded = text(V1.encode(item))
    assert encoded == expected
    assert "join_ref" not in orjson.loads(encoded)


# -- refs are opaque -----------------------------------------------------------------------


@pytest.mark.parametrize("ref", [0, 17, -1, None, "abc", 1.5, True, 2**63, -(2**63)])
@pytest.mark.parametrize("serializer", SERIALIZERS, ids=["v1", "v2"])
def test_refs_echo_with_same_json_type(serializer: Serializer, ref: Any) -> None:
    if serializer is V1:
        raw = orjson.dumps({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": ref})
    else:
        raw = orjson.dumps([ref, ref, "phoenix", "heartbeat", {}])
    message = serializer.decode_text(raw)
    assert message.ref == ref
    assert type(message.ref) is type(ref)
    frame = serializer.encode_reply(m.heartbeat_reply(message.ref))
    assert frame is not None
    echoed = orjson.loads(frame.data)
    echoed_ref = echoed["ref"] if serializer is V1 else echoed[1]
    assert echoed_ref == ref
    assert type(echoed_ref) is type(ref)


def test_effective_join_ref() -> None:
    assert m.effective_join_ref(JOIN) == "7"
    assert m.effective_join_ref(Message(None, "3", "t", "phx_join", {})) == "3"


# -- malformed input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "invalid_json"),
        ("[", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        ("[NaN]", "invalid_json"),
        ('"\\ud800"', "invalid_json"),
        ("{}", "bad_shape"),
        ('"x"', "bad_shape"),
        ("null", "bad_shape"),
        ("[]", "wrong_arity"),
        ('[null,"1","phoenix","heartbeat"]', "wrong_arity"),
        ('[null,"1",42,"heartbeat",{}]', "bad_field"),
        ('[null,"1","phoenix",null,{}]', "bad_field"),
        ('[[1],"1","t","e",{}]', "bad_field"),
        ('[null,{"a":1},"t","e",{}]', "bad_field"),
    ],
)
def test_v2_rejects_malformed_text(raw: str | bytes, reason: str) -> None:
    with pytest.raises(FrameError) as info:
        V2.decode_text(raw)
    assert info.value.reason == reason
    assert info.value.close_code == CLOSE_INVALID_DATA


def test_v2_ignores_trailing_elements() -> None:
    assert V2.decode_text('[null,"1","t","e",{},"extra",3]') == Message(None, "1", "t", "e", {})


def test_v2_accepts_any_json_payload() -> None:
    assert V2.decode_text('[null,"1","t","e",[1,"x"]]').payload == [1, "x"]
    assert V2.decode_text('[null,"1","t","e",null]').payload is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("[1,2,3,4,5]", "bad_shape"),
        ('{"event":"e","payload":{},"ref":"1"}', "missing_key"),
        ('{"topic":"t","payload":{},"ref":"1"}', "missing_key"),
        ('{"topic":"t","event":"e","ref":"1"}', "missing_key"),
        ('{"topic":"t","event":"e","payload":{}}', "missing_key"),
        ('{"topic":1,"event":"e","payload":{},"ref":"1"}', "bad_field"),
        ('{"topic":"t","event":"e","payload":{},"ref":"1","join_ref":[]}', "bad_field"),
        ("not json", "invalid_json"),
    ],
)
def test_v1_rejects_malformed_text(raw: str, reason: str) -> None:
    with pytest.raises(FrameError) as info:
        V1.decode_text(raw)
    assert info.value.reason == reason


def test_v1_refuses_binary_frames() -> None:
    with pytest.raises(FrameError) as info:
        V1.decode_binary(b"\x00\x01\x01\x01\x01abcd")
    assert info.value.reason == "binary_unsupported"
    assert info.value.close_code == CLOSE_UNSUPPORTED_DATA


# -- binary (§2.6) -------------------------------------------------------------------------

PROBE_PUSH = bytes.fromhex("00 01 01 06 05 33 37 72 6f 6f 6d 3a 31 62 69 6e 75 70 01 02 03")


def test_v2_decodes_probed_binary_push() -> None:
    message = V2.decode_binary(PROBE_PUSH)
    assert message == Message("3", "7", "room:1", "binup", b"\x01\x02\x03")
    assert message.is_binary


def test_v2_binary_push_with_empty_refs_and_payload() -> None:
    raw = b"\x00\x00\x00\x01\x01te"
    assert V2.decode_binary(raw) == Message(None, None, "t", "e", b"")
    assert V2.decode_binary(memoryview(raw)) == Message(None, None, "t", "e", b"")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x01\x01\x01\x01\x01abcd",  # a reply: clients may not send it
        b"\x02\x01\x01ab",
        b"\x00\x01\x01",  # truncated header
        b"\x00\x01\x01\x06\x05\x33\x37room",  # metadata runs past the end
        b"\x00\x00\x00\x02\x01\xff\xfee",  # topic not UTF-8
    ],
)
def test_v2_rejects_malformed_binary(raw: bytes) -> None:
    with pytest.raises(FrameError) as info:
        V2.decode_binary(raw)
    assert info.value.reason == "bad_binary"


def test_v2_encodes_binary_push_with_four_byte_header() -> None:
    frame = V2.encode_push(m.push("3", "room:1", "bin_push", b"\x07\x08\x09"))
    assert frame.binary
    assert frame.data == b"\x00\x01\x06\x08" + b"3" + b"room:1" + b"bin_push" + b"\x07\x08\x09"
    null_join_ref = V2.encode_push(m.push(None, "t", "e", b"x"))
    assert null_join_ref.data == b"\x00\x00\x01\x01tex"


def test_v2_encodes_binary_reply_and_broadcast() -> None:
    reply = V2.encode_reply(Reply("3", "7", "room:1", "ok", b"\x01\x02"))
    assert reply.binary
    assert reply.data == b"\x01\x01\x01\x06\x02" + b"37room:1ok" + b"\x01\x02"
    broadcast = V2.fastlane(Broadcast("room:1", "blob", b"\xff"))
    assert broadcast.binary
    assert broadcast.data == b"\x02\x06\x04room:1blob\xff"
    with pytest.raises(ValueError, match="binary"):
        broadcast.text()


def test_v2_binary_meta_longer_than_255_bytes_is_refused() -> None:
    with pytest.raises(EncodeError):
        V2.encode_push(m.push("1", "t" * 256, "e", b""))
    assert len(V2.encode_push(m.push("1", "t" * 255, "e", b"")).data) == 4 + 1 + 255 + 1
    with pytest.raises(EncodeError):
        V2.encode_push(m.push("1", "\ud800", "e", b""))


def test_v2_binary_reply_with_integer_ref() -> None:
    assert V2.encode_reply(Reply(None, 12, "t", "ok", b"")).data == b"\x01\x00\x02\x01\x0212tok"


def test_v1_cannot_encode_binary() -> None:
    with pytest.raises(EncodeError):
        V1.encode_push(m.push("1", "t", "e", b"x"))
    with pytest.raises(EncodeError):
        V1.encode_reply(Reply("1", "1", "t", "ok", b"x"))
    with pytest.raises(EncodeError):
        V1.fastlane(Broadcast("t", "e", b"x"))


@pytest.mark.parametrize("serializer", SERIALIZERS, ids=["v1", "v2"])
@pytest.mark.parametrize("payload", [[1], "x", None, 3])
def test_push_payload_must_be_object_or_bytes(serializer: Serializer, payload: Any) -> None:
    with pytest.raises(EncodeError):
        serializer.encode_push(m.push("1", "t", "e", payload))
    with pytest.raises(EncodeError):
        serializer.encode_broadcast(Broadcast("t", "e", payload))


@pytest.mark.parametrize("serializer", SERIALIZERS, ids=["v1", "v2"])
def test_unencodable_payload_raises_encode_error(serializer: Serializer) -> None:
    with pytest.raises(EncodeError):
        serializer.encode_push(m.push("1", "t", "e", {"x": object()}))
    with pytest.raises(EncodeError):
        serializer.encode_reply(Reply("1", "1", "t", "ok", {1: "non-str key"}))
    with pytest.raises(EncodeError):
        serializer.encode_push(m.push("1", "t", "e", {"n": 2**64}))


def test_reply_response_may_be_any_json() -> None:
    assert text(V2.encode_reply(Reply("1", "2", "t", "ok", [1, 2]))).endswith(
        '{"status":"ok","response":[1,2]}]'
    )


# -- fastlane (§6.2) -----------------------------------------------------------------------


def test_fastlane_encodes_once_per_serializer() -> None:
    payload: dict[str, Any] = {"body": "hello"}
    broadcast = Broadcast("room:42", "new_msg", payload)
    first_v2 = V2.fastlane(broadcast)
    first_v1 = V1.fastlane(broadcast)
    payload["body"] = "mutated after publication"  # proves later calls reuse the cached bytes
    assert V2.fastlane(broadcast) is first_v2
    assert V1.fastlane(broadcast) is first_v1
    assert V2JsonSerializer().fastlane(broadcast) is first_v2  # keyed by version, not instance
    assert b"hello" in first_v2.data
    assert b"hello" in first_v1.data
    assert broadcast.cached_frame(V2.cache_key) is first_v2


def test_broadcast_cache_not_part_of_repr_and_equality_is_identity() -> None:
    # pubsub's Broadcast (one object per published event) compares by identity: two events with
    # the same fields are still two deliveries, and each keeps its own frame cache.
    a = Broadcast("t", "e", {"x": 1})
    b = Broadcast("t", "e", {"x": 1})
    V2.fastlane(a)
    assert a != b
    assert b.cached_frame(V2.cache_key) is None
    assert "_frames" not in repr(a)


def test_frame_length_and_text() -> None:
    frame = V2.encode_reply(m.heartbeat_reply("8"))
    assert len(frame) == len(frame.data)
    assert frame.text() == frame.data.decode()


# -- round trips and fuzzing ---------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text()
json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
refs = st.none() | st.text(max_size=10) | st.integers(-(2**63), 2**63 - 1)
names = st.text(max_size=30)


@given(refs, refs, names, names, json_values)
def test_v2_text_round_trip(join_ref: Any, ref: Any, topic: str, event: str, payload: Any) -> None:
    raw = orjson.dumps([join_ref, ref, topic, event, payload])
    assert V2.decode_text(raw) == Message(join_ref, ref, topic, event, payload)
    assert V2.decode_text(raw.decode()) == Message(join_ref, ref, topic, event, payload)


@given(refs, refs, names, names, json_values)
def test_v1_text_round_trip(join_ref: Any, ref: Any, topic: str, event: str, payload: Any) -> None:
    raw = orjson.dumps(
        {"topic": topic, "event": event, "payload": payload, "ref": ref, "join_ref": join_ref}
    )
    assert V1.decode_text(raw) == Message(join_ref, ref, topic, event, payload)


short = st.text(max_size=40).filter(lambda s: len(s.encode()) <= 255)


@given(short, short, short, short, st.binary(max_size=64))
def test_v2_binary_push_round_trip(
    join_ref: str, ref: str, topic: str, event: str, payload: bytes
) -> None:
    fields = [x.encode() for x in (join_ref, ref, topic, event)]
    raw = bytes([0, *map(len, fields)]) + b"".join(fields) + payload
    assert V2.decode_binary(raw) == Message(join_ref or None, ref or None, topic, event, payload)


@given(refs, refs, names, names, json_values.filter(lambda v: v is not None))
def test_v2_reply_encoding_is_valid_json(
    join_ref: Any, ref: Any, topic: str, status: str, response: Any
) -> None:
    frame = V2.encode_reply(Reply(join_ref, ref, topic, status, response))
    assert orjson.loads(frame.data) == [
        join_ref,
        ref,
        topic,
        "phx_reply",
        {"status": status, "response": response},
    ]


@settings(max_examples=300)
@given(st.binary(max_size=80) | st.text(max_size=80))
def test_decode_never_raises_anything_but_frame_error(raw: bytes | str) -> None:
    for serializer in SERIALIZERS:
        for decode in (serializer.decode_text, serializer.decode_binary):
            try:
                message = decode(raw)  # type: ignore[arg-type]  # str into decode_binary too
            except FrameError:
                continue
            assert isinstance(message, Message)
            assert isinstance(message.topic, str)
            assert isinstance(message.event, str)


structured = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=6)
        | st.dictionaries(
            st.sampled_from(["topic", "event", "payload", "ref", "join_ref", "x"]),
            children,
            max_size=6,
        )
    ),
    max_leaves=10,
)


@settings(max_examples=300)
@given(structured)
def test_decode_of_arbitrary_json_never_raises_anything_but_frame_error(value: Any) -> None:
    raw = orjson.dumps(value)
    for serializer in SERIALIZERS:
        try:
            message = serializer.decode_text(raw)
        except FrameError:
            continue
        assert isinstance(message.topic, str)
        assert isinstance(message.event, str)
        # whatever decoded must be echoable
        serializer.encode_reply(m.reply_ok(message))
