"""PasswordHasher: argon2id with the configured parameters, off the event loop, bounded."""

from __future__ import annotations

import dataclasses
import threading
import unicodedata
from collections.abc import Awaitable, Callable
from typing import Literal

import argon2
import pytest
import trio
from argon2.exceptions import VerifyMismatchError

from parley.accounts.passwords import (
    GENERATED_PASSWORD_ALPHABET,
    PasswordHasher,
    VerifyResult,
    generate_password,
)
from parley.accounts.validation import check_password
from parley.config import AuthSettings

# Cheap parameters for the functional tests; the counting and storm tests use the defaults.
FAST = AuthSettings(argon2_memory_kib=1024, argon2_time_cost=1, argon2_max_concurrency=2)
PASSWORD = "correct horse battery staple"


@pytest.fixture
def hasher() -> PasswordHasher:
    return PasswordHasher(FAST)


async def test_hash_and_verify(hasher: PasswordHasher) -> None:
    encoded = await hasher.hash(PASSWORD)
    assert encoded.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert await hasher.verify(encoded, PASSWORD) == VerifyResult(ok=True, needs_rehash=False)


async def test_each_hash_is_salted(hasher: PasswordHasher) -> None:
    assert await hasher.hash(PASSWORD) != await hasher.hash(PASSWORD)


async def test_wrong_password(hasher: PasswordHasher) -> None:
    encoded = await hasher.hash(PASSWORD)
    assert await hasher.verify(encoded, PASSWORD + "!") == VerifyResult(ok=False)
    assert await hasher.verify(encoded, "") == VerifyResult(ok=False)
    assert await hasher.verify(encoded, PASSWORD.upper()) == VerifyResult(ok=False)


async def test_default_parameters_are_at_least_owasp() -> None:
    hasher = PasswordHasher(AuthSettings())
    encoded = await hasher.hash(PASSWORD)
    params = argon2.extract_parameters(encoded)
    assert params.type is argon2.Type.ID
    assert params.memory_cost >= 19 * 1024
    assert params.time_cost >= 2
    assert params.parallelism == 1


async def test_hash_with_older_parameters_needs_rehash(hasher: PasswordHasher) -> None:
    old = argon2.PasswordHasher(time_cost=1, memory_cost=512, parallelism=1)
    legacy = old.hash(PASSWORD)
    assert await hasher.verify(legacy, PASSWORD) == VerifyResult(ok=True, needs_rehash=True)
    assert hasher.needs_rehash(legacy)
    # A wrong password against an old hash is just wrong: no rehash without the cleartext.
    assert await hasher.verify(legacy, "nope") == VerifyResult(ok=False, needs_rehash=False)
    upgraded = await hasher.hash(PASSWORD)
    assert not hasher.needs_rehash(upgraded)
    assert await hasher.verify(upgraded, PASSWORD) == VerifyResult(ok=True, needs_rehash=False)


async def test_argon2i_hash_is_upgraded_to_argon2id(hasher: PasswordHasher) -> None:
    legacy = argon2.PasswordHasher(
        time_cost=1, memory_cost=1024, parallelism=1, type=argon2.Type.I
    ).hash(PASSWORD)
    assert await hasher.verify(legacy, PASSWORD) == VerifyResult(ok=True, needs_rehash=True)


@pytest.mark.parametrize("stored", ["", "!", "disabled", "$argon2id$v=19$m=1024,t=1,p=1$zz$yy"])
async def test_malformed_stored_hash_verifies_as_wrong(hasher: PasswordHasher, stored: str) -> None:
    assert await hasher.verify(stored, PASSWORD) == VerifyResult(ok=False)
    assert hasher.needs_rehash(stored)


async def test_unicode_passwords(hasher: PasswordHasher) -> None:
    for password in (
        "pässwörd-ünïcødé",
        "пароль-кириллица",
        "🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑",
        " spaces  inside ",
    ):
        encoded = await hasher.hash(password)
        assert (await hasher.verify(encoded, password)).ok
    # NFKC: a decomposed "é" (e + U+0301) verifies against the composed form and vice versa.
    composed = "caf\u00e9-au-lait!"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    assert (await hasher.verify(await hasher.hash(composed), decomposed)).ok


async def test_lone_surrogates_never_raise(hasher: PasswordHasher) -> None:
    encoded = await hasher.hash("\ud800abcdefghij")
    assert (await hasher.verify(encoded, "\ud800abcdefghij")).ok
    assert not (await hasher.verify(encoded, "\udfffabcdefghij")).ok


async def test_verify_dummy_spends_a_real_verification(hasher: PasswordHasher) -> None:
    await hasher.verify_dummy(PASSWORD)
    dummy = hasher._dummy_hash
    assert dummy is not None
    assert not hasher.needs_rehash(dummy), "the dummy uses the configured parameters"
    await hasher.verify_dummy("anything")
    assert hasher._dummy_hash == dummy, "computed once"


async def test_no_such_user_and_a_malformed_hash_cost_one_full_verification_like_a_wrong_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each way a login can fail runs exactly one complete argon2id verification with the
    configured parameters (counted inside argon2-cffi), so none of them answers sooner and the
    response time does not tell which e-mails exist. How long each takes is `make bench`'s (W4)."""
    hasher = PasswordHasher(AuthSettings())
    encoded = await hasher.hash(PASSWORD)
    await hasher.warm_up()
    configured = argon2.extract_parameters(encoded)
    real_verify = argon2.PasswordHasher.verify
    completed: list[argon2.Parameters] = []

    def counting_verify(self: argon2.PasswordHasher, hash: str, password: bytes) -> Literal[True]:
        try:
            return real_verify(self, hash, password)
        except VerifyMismatchError:  # the hash was computed in full, then compared
            completed.append(argon2.extract_parameters(hash))
            raise

    monkeypatch.setattr(argon2.PasswordHasher, "verify", counting_verify)
    cases: dict[str, Callable[[], Awaitable[object]]] = {
        "wrong": lambda: hasher.verify(encoded, "wrong password"),
        "missing": lambda: hasher.verify_dummy("wrong password"),
        "malformed": lambda: hasher.verify("!", "wrong password"),
    }
    for name, fail in cases.items():
        completed.clear()
        await fail()
        assert completed == [configured], name


async def test_event_loop_serves_other_tasks_during_a_hash_storm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """20 concurrent default-cost hashes: every one runs off the event loop's thread, and while each
    is still in flight (holding its worker thread and its limiter token) the loop runs another
    task for it. Counted, not timed: the loop's stalls in a storm are `make bench`'s (W4)."""
    hasher = PasswordHasher(AuthSettings())
    loop_thread = threading.get_ident()
    hashing_threads: list[int] = []
    served_mid_hash = 0
    real_hash = argon2.PasswordHasher.hash

    async def serve_mid_hash() -> None:
        nonlocal served_mid_hash
        await trio.lowlevel.checkpoint()
        served_mid_hash += 1

    def observed_hash(self: argon2.PasswordHasher, password: bytes, *, salt: None = None) -> str:
        hashing_threads.append(threading.get_ident())
        encoded = real_hash(self, password, salt=salt)
        # A round trip through the event loop before this hash returns; on the loop's own thread
        # (a hash run inline) trio refuses it with RuntimeError.
        trio.from_thread.run(serve_mid_hash)
        return encoded

    monkeypatch.setattr(argon2.PasswordHasher, "hash", observed_hash)
    hashes: dict[int, str] = {}

    async def one_hash(i: int) -> None:
        hashes[i] = await hasher.hash(f"{PASSWORD} {i}")

    async with trio.open_nursery() as storm:
        for i in range(20):
            storm.start_soon(one_hash, i)

    assert served_mid_hash == 20
    assert len(hashing_threads) == 20
    assert loop_thread not in hashing_threads
    assert len(set(hashes.values())) == 20
    assert (await hasher.verify(hashes[7], f"{PASSWORD} 7")).ok


async def test_concurrency_is_bounded_by_config() -> None:
    hasher = PasswordHasher(dataclasses.replace(FAST, argon2_max_concurrency=3))
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, hasher.limiter.borrowed_tokens)
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        async with trio.open_nursery() as storm:
            for i in range(12):
                storm.start_soon(hasher.hash, f"password {i}")
        nursery.cancel_scope.cancel()
    assert hasher.limiter.total_tokens == 3
    assert 1 <= peak <= 3


def test_zero_concurrency_is_refused() -> None:
    with pytest.raises(ValueError, match="argon2_max_concurrency"):
        PasswordHasher(dataclasses.replace(FAST, argon2_max_concurrency=0))


def test_default_concurrency_follows_the_cpus() -> None:
    assert AuthSettings().argon2_max_concurrency >= 1


def test_generated_passwords() -> None:
    seen = set()
    for _ in range(50):
        password = generate_password()
        assert len(password) == 20
        assert set(password) <= set(GENERATED_PASSWORD_ALPHABET)
        assert any(c.islower() for c in password)
        assert any(c.isupper() for c in password)
        assert any(c.isdigit() for c in password)
        assert check_password(password, AuthSettings()) == []
        seen.add(password)
    assert len(seen) == 50
    assert not set("0O1lI") & set(GENERATED_PASSWORD_ALPHABET)
    assert len(generate_password(32)) == 32
    with pytest.raises(ValueError, match="16"):
        generate_password(8)
