"""Organizations (DESIGN §4.2): names, slugs, and who may do what in one.

| who | may |
| --- | --- |
| a member (enrolled) | read it, its members and its applications (no secrets); trigger |
| an organization admin | also change and delete it, manage members and applications, see secrets |
| a site admin (ExPusherLite's root) | everything an organization admin may, in every organization |
| anybody else | nothing: the organization answers 404, as if it did not exist |
"""

from __future__ import annotations

import enum
import re
import unicodedata
from typing import Any, Final

NAME_MAX_CHARS: Final = 120
SLUG_MAX_CHARS: Final = 64
_SLUG: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")


class Standing(enum.IntEnum):
    """A caller's standing in one organization; each level includes the ones below."""

    NONE = 0
    MEMBER = 1
    ADMIN = 2


def standing(enrolled_as_admin: bool | None, *, site_admin: bool) -> Standing:
    """From the caller's enrollment (None: none; else its admin flag) and site role."""
    if site_admin or enrolled_as_admin:
        return Standing.ADMIN
    return Standing.NONE if enrolled_as_admin is None else Standing.MEMBER


def slugify(name: str) -> str:
    """`Acme, Inc.` -> `acme-inc` (ASCII letters and digits, words joined by `-`)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:SLUG_MAX_CHARS].strip("-")


def check_name(value: Any) -> list[str]:
    if not isinstance(value, str) or not value.strip():
        return ["must be a non-blank string"]
    if len(value.strip()) > NAME_MAX_CHARS:
        return [f"at most {NAME_MAX_CHARS} characters"]
    return unstorable(value)


def unstorable(value: str) -> list[str]:
    """A NUL, which PostgreSQL cannot store in a text column: an organization or application name
    with one was a 500 (drill F1), so it is refused as input. (Lone surrogates never get here: the
    JSON parser refuses them with 400.)"""
    return ["must not contain NUL characters"] if "\x00" in value else []


def check_slug(value: Any) -> list[str]:
    if not isinstance(value, str) or _SLUG.fullmatch(value) is None:
        return [
            f"1 to {SLUG_MAX_CHARS} lower-case letters, digits and inner hyphens (e.g. acme-inc)"
        ]
    return []
