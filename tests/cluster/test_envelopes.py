"""Batches and fragments: what `pack` makes, `unpack` and `Reassembly` read back."""

from __future__ import annotations

import orjson

from parley.actors.realtime.envelopes import (
    Reassembly,
    encode_envelope,
    pack,
    payload_of,
    unpack,
)


def read_back(batches: list[bytes]) -> list[list[object]]:
    reassembly = Reassembly()
    envelopes: list[list[object]] = []
    for batch in batches:
        for envelope in unpack(batch).envelopes:
            if envelope[0] == "f":
                whole = reassembly.add(envelope)
                if whole is not None:
                    envelopes.append(whole)
            else:
                envelopes.append(envelope)
    return envelopes


def test_envelopes_are_packed_up_to_the_limit_in_order() -> None:
    envelopes = [["p", [f"topic:{i}"], "event", {"n": i, "pad": "x" * 100}] for i in range(200)]
    batches = list(pack("node-a", 7, map(encode_envelope, envelopes), 2000))
    assert len(batches) > 10
    assert all(len(batch) <= 2000 for batch in batches)
    assert unpack(batches[0]).node == "node-a"
    assert unpack(batches[0]).epoch == 7
    assert read_back(batches) == envelopes


def test_an_envelope_bigger_than_a_batch_travels_in_fragments() -> None:
    big = ["o", ["conversation:1"], "new_msg", {"body": 'é"\\' * 5000}, "1", 3]
    small = ["h", 1]
    batches = list(pack("a", 1, map(encode_envelope, [small, big, small]), 1000))
    assert all(len(batch) <= 1000 for batch in batches)
    assert read_back(batches) == [small, big, small]


def test_a_lost_fragment_loses_only_its_envelope() -> None:
    big = ["p", ["t"], "e", "y" * 3000]
    after = ["p", ["t"], "e", "next"]
    batches = list(pack("a", 1, map(encode_envelope, [big, after]), 1000))
    assert read_back(batches[:1] + batches[2:]) == [after]


def test_bytes_payloads_come_back_as_bytes() -> None:
    (batch,) = pack("a", 1, [encode_envelope(["p", ["t"], "e", b"\x00\xff"])], 1000)
    (envelope,) = unpack(batch).envelopes
    assert payload_of(envelope[3]) == b"\x00\xff"


def test_anything_else_on_the_channel_is_refused() -> None:
    for junk in (b"hello", b"[1, 2]", orjson.dumps({"node": "a"}), b'["a", "1", []]'):
        try:
            unpack(junk)
        except ValueError:
            continue
        raise AssertionError(f"{junk!r} was taken for a batch")
