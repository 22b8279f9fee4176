"""The permission table: each rule's meaning for owners, staff and everybody else."""

from __future__ import annotations

from parley.marketplace.permissions import RULES, Action, Level, allowed, level_of


def test_ownership_rules() -> None:
    assert allowed(Action.EDIT, Level.REGISTERED, is_owner=True)
    assert not allowed(Action.EDIT, Level.ADMIN, is_owner=False)  # staff moderate, not edit
    assert allowed(Action.DELETE, Level.MODERATOR, is_owner=False)
    assert not allowed(Action.DELETE, Level.REGISTERED, is_owner=False)
    assert not allowed(Action.CONTACT, Level.ADMIN, is_owner=True)
    assert allowed(Action.SEE_HIDDEN, Level.REGISTERED, is_owner=True)
    assert not allowed(Action.SEE_HIDDEN, Level.ANONYMOUS, is_owner=False)
    assert not allowed(Action.HIDE, Level.REGISTERED, is_owner=True)
    assert allowed(Action.READ_AUDIT, Level.ADMIN)


def test_every_action_has_a_rule_and_roles_map_to_levels() -> None:
    assert set(RULES) == set(Action)
    assert [level_of(r) for r in (None, "registered", "moderator", "admin")] == list(Level)
