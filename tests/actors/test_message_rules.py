"""The one rule for a new message (`parley.actors.message_rules`), as every path applies it."""

from __future__ import annotations

import pytest

from parley.actors.message_rules import (
    CLIENT_ID_MAX_CHARS,
    NewMessageFields,
    check_text,
    validate_new_message,
)


def test_a_good_message_passes_with_or_without_a_client_id() -> None:
    assert validate_new_message("hi", None, max_chars=10) == NewMessageFields("hi", None)
    key = "k" * CLIENT_ID_MAX_CHARS
    assert validate_new_message("hi", key, max_chars=10) == NewMessageFields("hi", key)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (None, "must be a string"),
        (7, "must be a string"),
        ("   \n\t", "must not be blank"),
        ("x" * 11, "must be at most 10 characters"),
        ("nul \x00 here", "must not contain NUL characters"),
        ("pair \ud800", "must not contain lone surrogates"),
    ],
)
def test_a_body_that_breaks_a_rule_is_named_with_the_reason(body: object, expected: str) -> None:
    assert validate_new_message(body, None, max_chars=10) == {"body": [expected]}


@pytest.mark.parametrize(
    "client_id", ["", "c" * (CLIENT_ID_MAX_CHARS + 1), 7, ["a"], "nul\x00", "\udfff"]
)
def test_a_bad_client_id_is_refused(client_id: object) -> None:
    errors = validate_new_message("fine", client_id, max_chars=10)
    assert isinstance(errors, dict) and list(errors) == ["client_id"]


def test_every_broken_field_is_reported_under_the_name_the_client_used() -> None:
    errors = validate_new_message("", "c" * 80, max_chars=10, body_field="message")
    assert errors == {
        "message": ["must not be blank"],
        "client_id": [f"must be a string of 1 to {CLIENT_ID_MAX_CHARS} characters"],
    }


def test_titles_share_the_text_rule() -> None:
    assert check_text("a title", 200) == []
    assert check_text("t\x00", 200) == ["must not contain NUL characters"]
