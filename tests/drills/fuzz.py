"""Hypothesis strategies for drill W10: hostile client frames, upgrade requests and long-poll
bodies, each built from a valid one and then bent (wrong lengths, reserved bits and opcodes,
unmasked, bad UTF-8, torn JSON) and finally, sometimes, mutated byte by byte."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any
from urllib.parse import urlencode

from hypothesis import strategies as st

CRLF = b"\r\n"

# -- byte-level mutation -------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with up to four random edits: a bit flipped, bytes inserted, a slice deleted or
    duplicated, or the tail cut off."""
    for _ in range(draw(st.integers(0, 4))):
        edit = draw(st.sampled_from(["flip", "insert", "delete", "repeat", "truncate"]))
        at = draw(st.integers(0, len(data)))
        if edit == "flip" and at < len(data):
            bit = 1 << draw(st.integers(0, 7))
            data = data[:at] + bytes((data[at] ^ bit,)) + data[at + 1 :]
        elif edit == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
        elif edit == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 8)) :]
        elif edit == "repeat":
            data = data[:at] + data[at : at + draw(st.integers(1, 16))] + data[at:]
        elif edit == "truncate":
            data = data[:at]
    return data


# -- Phoenix frames and their JSON ---------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
refs = st.none() | st.text(max_size=6) | st.integers(-5, 10**12)


def phoenix_messages(topics: list[str]) -> st.SearchStrategy[Any]:
    """V2 array frames (and the shapes a broken client might send instead)."""
    topic = st.sampled_from(topics) | st.text(max_size=30)
    event = st.sampled_from(
        ["heartbeat", "phx_join", "phx_leave", "new_msg", "typing", "read", "edit_msg",
         "delete_msg", "presence", "pusher:subscribe", "client-x"]
    ) | st.text(max_size=12)  # fmt: skip
    array = st.tuples(refs, refs, topic, event, json_values).map(list)
    return (
        array
        | st.lists(json_values, max_size=7)
        | st.dictionaries(
            st.sampled_from(["topic", "event", "payload", "ref", "data"]), json_values
        )
        | json_values
    )


def encoded(value: Any) -> bytes:
    """JSON as a client could write it (the standard library's: integers of any size)."""
    return json.dumps(value, ensure_ascii=False).encode()


def text_payloads(topics: list[str]) -> st.SearchStrategy[bytes]:
    valid = phoenix_messages(topics).map(encoded)
    bad_utf8 = st.sampled_from(
        [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\xce\xba\xe1"]
    )  # fmt: skip
    return (
        valid
        | valid.flatmap(mutated)
        | st.tuples(valid, bad_utf8).map(lambda pair: pair[0][:-1] + pair[1] + pair[0][-1:])
        | st.binary(max_size=200)
    )


# -- WebSocket frames ----------------------------------------------------------------------


@st.composite
def ws_frame(draw: st.DrawFn, payloads: st.SearchStrategy[bytes]) -> bytes:
    """One client frame, usually well-formed, often not."""
    opcode = draw(st.sampled_from([0x0, 0x1, 0x1, 0x1, 0x2, 0x8, 0x9, 0xA]) | st.integers(0, 15))
    fin = draw(st.booleans() if draw(st.booleans()) else st.just(True))
    rsv = draw(st.sampled_from([0, 0, 0, 1, 2, 4, 7]))
    payload = draw(payloads)
    if opcode == 0x8 and draw(st.booleans()):  # a close frame: code and reason
        code = draw(st.sampled_from([1000, 1001, 1005, 1006, 999, 1016, 2999, 3000, 4999, 5000])
                    | st.integers(0, 65535))  # fmt: skip
        payload = struct.pack("!H", code) + draw(st.sampled_from([b"", b"bye", b"\xff\xfe"]))
    length = len(payload)
    encoding = draw(st.sampled_from(["minimal", "minimal", "minimal", "16", "64", "lie", "huge"]))
    if encoding == "lie":
        length = max(0, length + draw(st.integers(-8, 8)))
    elif encoding == "huge":
        length = draw(st.sampled_from([65_537, 1 << 20, 1 << 32, (1 << 63) - 1, (1 << 64) - 1]))
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    masked = draw(st.booleans()) if draw(st.integers(0, 9)) == 0 else True
    mask_bit = 0x80 if masked else 0
    if encoding == "16" or (encoding == "minimal" and 126 <= length < 1 << 16):
        header = bytes((first, mask_bit | 126)) + struct.pack("!H", min(length, 0xFFFF))
    elif encoding in ("64", "huge") or (encoding == "minimal" and length >= 1 << 16):
        header = bytes((first, mask_bit | 127)) + struct.pack("!Q", length)
    else:
        header = bytes((first, mask_bit | min(length, 125)))
    if masked:
        key = draw(st.binary(min_size=4, max_size=4))
        payload = bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))
        header += key
    return header + payload


def frame_streams(topics: list[str]) -> st.SearchStrategy[bytes]:
    """What one fuzzed client sends after its handshake: a few frames, maybe mutated."""
    frames = st.lists(ws_frame(text_payloads(topics)), min_size=1, max_size=6).map(b"".join)
    return frames | frames.flatmap(mutated)


# -- upgrade requests ----------------------------------------------------------------------

_KEY = base64.b64encode(b"0123456789abcdef").decode()
_header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40
)  # fmt: skip


_REQUIRED = ("Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version")
_UPGRADE_HEADERS: dict[str, list[str]] = {
    # The valid value first (a sound request takes it).
    # Not `h2c`: Hypercorn switches to HTTP/2 and then holds the connection of a client that
    # half-closes (docs/fast_path.md, "Known limits").
    "Upgrade": ["websocket", "WebSocket", "h2", ""],
    "Connection": ["Upgrade", "keep-alive, Upgrade", "close", ""],
    "Sec-WebSocket-Key": [_KEY, "", "short", _KEY + "=="],
    "Sec-WebSocket-Version": ["13", "8", "", "13, 8"],
    "Sec-WebSocket-Protocol": [
        "phoenix", "phoenix, base64url.bearer.phx.eA", "base64url.bearer.phx.!!", ""],
    "Sec-WebSocket-Extensions": [
        "permessage-deflate", "permessage-deflate; client_max_window_bits",
        "permessage-deflate; server_max_window_bits=7", "permessage-deflate; x=1",
        "permessage-deflate; client_max_window_bits=99; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; server_max_window_bits=8", "x-webkit-deflate-frame", ";;,"],
    "Origin": ["http://127.0.0.1", "null", "http://evil.example", ""],
    "Content-Length": ["0", "5", "-1", "99999999999"],
    "Transfer-Encoding": ["chunked", "gzip", ""],
}  # fmt: skip


@st.composite
def upgrade_requests(draw: st.DrawFn, token: str, app_key: str) -> bytes:
    """An HTTP/1.1 request head aimed at a socket path. Half are sound upgrades (the right
    path, token and handshake headers) bent only in their optional headers, so the server gets
    as far as the upgrade itself; the rest are bent anywhere, and maybe mutated."""
    sound = draw(st.booleans())
    paths = ["/socket/websocket", f"/app/{app_key}"]
    if sound:
        method, path = "GET", draw(st.sampled_from(paths))
        query = {"vsn": "2.0.0", "token": token}
    else:
        method = draw(st.sampled_from(["GET", "GET", "GET", "POST", "HEAD", "OPTIONS", "BREW"]))
        path = draw(
            st.sampled_from([*paths, "/socket/longpoll", "/socket/websocket/", "/app/", "/"])
            | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30)
        )
        query = {}
        if draw(st.booleans()):
            query["vsn"] = draw(st.sampled_from(["2.0.0", "1.0.0", "3.0.0", ""]) | _header_values)
        if draw(st.integers(0, 3)):
            query["token"] = draw(st.sampled_from([token, token[:-3], "x.y.z"]) | _header_values)
    if draw(st.booleans()):
        query["protocol"] = draw(st.sampled_from(["7", "6", "99", ""]))
    headers: list[tuple[str, str]] = [("Host", "127.0.0.1")]
    for name, listed in _UPGRADE_HEADERS.items():
        if sound and name in _REQUIRED:
            headers.append((name, listed[0]))
            continue
        values = st.sampled_from(listed) if sound else st.sampled_from(listed) | _header_values
        present = draw(st.integers(0, 4))
        if name in _REQUIRED:
            present = present or 1  # mostly there: the interesting refusals come later
        elif name in ("Content-Length", "Transfer-Encoding"):
            present = int(present == 4)
        for _ in range(1 if present < 4 or sound else 2):  # 4: the header twice
            if present:
                headers.append((name, draw(values)))
    target = path + ("?" + urlencode(query) if query else "")
    head = f"{method} {target} HTTP/1.1".encode()
    for name, value in draw(st.permutations(headers)):
        head += CRLF + f"{name}: {value}".encode()
    head += CRLF + CRLF
    return head if sound else draw(st.just(head) | mutated(head))


# -- long-poll bodies ----------------------------------------------------------------------


@st.composite
def longpoll_posts(draw: st.DrawFn, topics: list[str]) -> tuple[str, bytes]:
    """(content type, body) of a long-poll POST: NDJSON lines of frames, base64 lines, JSON, or
    junk, maybe mutated."""
    content_type = draw(st.sampled_from(
        ["application/x-ndjson", "application/x-ndjson", "application/json", "text/plain", ""]
    ))  # fmt: skip
    line = st.one_of(
        phoenix_messages(topics).map(encoded),
        st.binary(max_size=40).map(base64.b64encode),
        st.sampled_from([b"[", b"{}", b"\xff\xfe", b"====", b"\r", b"null", b"[1,2,3,4,5,6]"]),
    )
    body = b"\n".join(draw(st.lists(line, max_size=8)))
    if draw(st.integers(0, 20)) == 0:
        body = b"\n".join([b'[null,"1","phoenix","heartbeat",{}]'] * draw(st.integers(90, 130)))
    return content_type, draw(st.just(body) | mutated(body))
