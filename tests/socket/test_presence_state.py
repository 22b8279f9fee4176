"""Presence bookkeeping (PHOENIX_PROTOCOL.md §7): payload shapes, and agreement with a faithful
Python port of phoenix.js 1.8.16 `Presence.syncState` / `Presence.syncDiff`."""

from __future__ import annotations

import copy
import itertools
from typing import TYPE_CHECKING, Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley.actors.realtime.presence_state import (
    AlreadyTrackedError,
    NotTrackedError,
    PresenceDiff,
    TopicPresence,
    random_ref_factory,
)

if TYPE_CHECKING:
    from collections.abc import Callable

State = dict[str, dict[str, Any]]


def counting_refs() -> Any:
    counter = itertools.count(1)
    return lambda: f"r{next(counter)}"


def presence() -> TopicPresence:
    return TopicPresence("room:42", ref_factory=counting_refs())


# -- a port of assets/js/phoenix/presence.js (1.8.16) ---------------------------------------


def sync_diff(
    state: State, diff: dict[str, Any], events: list[tuple[str, str]] | None = None
) -> State:
    state = dict(state)
    diff = copy.deepcopy(diff)
    for key, new_presence in diff["joins"].items():
        current = state.get(key)
        state[key] = copy.deepcopy(new_presence)
        if current is not None:
            joined_refs = [meta["phx_ref"] for meta in state[key]["metas"]]
            kept = [meta for meta in current["metas"] if meta["phx_ref"] not in joined_refs]
            state[key]["metas"][0:0] = kept
    for key, left_presence in diff["leaves"].items():
        current = state.get(key)
        if current is None:
            continue
        refs_to_remove = [meta["phx_ref"] for meta in left_presence["metas"]]
        current = dict(current)
        current["metas"] = [m for m in current["metas"] if m["phx_ref"] not in refs_to_remove]
        state[key] = current
        if not current["metas"]:
            del state[key]
    return state


def sync_state(state: State, new_state: State) -> State:
    state = copy.deepcopy(state)
    new_state = copy.deepcopy(new_state)
    joins: State = {}
    leaves: State = {}
    for key, current in state.items():
        if key not in new_state:
            leaves[key] = current
    for key, new_presence in new_state.items():
        existing = state.get(key)
        if existing is not None:
            new_refs = [m["phx_ref"] for m in new_presence["metas"]]
            cur_refs = [m["phx_ref"] for m in existing["metas"]]
            joined = [m for m in new_presence["metas"] if m["phx_ref"] not in cur_refs]
            left = [m for m in existing["metas"] if m["phx_ref"] not in new_refs]
            if joined:
                joins[key] = {**new_presence, "metas": joined}
            if left:
                leaves[key] = {**copy.deepcopy(existing), "metas": left}
        else:
            joins[key] = new_presence
    return sync_diff(state, {"joins": joins, "leaves": leaves})


def wire(payload: Any) -> Any:
    """What a client receives: the payload after a JSON round trip."""
    return orjson.loads(orjson.dumps(payload))


# -- shapes -------------------------------------------------------------------------------


def test_track_produces_join_diff_and_state() -> None:
    p = presence()
    diff = p.track("conn-a", "u:17", {"device": "web"})
    assert diff.payload() == {
        "joins": {"u:17": {"metas": [{"device": "web", "phx_ref": "r1"}]}},
        "leaves": {},
    }
    p.track("conn-b", "u:17", {"device": "mobile"})
    p.track("conn-c", "u:23", {"device": "web"})
    assert p.state() == {
        "u:17": {
            "metas": [{"device": "web", "phx_ref": "r1"}, {"device": "mobile", "phx_ref": "r2"}]
        },
        "u:23": {"metas": [{"device": "web", "phx_ref": "r3"}]},
    }
    assert len(p) == 2
    assert p.meta_count == 3
    assert "u:17" in p
    assert list(p) == ["u:17", "u:23"]
    assert p.get("u:17")[1]["phx_ref"] == "r2"
    assert p.get("nobody") == []


def test_update_is_one_join_and_one_leave_for_the_same_key() -> None:
    p = presence()
    p.track("conn-a", "u:17", {"status": "online"})
    diff = p.update("conn-a", "u:17", {"status": "away"})
    assert diff.payload() == {
        "joins": {"u:17": {"metas": [{"status": "away", "phx_ref": "r2", "phx_ref_prev": "r1"}]}},
        "leaves": {"u:17": {"metas": [{"status": "online", "phx_ref": "r1"}]}},
    }
    assert p.state() == {
        "u:17": {"metas": [{"status": "away", "phx_ref": "r2", "phx_ref_prev": "r1"}]}
    }
    again = p.update("conn-a", "u:17", {"status": "busy", "phx_ref_prev": "forged", "phx_ref": "x"})
    assert again.payload()["joins"]["u:17"]["metas"] == [
        {"status": "busy", "phx_ref": "r3", "phx_ref_prev": "r2"}
    ]


def test_untrack_leaves_quote_exact_phx_ref() -> None:
    p = presence()
    p.track("conn-a", "u:17", {"device": "web"})
    p.track("conn-b", "u:17", {"device": "mobile"})
    p.track("conn-a", "u:99", {"as": "second key"})
    diff = p.untrack("conn-a")
    assert diff.payload() == {
        "joins": {},
        "leaves": {
            "u:17": {"metas": [{"device": "web", "phx_ref": "r1"}]},
            "u:99": {"metas": [{"as": "second key", "phx_ref": "r3"}]},
        },
    }
    assert p.state() == {"u:17": {"metas": [{"device": "mobile", "phx_ref": "r2"}]}}
    assert p.keys_of("conn-a") == []
    assert p.untrack("conn-a").is_empty
    assert p.untrack("conn-b", "u:17").payload()["leaves"] == {
        "u:17": {"metas": [{"device": "mobile", "phx_ref": "r2"}]}
    }
    assert p.is_empty
    assert p.state() == {}


def test_untrack_one_key_keeps_the_others() -> None:
    p = presence()
    p.track("c", "a", {})
    p.track("c", "b", {})
    assert list(p.untrack("c", "a").leaves) == ["a"]
    assert p.keys_of("c") == ["b"]
    assert p.is_tracked("c", "b")
    assert not p.is_tracked("c", "a")
    assert p.untrack("c", "missing").is_empty


def test_one_meta_per_connection_and_key() -> None:
    p = presence()
    p.track("conn-a", "u:1", {})
    with pytest.raises(AlreadyTrackedError):
        p.track("conn-a", "u:1", {})
    with pytest.raises(NotTrackedError):
        p.update("conn-b", "u:1", {})
    with pytest.raises(NotTrackedError):
        p.update("conn-a", "u:2", {})


def test_returned_metas_are_copies() -> None:
    p = presence()
    diff = p.track("c", "k", {"n": 1})
    diff.payload()["joins"]["k"]["metas"][0]["n"] = 2
    p.state()["k"]["metas"][0]["n"] = 3
    p.get("k")[0]["n"] = 4
    assert p.state() == {"k": {"metas": [{"n": 1, "phx_ref": "r1"}]}}


def test_caller_meta_is_not_mutated() -> None:
    p = presence()
    meta = {"device": "web", "phx_ref": "mine"}
    p.track("c", "k", meta)
    assert meta == {"device": "web", "phx_ref": "mine"}


def test_random_refs_are_unique_phoenix_shaped() -> None:
    refs = [random_ref_factory()() for _ in range(5)]
    factory = random_ref_factory()
    refs += [factory() for _ in range(1000)]
    assert len(set(refs)) == len(refs)
    assert all(len(ref) == 16 and "=" not in ref for ref in refs)


def test_default_factory_used_when_none_given() -> None:
    p = TopicPresence("t")
    p.track("c", "k", {})
    assert len(p.get("k")[0]["phx_ref"]) == 16
    assert "keys=1" in repr(p)


def test_empty_diff_payload_has_both_keys() -> None:
    assert PresenceDiff().payload() == {"joins": {}, "leaves": {}}
    assert PresenceDiff().is_empty


# -- merging --------------------------------------------------------------------------------


def test_merge_cancels_metas_that_joined_and_left_in_the_batch() -> None:
    p = presence()
    p.track("a", "k", {"v": 0})
    merged = (
        p.track("b", "k", {"v": 1})
        .merge(p.update("b", "k", {"v": 2}))
        .merge(p.untrack("a"))
        .merge(p.track("c", "gone", {}))
        .merge(p.untrack("c"))
    )
    assert merged.payload() == {
        "joins": {"k": {"metas": [{"v": 2, "phx_ref": "r3", "phx_ref_prev": "r2"}]}},
        "leaves": {"k": {"metas": [{"v": 0, "phx_ref": "r1"}]}},
    }


# -- agreement with phoenix.js ------------------------------------------------------------


def test_client_applying_diffs_holds_server_state_in_the_same_order() -> None:
    p = presence()
    client: State = {}
    steps: list[Callable[[], PresenceDiff]] = [
        lambda: p.track("a", "k", {"n": "a"}),
        lambda: p.track("b", "k", {"n": "b"}),
        lambda: p.track("c", "k", {"n": "c"}),
        lambda: p.update("a", "k", {"n": "a2"}),
        lambda: p.untrack("b"),
    ]
    for step in steps:
        client = sync_diff(client, wire(step().payload()))
        assert client == wire(p.state())
    assert [m["n"] for m in client["k"]["metas"]] == ["c", "a2"]


def test_late_joiner_snapshot_then_buffered_diffs() -> None:
    """phoenix.js applies `presence_state`, then the diffs it buffered before it (§7.3)."""
    p = presence()
    p.track("a", "u:1", {})
    snapshot = wire(p.state())
    buffered = wire(p.track("b", "u:2", {}).payload())  # arrives before the snapshot is applied
    client = sync_state({}, snapshot)
    client = sync_diff(client, buffered)
    assert client == wire(p.state())


def test_resync_after_reconnect_drops_stale_metas() -> None:
    """After a rejoin the client receives a fresh `presence_state` for its new join."""
    p = presence()
    p.track("a", "u:1", {})
    p.track("b", "u:2", {})
    client = sync_state({}, wire(p.state()))
    p.untrack("b")  # missed while disconnected
    p.update("a", "u:1", {"status": "away"})
    p.track("c", "u:3", {})
    resynced = sync_state(client, wire(p.state()))
    assert resynced == wire(p.state())
    assert [m["phx_ref"] for m in resynced["u:1"]["metas"]] == [p.get("u:1")[0]["phx_ref"]]


ops = st.lists(
    st.tuples(
        st.sampled_from(["track", "update", "untrack", "untrack_key"]),
        st.sampled_from(["c1", "c2", "c3", "c4"]),
        st.sampled_from(["u:1", "u:2", "__proto__"]),
        st.integers(0, 3),
    ),
    max_size=40,
)


@settings(max_examples=200)
@given(ops, st.integers(1, 5))
def test_any_history_keeps_client_and_server_in_sync(
    history: list[tuple[str, str, str, int]], batch: int
) -> None:
    p = presence()
    client: State = {}
    batched: State = {}
    late_joiner_at = len(history) // 2
    late: State | None = None
    pending = PresenceDiff()
    seen_refs: set[str] = set()
    for index, (op, conn, key, value) in enumerate(history):
        if op == "track" and not p.is_tracked(conn, key):
            diff = p.track(conn, key, {"v": value})
        elif op == "update" and p.is_tracked(conn, key):
            diff = p.update(conn, key, {"v": value})
        elif op == "untrack":
            diff = p.untrack(conn)
        elif op == "untrack_key":
            diff = p.untrack(conn, key)
        else:
            continue
        joined = [m["phx_ref"] for metas in diff.joins.values() for m in metas]
        assert not seen_refs & set(joined), "phx_ref reused"
        seen_refs.update(joined)
        client = sync_diff(client, wire(diff.payload()))
        assert client == wire(p.state())
        pending = pending.merge(diff)
        if index % batch == 0:
            batched = sync_diff(batched, wire(pending.payload()))
            pending = PresenceDiff()
            assert batched == wire(p.state())
        if late is not None:
            late = sync_diff(late, wire(diff.payload()))
        if index == late_joiner_at:
            late = sync_state({}, wire(p.state()))
    batched = sync_diff(batched, wire(pending.payload()))
    assert batched == wire(p.state())
    if late is not None:
        assert late == wire(p.state())
    # every key has metas with unique refs, one per tracking connection
    for presence_ in p.state().values():
        refs = [m["phx_ref"] for m in presence_["metas"]]
        assert len(refs) == len(set(refs)) >= 1
