"""The other nodes' presence: deltas in counter order, state on a gap, leaves when a node goes."""

from __future__ import annotations

from typing import Any

from parley.actors.realtime.remote_presence import RemotePresence


def meta(ref: str) -> dict[str, Any]:
    return {"phx_ref": ref, "online_at": 1}


def joins(key: str, *refs: str) -> dict[str, Any]:
    return {key: {"metas": [meta(ref) for ref in refs]}}


class Diffs:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, topic: str, payload: dict[str, Any]) -> None:
        self.seen.append((topic, payload))


def synced(diffs: Diffs) -> RemotePresence:
    """A view that holds node b (epoch 1) at counter 0, with nothing."""
    remote = RemotePresence(diffs)
    assert remote.heard("b", 1, 0) is True  # a new node: ask for its state
    remote.replace("b", 1, ["s", 0, {}])
    return remote


def test_deltas_in_order_are_applied_and_told_once() -> None:
    diffs = Diffs()
    remote = synced(diffs)
    assert remote.delta("b", 1, ["d", 1, "room", joins("ann", "r1"), {}]) is False
    assert remote.delta("b", 1, ["d", 1, "room", joins("ann", "r1"), {}]) is False  # a repeat
    assert remote.state("room") == {"ann": [meta("r1")]}
    assert diffs.seen == [("room", {"joins": joins("ann", "r1"), "leaves": {}})]
    assert remote.delta("b", 1, ["d", 2, "room", {}, joins("ann", "r1")]) is False
    assert remote.state("room") == {}


def test_a_missing_delta_asks_for_the_state_which_replaces_what_was_held() -> None:
    diffs = Diffs()
    remote = synced(diffs)
    remote.delta("b", 1, ["d", 1, "room", joins("ann", "r1"), {}])
    assert remote.delta("b", 1, ["d", 3, "room", joins("bob", "r3"), {}]) is True
    assert remote.delta("b", 1, ["d", 4, "room", joins("cy", "r4"), {}]) is True  # dropped
    remote.replace("b", 1, ["s", 4, {"room": {**joins("bob", "r3"), **joins("cy", "r4")}}])
    assert remote.state("room") == {"bob": [meta("r3")], "cy": [meta("r4")]}
    topic, last = diffs.seen[-1]
    assert topic == "room"
    assert set(last["joins"]) == {"bob", "cy"}
    assert last["leaves"] == joins("ann", "r1")


def test_a_heartbeat_ahead_of_the_deltas_reveals_a_lost_last_delta() -> None:
    remote = synced(Diffs())
    assert remote.heard("b", 1, 0) is False
    assert remote.heard("b", 1, 1) is True


def test_a_node_that_goes_or_restarts_leaves_with_all_it_had() -> None:
    diffs = Diffs()
    remote = synced(diffs)
    remote.delta("b", 1, ["d", 1, "room", joins("ann", "r1", "r2"), {}])
    assert remote.heard("b", 2, 0) is True  # restarted: a new epoch
    assert remote.state("room") == {}
    assert diffs.seen[-1] == ("room", {"joins": {}, "leaves": joins("ann", "r1", "r2")})
    remote.replace("b", 2, ["s", 0, {"room": joins("ann", "r9")}])
    remote.forget("b")
    assert diffs.seen[-1] == ("room", {"joins": {}, "leaves": joins("ann", "r9")})
    assert remote.delta("b", 1, ["d", 2, "room", joins("ghost", "r0"), {}]) is True
    assert remote.state("room") == {}
