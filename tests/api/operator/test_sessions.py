"""The console's session store: idle and absolute expiry, eviction, cookie renewal."""

from __future__ import annotations

from parley.api.operator.access import ConsoleSessions, Operator
from parley.config import DebugSettings

WHO = Operator("operator_token", None, None, "192.0.2.1")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _sessions(**settings: float) -> tuple[ConsoleSessions, Clock]:
    clock = Clock()
    values = {"session_ttl_seconds": 60.0, "session_max_seconds": 300.0, "max_sessions": 3}
    return ConsoleSessions(DebugSettings(**(values | settings)), clock=clock), clock  # type: ignore[arg-type]


def test_a_session_lives_while_used_and_ends_after_its_idle_time() -> None:
    sessions, clock = _sessions()
    secret, session = sessions.open(WHO)
    clock.now += 59
    assert sessions.find(secret) is session
    sessions.touch(session)
    clock.now += 59
    assert sessions.find(secret) is session  # used 59 s ago
    clock.now += 2
    assert sessions.find(secret) is None
    assert len(sessions) == 0


def test_a_busy_session_still_ends_at_its_maximum_age() -> None:
    sessions, clock = _sessions()
    secret, _ = sessions.open(WHO)
    for _ in range(20):
        clock.now += 30
        found = sessions.find(secret)
        if found is None:
            break
        sessions.touch(found)
    assert clock.now - 1000.0 == 330  # found until 300 s, not past it
    assert sessions.find(secret) is None


def test_the_least_recently_used_session_makes_room_for_a_new_one() -> None:
    sessions, clock = _sessions()
    first, second, third = (sessions.open(WHO) for _ in range(3))
    clock.now += 1
    sessions.touch(first[1])
    sessions.open(WHO)
    assert sessions.find(second[0]) is None
    assert sessions.find(first[0]) is first[1] and sessions.find(third[0]) is third[1]


def test_unknown_forged_and_oversized_secrets_find_nothing() -> None:
    sessions, _ = _sessions()
    secret, _ = sessions.open(WHO)
    for guess in (None, "", secret[:-1] + "x", "x" * 10_000, "é\udcff"):
        assert sessions.find(guess) is None


def test_the_cookie_is_sent_again_once_half_its_life_is_spent() -> None:
    sessions, clock = _sessions()
    _, session = sessions.open(WHO)
    clock.now += 29
    assert not sessions.touch(session)
    clock.now += 2
    assert sessions.touch(session)
    assert not sessions.touch(session)
    assert session.csrf_token and len(session.csrf_token) >= 32
