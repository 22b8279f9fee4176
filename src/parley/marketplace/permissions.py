"""Who may do what in the marketplace: the permission matrix of DESIGN §4.1 as one table.

Each `Action` has a `Rule`: the least role (its `level`, which the REST endpoint declares with
`endpoint(auth=...)`, so an anonymous or too-low caller is refused before the handler runs) and how
ownership counts (`owner`): anybody at that level, only the owner of the target (the seller of a
listing, the author of a reply), optionally also staff (moderators and admins), or anybody but the
owner. Handlers ask `allowed(action, level, is_owner)` and refuse with the rule's `refusal`; no
other check decides who may act. docs/marketplace.md shows the same table, and
tests/api/test_marketplace_roles.py checks every route against it for every kind of caller.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Literal


class Level(enum.IntEnum):
    """A caller's role; each level includes those below it (the values of `api.endpoint.Auth`)."""

    ANONYMOUS = 0
    REGISTERED = 1
    MODERATOR = 2
    ADMIN = 3


LEVELS: Final = {"registered": Level.REGISTERED, "moderator": Level.MODERATOR, "admin": Level.ADMIN}


def level_of(role: str | None) -> Level:
    """The level of a user's role (None: not signed in)."""
    return Level.ANONYMOUS if role is None else LEVELS.get(role, Level.REGISTERED)


class Action(enum.Enum):
    SEARCH = "search listings"
    READ = "read a listing"
    SEE_HIDDEN = "see a hidden listing (page, replies, search with status=hidden, socket)"
    CREATE = "create a listing"
    EDIT = "edit a listing or mark it sold"
    DELETE = "delete a listing"
    HIDE = "hide or unhide a listing"
    READ_REPLIES = "read a listing's replies"
    REPLY = "reply to a listing"
    SEE_HIDDEN_REPLY = "see a hidden reply"
    DELETE_REPLY = "delete a reply"
    HIDE_REPLY = "hide or unhide a reply"
    CONTACT = "contact the seller"
    WATCH = "join listing:{id}"
    READ_AUDIT = "read the audit log"


Ownership = Literal["any", "owner", "owner_or_staff", "not_owner"]


@dataclass(frozen=True)
class Rule:
    level: Level
    owner: Ownership = "any"
    refusal: str = "not allowed"


RULES: Final[dict[Action, Rule]] = {
    Action.SEARCH: Rule(Level.ANONYMOUS),
    Action.READ: Rule(Level.ANONYMOUS),
    Action.SEE_HIDDEN: Rule(Level.ANONYMOUS, "owner_or_staff", "the listing is hidden"),
    Action.CREATE: Rule(Level.REGISTERED),
    Action.EDIT: Rule(Level.REGISTERED, "owner", "only the seller edits a listing"),
    Action.DELETE: Rule(Level.REGISTERED, "owner_or_staff", "only the seller or a moderator"),
    Action.HIDE: Rule(Level.MODERATOR),
    Action.READ_REPLIES: Rule(Level.ANONYMOUS),
    Action.REPLY: Rule(Level.REGISTERED),
    Action.SEE_HIDDEN_REPLY: Rule(Level.ANONYMOUS, "owner_or_staff", "the reply is hidden"),
    Action.DELETE_REPLY: Rule(Level.REGISTERED, "owner_or_staff", "only the author or a moderator"),
    Action.HIDE_REPLY: Rule(Level.MODERATOR),
    Action.CONTACT: Rule(Level.REGISTERED, "not_owner", "sellers do not contact themselves"),
    Action.WATCH: Rule(Level.REGISTERED),
    Action.READ_AUDIT: Rule(Level.MODERATOR),
}


def allowed(action: Action, level: Level, *, is_owner: bool = False) -> bool:
    """Whether a caller at `level` (the owner of the target or not) may do `action`."""
    rule = RULES[action]
    if level < rule.level:
        return False
    if rule.owner == "owner":
        return is_owner
    if rule.owner == "owner_or_staff":
        return is_owner or level >= Level.MODERATOR
    if rule.owner == "not_owner":
        return not is_owner
    return True
