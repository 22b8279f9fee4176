"""Phoenix presence diffs as Pusher's per-user events (PUSHER_PROTOCOL.md §6, §8).

Presence (`parley.actors.realtime.presence`) tracks one meta per connection under the user's key
and broadcasts `presence_diff {joins, leaves}` (merged over its broadcast period). Pusher's
clients want to hear of a *user*: `member_added` when their first connection arrives,
`member_removed` when their last one leaves, nothing for a second tab. `changes` works that out
once per diff, from the diff and the metas subscribers know of once it is applied
(`Presence.announced`: changes not yet broadcast do not count, so a diff of another node that
arrives while this node's batch is pending is judged against what subscribers heard): a key with
no metas before and some after was added, one with some before and none after removed. The
result is cached on the diff's broadcast, so every Pusher socket on the topic shares one
computation and the same derived broadcasts (each encoded once).
Because presence is one view, Phoenix end users on `app:K:presence-*` count as members too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from parley.actors.realtime.pubsub import Broadcast
from parley.api.socket.pusher.frames import MEMBER_ADDED, MEMBER_REMOVED

_CHANGES_KEY: Final = "pusher:member-changes"
_EVENTS_KEY: Final = "pusher:member-events"


@dataclass(frozen=True, slots=True)
class Changes:
    """Users that arrived (with the `user_info` of their meta) and users that left."""

    added: tuple[tuple[str, Any], ...]
    removed: tuple[str, ...]


def changes(diff: Broadcast, metas_of: Callable[[str], int]) -> Changes:
    """The per-user changes of `diff` (a `presence_diff`), computed once per broadcast."""
    cached: Changes | None = diff.cached_frame(_CHANGES_KEY)
    if cached is not None:
        return cached
    payload = diff.payload if isinstance(diff.payload, dict) else {}
    joins, leaves = _metas(payload.get("joins")), _metas(payload.get("leaves"))
    added: list[tuple[str, Any]] = []
    removed: list[str] = []
    for key in dict.fromkeys([*joins, *leaves]):
        after = metas_of(key)
        before = after - len(joins.get(key, ())) + len(leaves.get(key, ()))
        if before <= 0 < after:
            newest = joins[key][-1] if joins.get(key) else {}
            added.append((key, newest.get("user_info") if isinstance(newest, dict) else None))
        elif after <= 0 < before:
            removed.append(key)
    result = Changes(tuple(added), tuple(removed))
    diff.cache_frame(_CHANGES_KEY, result)
    return result


def member_events(diff: Broadcast, metas_of: Callable[[str], int]) -> tuple[Broadcast, ...]:
    """`member_added` / `member_removed` broadcasts for `diff`, made once per diff."""
    cached: tuple[Broadcast, ...] | None = diff.cached_frame(_EVENTS_KEY)
    if cached is not None:
        return cached
    found = changes(diff, metas_of)
    events = [
        Broadcast(diff.topic, MEMBER_ADDED, {"user_id": key, "user_info": info})
        for key, info in found.added
    ]
    events += [Broadcast(diff.topic, MEMBER_REMOVED, {"user_id": key}) for key in found.removed]
    result = tuple(events)
    diff.cache_frame(_EVENTS_KEY, result)
    return result


def presence_data(state: dict[str, dict[str, list[Any]]]) -> dict[str, Any]:
    """`subscription_succeeded`'s data of a presence channel (§6) from a presence state."""
    hash_: dict[str, Any] = {}
    for key, entry in state.items():
        metas = entry.get("metas") or [{}]
        meta = metas[0] if isinstance(metas[0], dict) else {}
        hash_[key] = meta.get("user_info")
    return {"presence": {"ids": list(hash_), "hash": hash_, "count": len(hash_)}}


def _metas(value: object) -> dict[str, list[Any]]:
    if not isinstance(value, dict):
        return {}
    found: dict[str, list[Any]] = {}
    for key, entry in value.items():
        metas = entry.get("metas") if isinstance(entry, dict) else None
        found[str(key)] = metas if isinstance(metas, list) else []
    return found
