"""Account field rules as pure validators returning DESIGN §4's `fields` form.

Every validator returns a list of messages (empty when the value is fine); the `validate_*`
helpers collect them into `FieldErrors` (`{"email": ["is not a valid e-mail address"]}`), which the
API layer puts under `error.fields` of a 422. Nothing here raises for bad input.

Sizes are counted in Unicode code points (Python `len`), not bytes, as users see them. Strings
holding lone surrogates (JSON can carry `"\\ud800"`) or control characters in one-line fields are
refused, so nothing invalid reaches PostgreSQL (which refuses NUL and invalid UTF-8 with a 500).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from parley.config import AuthSettings

__all__ = [
    "BIO_MAX_CHARS",
    "BODY_FIELD",
    "EMAIL_MAX_CHARS",
    "NAME_MAX_CHARS",
    "THEMES",
    "USERNAME_MAX_CHARS",
    "USERNAME_MIN_CHARS",
    "FieldErrors",
    "ParsedBody",
    "add_error",
    "check_bio",
    "check_email",
    "check_name",
    "check_password",
    "check_theme",
    "check_username",
    "merge_errors",
    "normalize_email",
    "normalize_username",
    "parse_string_fields",
    "validate_profile",
    "validate_registration",
]

FieldErrors = dict[str, list[str]]
"""Field name -> messages, the `fields` member of the error shape."""

EMAIL_MAX_CHARS: Final = 254
"""RFC 5321's limit on a forward path, less the angle brackets."""
EMAIL_LOCAL_MAX_CHARS: Final = 64
USERNAME_MIN_CHARS: Final = 3
USERNAME_MAX_CHARS: Final = 32
NAME_MAX_CHARS: Final = 100
"""For name, subname, job and display_name."""
BIO_MAX_CHARS: Final = 1000
THEMES: Final = ("light", "dark", "system")

BODY_FIELD: Final = "_body"
"""Key used in `FieldErrors` when the request body itself is not a JSON object (answer 400)."""

# Usernames are identifiers people type and mention, so they are plain ASCII: letters, digits,
# `_`, `.` and `-`, starting with a letter or digit (so `-x` and `.x` cannot pass for options or
# hidden names). ASCII also rules out look-alikes such as Cyrillic "\u0430" for Latin "a"; any
# script is welcome in name, subname and display_name instead.
_USERNAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*\Z")

# RFC 5322 `atext` for the local part (dot-atom form, no quoted strings), plus any non-ASCII letter
# or mark (RFC 6531 internationalised addresses).
_LOCAL_ATEXT: Final = frozenset("!#$%&'*+-/=?^_`{|}~")


def _has_surrogate(value: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in value)


def _has_control(value: str, *, allow_newlines: bool = False) -> bool:
    allowed = "\n\r\t" if allow_newlines else ""
    return any((ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0) and ch not in allowed for ch in value)


def _max_len(value: str, limit: int) -> list[str]:
    return [f"must be at most {limit} characters"] if len(value) > limit else []


def normalize_email(email: str) -> str:
    """The form stored and compared for uniqueness: surrounding whitespace removed, lower case.

    Lower-casing the local part is not what RFC 5321 says, but no real provider distinguishes
    `Ann@x.org` from `ann@x.org`, and treating them as two accounts invites takeover confusion.
    """
    return email.strip().lower()


def normalize_username(username: str) -> str:
    """The form compared for uniqueness: usernames are unique case-insensitively."""
    return username.lower()


def _valid_local_part(local: str) -> bool:
    if not local or len(local) > EMAIL_LOCAL_MAX_CHARS:
        return False
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    return all(
        ("a" <= ch.lower() <= "z")
        or ch.isdigit()
        or ch == "."
        or ch in _LOCAL_ATEXT
        or (ord(ch) > 0x7F and ch.isprintable() and not ch.isspace())
        for ch in local
    )


def _valid_domain(domain: str) -> bool:
    if not domain or len(domain) > 253:
        return False
    labels = domain.split(".")
    if len(labels) < 2:  # a public address always has a dot: "root@localhost" is not one
        return False
    for label in labels:
        if not 1 <= len(label) <= 63 or label.startswith("-") or label.endswith("-"):
            return False
        if not all(ch.isalnum() or ch == "-" for ch in label):
            return False
    tld = labels[-1]
    return not tld.isdigit() and len(tld) >= 2


def check_email(email: str) -> list[str]:
    """Format and size of an e-mail address (checked on `normalize_email(email)`).

    A pragmatic RFC 5322/6531 subset: `local@domain`, dot-atom local part (no quoted strings, no
    comments), a domain of at least two labels (letters of any script, digits, inner hyphens) whose
    last label is not numeric. Whether the mailbox exists is what the confirmation e-mail is for.
    """
    value = normalize_email(email)
    if not value:
        return ["is required"]
    if len(value) > EMAIL_MAX_CHARS:
        return [f"must be at most {EMAIL_MAX_CHARS} characters"]
    if _has_surrogate(value) or value.count("@") != 1:
        return ["is not a valid e-mail address"]
    local, _, domain = value.partition("@")
    if not (_valid_local_part(local) and _valid_domain(domain)):
        return ["is not a valid e-mail address"]
    return []


def check_username(username: str) -> list[str]:
    """3 to 32 ASCII letters, digits, `_`, `.` or `-`, starting with a letter or digit."""
    if not username:
        return ["is required"]
    errors: list[str] = []
    if len(username) < USERNAME_MIN_CHARS:
        errors.append(f"must be at least {USERNAME_MIN_CHARS} characters")
    errors += _max_len(username, USERNAME_MAX_CHARS)
    if not _USERNAME_RE.match(username):
        errors.append(
            "may contain only letters, digits, '_', '.' and '-', "
            "and must start with a letter or digit"
        )
    return errors


def check_password(password: str, settings: AuthSettings) -> list[str]:
    """Length between `auth.password_min_length` and `auth.password_max_length` code points.

    Any Unicode is accepted (spaces and emoji included, as NIST SP 800-63B asks): no composition
    rules, which only push people to predictable patterns. Only lone surrogates are refused, as they
    are not text. The upper bound keeps hashing cost and request size bounded.
    """
    if not password:
        return ["is required"]
    errors: list[str] = []
    if len(password) < settings.password_min_length:
        errors.append(f"must be at least {settings.password_min_length} characters")
    errors += _max_len(password, settings.password_max_length)
    if _has_surrogate(password):
        errors.append("must be valid Unicode text")
    return errors


def check_name(value: str, limit: int = NAME_MAX_CHARS) -> list[str]:
    """A one-line free-text field (name, subname, job, display_name): any script, no control
    characters, at most `limit` characters. Empty is allowed (the field is optional)."""
    errors = _max_len(value, limit)
    if _has_surrogate(value) or _has_control(value):
        errors.append("must be a single line of text")
    return errors


def check_bio(value: str) -> list[str]:
    """Multi-line free text of at most 1000 characters; newlines and tabs allowed."""
    errors = _max_len(value, BIO_MAX_CHARS)
    if _has_surrogate(value) or _has_control(value, allow_newlines=True):
        errors.append("must not contain control characters")
    return errors


def check_theme(value: str) -> list[str]:
    """One of `light`, `dark`, `system`."""
    return [] if value in THEMES else [f"must be one of: {', '.join(THEMES)}"]


def add_error(errors: FieldErrors, name: str, messages: Iterable[str]) -> None:
    """Append `messages` (if any) under `name`."""
    messages = list(messages)
    if messages:
        errors.setdefault(name, []).extend(messages)


def merge_errors(*parts: Mapping[str, list[str]]) -> FieldErrors:
    """Combine several `FieldErrors` into a new one."""
    merged: FieldErrors = {}
    for part in parts:
        for name, messages in part.items():
            add_error(merged, name, messages)
    return merged


@dataclass(frozen=True, slots=True)
class ParsedBody:
    """String fields read from a JSON body: `values` holds each present field (`None` for an
    explicit `null` in an optional field, which PATCH handlers may read as "clear"); `errors` is
    empty when every field had the right type."""

    values: dict[str, str | None] = field(default_factory=dict)
    errors: FieldErrors = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def not_an_object(self) -> bool:
        """The body was not a JSON object at all: a 400, not a 422."""
        return BODY_FIELD in self.errors

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def require(self, name: str) -> str:
        """The value of a required field; only call when `ok`."""
        value = self.values[name]
        assert value is not None, f"{name} was validated as required"
        return value


def parse_string_fields(
    body: object,
    *,
    required: Iterable[str] = (),
    optional: Iterable[str] = (),
) -> ParsedBody:
    """Read string fields from a decoded JSON body without raising.

    A missing or `null` required field gets "is required"; a present field of another type gets
    "must be a string". Unknown fields are ignored, so clients may send more than we read (forward
    compatibility). A body that is not an object gets `{BODY_FIELD: ["must be a JSON object"]}`.
    """
    if not isinstance(body, Mapping):
        return ParsedBody(errors={BODY_FIELD: ["must be a JSON object"]})
    values: dict[str, str | None] = {}
    errors: FieldErrors = {}
    for name in required:
        value = body.get(name)
        if value is None:
            errors[name] = ["is required"]
        elif not isinstance(value, str):
            errors[name] = ["must be a string"]
        else:
            values[name] = value
    for name in optional:
        if name not in body:
            continue
        value = body[name]
        if value is not None and not isinstance(value, str):
            errors[name] = ["must be a string"]
        else:
            values[name] = value
    return ParsedBody(values, errors)


def validate_registration(body: object, settings: AuthSettings) -> ParsedBody:
    """Parse and validate POST /api/auth/register {email, password, username, name?, subname?,
    job?}. On success `values["email"]` is normalised (see `normalize_email`); uniqueness is the
    store's job."""
    parsed = parse_string_fields(
        body,
        required=("email", "password", "username"),
        optional=("name", "subname", "job"),
    )
    if parsed.not_an_object:
        return parsed
    errors = dict(parsed.errors)
    values = dict(parsed.values)
    if "email" in values and "email" not in errors:
        email = values["email"] or ""
        add_error(errors, "email", check_email(email))
        values["email"] = normalize_email(email)
    if "password" in values:
        add_error(errors, "password", check_password(values["password"] or "", settings))
    if "username" in values:
        add_error(errors, "username", check_username(values["username"] or ""))
    for name in ("name", "subname", "job"):
        value = values.get(name)
        if value is not None:
            add_error(errors, name, check_name(value))
    return ParsedBody(values, errors)


def validate_profile(body: object) -> ParsedBody:
    """Parse and validate PATCH /api/me: display_name?, bio?, theme?, name?, subname?, job?.

    `null` clears display_name, bio, name, subname and job; theme cannot be null.
    """
    parsed = parse_string_fields(
        body, optional=("display_name", "bio", "theme", "name", "subname", "job")
    )
    if parsed.not_an_object:
        return parsed
    errors = dict(parsed.errors)
    values = parsed.values
    for name in ("display_name", "name", "subname", "job"):
        value = values.get(name)
        if value is not None:
            add_error(errors, name, check_name(value))
    bio = values.get("bio")
    if bio is not None:
        add_error(errors, "bio", check_bio(bio))
    if "theme" in values and "theme" not in errors:
        add_error(errors, "theme", check_theme(values["theme"] or ""))
    return ParsedBody(values, errors)
