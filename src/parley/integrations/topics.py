"""The topics of an application (DESIGN §4.2, §5), and which of them an end user may join.

| topic | what |
| --- | --- |
| `app:{key}` | the application's broadcast topic (a trigger without `channel`) |
| `app:{key}:{channel}` | the application's Pusher channel (`private-*`, `presence-*` too) |
| `app:{key}:user:{id}` | one end user (`#server-to-user-{id}` in the Pusher protocol) |

A channel name never holds `:` (Pusher's charset), so `app:{key}:user:{id}` cannot be a channel.
`#server-to-user-{id}` is the one name outside the charset a Pusher client or trigger may use
(`SERVER_TO_USER`): it names the end user's topic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

PREFIX: Final = "app"
USER: Final = "user"
PRIVATE_PREFIX: Final = "private-"
PRESENCE_PREFIX: Final = "presence-"
SERVER_TO_USER: Final = "#server-to-user-"
_CHANNEL_CHARS: Final = re.compile(r"[A-Za-z0-9_\-=@,.;]+")


def namespace(app_key: str) -> str:
    """The broadcast topic, which every other topic of the application extends."""
    return f"{PREFIX}:{app_key}"


def channel_topic(app_key: str, channel: str) -> str:
    return f"{PREFIX}:{app_key}:{channel}"


def user_topic(app_key: str, user_id: str) -> str:
    return f"{PREFIX}:{app_key}:{USER}:{user_id}"


def channel_problem(name: str, max_chars: int) -> str | None:
    """Why `name` is no channel name (Pusher's charset, at most `max_chars`), or None."""
    if not name or len(name) > max_chars:
        return f"channel names have 1 to {max_chars} characters"
    if _CHANNEL_CHARS.fullmatch(name) is None:
        return "channel names use only A-Z a-z 0-9 and _ - = @ , . ;"
    return None


@dataclass(frozen=True, slots=True)
class AppTopic:
    """A parsed `app:` topic: its application and what it names."""

    app_key: str
    kind: Literal["broadcast", "channel", "user"]
    name: str
    """The channel name or the end-user id; empty for the broadcast topic."""


def parse(topic: str) -> AppTopic | None:
    """`topic` as an application's topic, or None when it is none (malformed)."""
    prefix, sep, rest = topic.partition(":")
    if prefix != PREFIX or not sep:
        return None
    key, sep, name = rest.partition(":")
    if not key:
        return None
    if not sep:
        return AppTopic(key, "broadcast", "")
    kind, sep, user_id = name.partition(":")
    if sep:
        return AppTopic(key, "user", user_id) if kind == USER and user_id else None
    return AppTopic(key, "channel", name) if name else None


def channel_allowed(channel: str, allowed: tuple[str, ...] | None) -> bool:
    """Whether an end-user token's `channels` claim lets it join `channel`.

    Without the claim every public channel is allowed; `private-` and `presence-` channels need
    to be listed (by name, or by a prefix ending in `*`).
    """
    if allowed is None:
        return not channel.startswith((PRIVATE_PREFIX, PRESENCE_PREFIX))
    for pattern in allowed:
        if pattern.endswith("*"):
            if channel.startswith(pattern[:-1]):
                return True
        elif pattern == channel:
            return True
    return False


def is_presence(channel: str) -> bool:
    return channel.startswith(PRESENCE_PREFIX)
