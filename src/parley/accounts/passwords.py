"""Password hashing with argon2id, off the event loop and bounded in concurrency.

Each hash takes tens of milliseconds of CPU and `auth.argon2_memory_kib` of memory (19 MiB by
default, OWASP's minimum for argon2id with t=2, p=1), so every hash and verify runs in a worker
thread through `trio.to_thread.run_sync` (argon2-cffi releases the GIL) and at most
`auth.argon2_max_concurrency` run at once: a login storm queues instead of swamping memory or
starving the event loop.

Passwords are NFKC-normalised before hashing (NIST SP 800-63B §5.1.1.2), so the same password typed
on keyboards that compose accents differently still verifies. Lone surrogates (which JSON can carry)
are encoded with `surrogatepass`, so no input can raise here.
"""

from __future__ import annotations

import contextlib
import secrets
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import argon2
import trio
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

if TYPE_CHECKING:
    from parley.config import AuthSettings

__all__ = [
    "GENERATED_PASSWORD_ALPHABET",
    "PasswordHasher",
    "VerifyResult",
    "generate_password",
]

GENERATED_PASSWORD_ALPHABET: Final = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
"""Letters and digits without the look-alikes 0/O, 1/l/I: readable in an e-mail, ~5.8 bits each."""

_DUMMY_PASSWORD: Final = "parley-dummy-password-never-matches"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """`ok`: the password matches. `needs_rehash`: it matches but the stored hash uses other
    parameters than the configured ones; the caller should store `await hasher.hash(password)`."""

    ok: bool
    needs_rehash: bool = False


def generate_password(length: int = 20) -> str:
    """A random password for accounts an admin creates (e-mailed to the user, CompanyApi flow).

    20 characters of a 57-symbol alphabet is about 116 bits: far past guessing. It always holds a
    lower-case letter, an upper-case letter and a digit, for sites whose rules demand one of each.
    """
    if length < 16:
        raise ValueError("generated passwords are at least 16 characters")
    while True:
        password = "".join(secrets.choice(GENERATED_PASSWORD_ALPHABET) for _ in range(length))
        if (
            any(c.islower() for c in password)
            and any(c.isupper() for c in password)
            and any(c.isdigit() for c in password)
        ):
            return password


def _encode(password: str) -> bytes:
    return unicodedata.normalize("NFKC", password).encode("utf-8", "surrogatepass")


class PasswordHasher:
    """Hashes and verifies passwords with argon2id and the parameters in `settings.auth`.

    Build one per process and share it: its `CapacityLimiter` is what bounds concurrent hashes.
    Call `warm_up()` at start-up so the first unknown-user login costs no more than the others.
    """

    def __init__(self, settings: AuthSettings) -> None:
        if settings.argon2_max_concurrency < 1:
            raise ValueError("auth.argon2_max_concurrency must be >= 1")
        self._hasher = argon2.PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            type=argon2.Type.ID,
        )
        self._limiter = trio.CapacityLimiter(settings.argon2_max_concurrency)
        self._dummy_hash: str | None = None
        self._dummy_lock = trio.Lock()

    @property
    def limiter(self) -> trio.CapacityLimiter:
        """The limiter hashes queue on (exposed for metrics: `borrowed_tokens`, waiting tasks)."""
        return self._limiter

    async def hash(self, password: str) -> str:
        """The encoded argon2id hash (`$argon2id$v=19$m=...`) of `password`, with a fresh salt."""
        return await trio.to_thread.run_sync(self._hash_sync, password, limiter=self._limiter)

    async def verify(self, hash: str, password: str) -> VerifyResult:
        """Check `password` against a stored `hash`; never raises for a wrong password.

        A malformed stored hash (e.g. a disabled account's marker) verifies as wrong, after
        burning the same time as a real verification.
        """
        dummy = await self._dummy()
        return await trio.to_thread.run_sync(
            self._verify_sync, hash, password, dummy, limiter=self._limiter
        )

    async def verify_dummy(self, password: str) -> None:
        """Spend the time of a failed verification, for logins naming no existing account.

        The dummy hash is computed once with the configured parameters, so "no such user" costs
        the same as "wrong password" and response times do not reveal which e-mails exist.
        """
        dummy = await self._dummy()
        await trio.to_thread.run_sync(
            self._verify_sync, dummy, password, dummy, limiter=self._limiter
        )

    def needs_rehash(self, hash: str) -> bool:
        """Whether `hash` was made with other parameters than the configured ones (cheap, no
        hashing). A malformed hash also needs replacing."""
        try:
            return self._hasher.check_needs_rehash(hash)
        except (InvalidHashError, ValueError):
            return True

    async def warm_up(self) -> None:
        """Compute the dummy hash now rather than on the first unknown-user login."""
        await self._dummy()

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            async with self._dummy_lock:
                if self._dummy_hash is None:
                    self._dummy_hash = await self.hash(_DUMMY_PASSWORD)
        return self._dummy_hash

    def _hash_sync(self, password: str) -> str:
        return self._hasher.hash(_encode(password))

    def _verify_sync(self, hash: str, password: str, dummy: str) -> VerifyResult:
        encoded = _encode(password)
        try:
            self._hasher.verify(hash, encoded)
        except VerifyMismatchError:
            return VerifyResult(ok=False)
        except (InvalidHashError, VerificationError):
            # An unparsable stored hash fails fast; spend a real check's time anyway.
            with contextlib.suppress(VerificationError):
                self._hasher.verify(dummy, encoded)
            return VerifyResult(ok=False)
        return VerifyResult(ok=True, needs_rehash=self.needs_rehash(hash))
