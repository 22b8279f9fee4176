"""Opaque tokens (refresh, password reset, e-mail confirmation, API tokens): minting and hashing.

They are 256-bit random strings; only their SHA-256 is stored. Single use (reset, confirm),
rotation on every refresh and revoking a whole refresh family when a used refresh token comes back
are enforced where they are stored (`parley.store.tokens`, driven by `parley.api`): this module only
mints and hashes them. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Final, NamedTuple

OPAQUE_TOKEN_BYTES: Final = 32


class OpaqueToken(NamedTuple):
    """A freshly minted opaque token: show `plaintext` once, store `digest` and `expires_at`."""

    plaintext: str
    digest: bytes
    expires_at: datetime


def new_opaque_token(prefix: str = "") -> tuple[str, bytes]:
    """Return a new 256-bit random token (URL-safe text, optional readable prefix) and its SHA-256.

    A prefix such as `"plt_"` makes leaked API tokens easy to spot for secret scanners.
    """
    plaintext = prefix + secrets.token_urlsafe(OPAQUE_TOKEN_BYTES)
    return plaintext, hash_opaque(plaintext)


def hash_opaque(plaintext: str) -> bytes:
    """The stored form of an opaque token: its SHA-256 (32 bytes).

    A fast unsalted hash is right here, unlike for passwords: the tokens carry 256 bits of
    randomness, so neither brute force nor precomputed tables are possible, and a leaked table of
    digests cannot be turned back into usable tokens. Lookups are by digest (an index), so
    comparing the secret in Python never happens and there is no timing side channel to guard.
    Argon2 would only cost CPU on every refresh and API call.
    """
    return hashlib.sha256(plaintext.encode("utf-8", "surrogatepass")).digest()
