"""Field rules: the error shape's `fields` form, never an exception, for any input."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from parley.accounts.validation import (
    BODY_FIELD,
    check_bio,
    check_email,
    check_name,
    check_password,
    check_theme,
    check_username,
    merge_errors,
    normalize_email,
    normalize_username,
    parse_string_fields,
    validate_profile,
    validate_registration,
)
from parley.config import AuthSettings

AUTH = AuthSettings()


# -- e-mail --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email",
    [
        "ann@example.com",
        "Ann.Lee+tag@Example.COM",
        "  padded@example.org  ",
        "o'brien@example.ie",
        "x@sub.domain.example",
        "user@xn--bcher-kva.example",
        "josé@bücher.de",
        "用户@例子.广告",
        "a@b.co",
        "first.last@exa-mple.com",
    ],
)
def test_valid_emails(email: str) -> None:
    assert check_email(email) == []


@pytest.mark.parametrize(
    "email",
    [
        "plain",
        "@example.com",
        "ann@",
        "ann@@example.com",
        "ann@exa@mple.com",
        "ann@localhost",
        "ann@example",
        "ann@example.c",
        "ann@example.123",
        "ann@-example.com",
        "ann@example-.com",
        "ann@exa_mple.com",
        "ann@example..com",
        ".ann@example.com",
        "ann.@example.com",
        "an..n@example.com",
        "an n@example.com",
        "ann\n@example.com",
        "ann\x00@example.com",
        '"quoted"@example.com',
        "ann@[127.0.0.1]",
        "\ud800@example.com",
        "a" * 65 + "@example.com",
        "ann@" + "a" * 64 + ".com",
    ],
)
def test_invalid_emails(email: str) -> None:
    assert check_email(email) == ["is not a valid e-mail address"]


def test_email_length_limit() -> None:
    local = "a" * 64
    domain = ".".join(["b" * 61] * 3) + ".com"
    ok = f"{local}@{domain}"
    assert len(ok) == 254
    assert check_email(ok) == []
    too_long = f"{local}@c.{domain}"
    assert check_email(too_long) == ["must be at most 254 characters"]
    assert check_email("") == ["is required"]
    assert check_email("   ") == ["is required"]


def test_email_normalisation() -> None:
    assert normalize_email("  Ann.Lee@Example.COM ") == "ann.lee@example.com"
    assert normalize_email("ÉLODIE@Example.fr") == "élodie@example.fr"


# -- username ------------------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["ann", "Ann_Lee", "a.b-c_d", "007", "x" * 32, "9lives"])
def test_valid_usernames(username: str) -> None:
    assert check_username(username) == []


@pytest.mark.parametrize(
    ("username", "expected"),
    [
        ("", ["is required"]),
        ("ab", ["must be at least 3 characters"]),
        ("x" * 33, ["must be at most 32 characters"]),
        ("_ann", ["pattern"]),
        (".ann", ["pattern"]),
        ("-ann", ["pattern"]),
        ("ann lee", ["pattern"]),
        ("ann@lee", ["pattern"]),
        ("\u0430nn", ["pattern"]),  # Cyrillic a
        ("josé", ["pattern"]),
        ("ann\n", ["pattern"]),
        ("a!", ["must be at least 3 characters", "pattern"]),
    ],
)
def test_invalid_usernames(username: str, expected: list[str]) -> None:
    errors = check_username(username)
    assert len(errors) == len(expected)
    for error, want in zip(errors, expected, strict=True):
        assert error.startswith("may contain only") if want == "pattern" else error == want


def test_username_normalisation() -> None:
    assert normalize_username("Ann_Lee") == "ann_lee"


# -- password ------------------------------------------------------------------------------------


def test_password_length_bounds_from_config() -> None:
    assert check_password("x" * 10, AUTH) == []
    assert check_password("x" * 256, AUTH) == []
    assert check_password("x" * 9, AUTH) == ["must be at least 10 characters"]
    assert check_password("x" * 257, AUTH) == ["must be at most 256 characters"]
    assert check_password("", AUTH) == ["is required"]
    strict = dataclasses.replace(AUTH, password_min_length=12, password_max_length=64)
    assert check_password("x" * 11, strict) == ["must be at least 12 characters"]
    assert check_password("x" * 65, strict) == ["must be at most 64 characters"]


def test_password_counts_characters_not_bytes() -> None:
    # Ten emoji are 40 UTF-8 bytes but ten characters: long enough, and not too long.
    assert check_password("🔑" * 10, AUTH) == []
    assert check_password("🔑" * 9, AUTH) == ["must be at least 10 characters"]
    assert check_password("é" * 256, AUTH) == []
    assert check_password("пароль-пароль", AUTH) == []
    assert check_password("          ", AUTH) == []  # spaces are characters too


def test_password_with_lone_surrogate() -> None:
    assert check_password("\ud800" + "x" * 10, AUTH) == ["must be valid Unicode text"]


# -- free text -----------------------------------------------------------------------------------


def test_names() -> None:
    assert check_name("") == []
    assert check_name("Zoë O'Brien-Łukasiewicz") == []
    assert check_name("山田 太郎") == []
    assert check_name("x" * 100) == []
    assert check_name("x" * 101) == ["must be at most 100 characters"]
    assert check_name("two\nlines") == ["must be a single line of text"]
    assert check_name("nul\x00") == ["must be a single line of text"]
    assert check_name("c1\x85control") == ["must be a single line of text"]
    assert check_name("\udc00") == ["must be a single line of text"]


def test_bio() -> None:
    assert check_bio("line one\nline two\r\n\tindented") == []
    assert check_bio("ü" * 1000) == []
    assert check_bio("ü" * 1001) == ["must be at most 1000 characters"]
    assert check_bio("bell\x07") == ["must not contain control characters"]


def test_theme() -> None:
    for theme in ("light", "dark", "system"):
        assert check_theme(theme) == []
    assert check_theme("Dark") == ["must be one of: light, dark, system"]
    assert check_theme("") == ["must be one of: light, dark, system"]


# -- JSON bodies ---------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [None, [], "text", 3, True])
def test_body_must_be_an_object(body: object) -> None:
    parsed = parse_string_fields(body, required=("a",))
    assert parsed.not_an_object
    assert parsed.errors == {BODY_FIELD: ["must be a JSON object"]}


def test_string_fields() -> None:
    body: dict[str, Any] = {"a": "x", "b": 3, "c": None, "d": ["y"], "e": "z", "extra": {}}
    parsed = parse_string_fields(
        body, required=("a", "b", "missing"), optional=("c", "d", "e", "f")
    )
    assert not parsed.ok
    assert not parsed.not_an_object
    assert parsed.errors == {
        "b": ["must be a string"],
        "missing": ["is required"],
        "d": ["must be a string"],
    }
    assert parsed.values == {"a": "x", "c": None, "e": "z"}
    assert "f" not in parsed.values


def test_required_null_is_missing() -> None:
    assert parse_string_fields({"a": None}, required=("a",)).errors == {"a": ["is required"]}


def test_parsed_body_accessors() -> None:
    parsed = parse_string_fields({"a": "x"}, required=("a",), optional=("b",))
    assert parsed.ok
    assert parsed.require("a") == "x"
    assert parsed.get("b") is None


def test_merge_errors() -> None:
    merged = merge_errors({"a": ["one"]}, {"a": ["two"], "b": ["three"]}, {"c": []})
    assert merged == {"a": ["one", "two"], "b": ["three"]}


# -- composite validators ------------------------------------------------------------------------


def test_valid_registration() -> None:
    parsed = validate_registration(
        {
            "email": " Ann@Example.com ",
            "password": "correct horse battery",
            "username": "ann",
            "name": "Ann",
            "job": None,
            "unknown": 1,
        },
        AUTH,
    )
    assert parsed.ok, parsed.errors
    assert parsed.values["email"] == "ann@example.com"
    assert parsed.values["job"] is None
    assert "subname" not in parsed.values


def test_invalid_registration_reports_every_field() -> None:
    parsed = validate_registration(
        {
            "email": "nope",
            "password": "short",
            "username": "-x",
            "name": "n" * 101,
            "subname": 5,
            "job": "two\nlines",
        },
        AUTH,
    )
    assert set(parsed.errors) == {"email", "password", "username", "name", "subname", "job"}
    assert parsed.errors["subname"] == ["must be a string"]
    assert parsed.errors["password"] == ["must be at least 10 characters"]


def test_registration_missing_and_mistyped() -> None:
    parsed = validate_registration({"email": 1}, AUTH)
    assert parsed.errors == {
        "email": ["must be a string"],
        "password": ["is required"],
        "username": ["is required"],
    }
    assert validate_registration("not an object", AUTH).not_an_object


def test_profile() -> None:
    ok = validate_profile({"display_name": "Zoë", "bio": "hi\nthere", "theme": "dark"})
    assert ok.ok
    cleared = validate_profile({"display_name": None, "bio": None})
    assert cleared.ok
    assert cleared.values == {"display_name": None, "bio": None}
    bad = validate_profile({"display_name": "x" * 101, "bio": "b" * 1001, "theme": "blue"})
    assert set(bad.errors) == {"display_name", "bio", "theme"}
    assert validate_profile({"theme": None}).errors == {
        "theme": ["must be one of: light, dark, system"]
    }
    assert validate_profile({"theme": 1}).errors == {"theme": ["must be a string"]}
    assert validate_profile([]).not_an_object
