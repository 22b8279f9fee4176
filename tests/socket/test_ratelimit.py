"""Token bucket for the per-connection push limit (pure, injected clock)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley.api.socket.core.ratelimit import TokenBucket
from parley.config import SocketSettings


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_starts_full_and_allows_a_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(50, 100, clock=clock)
    assert sum(bucket.try_acquire() for _ in range(150)) == 100
    assert not bucket.try_acquire()


def test_refills_at_rate_up_to_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(50, 100, clock=clock)
    while bucket.try_acquire():
        pass
    clock.now += 0.1  # 5 tokens
    assert sum(bucket.try_acquire() for _ in range(10)) == 5
    clock.now += 3600
    assert bucket.tokens == 100


def test_sustained_rate_with_float_steps() -> None:
    clock = FakeClock()
    bucket = TokenBucket(50, 1, clock=clock)
    assert bucket.try_acquire()
    accepted = 0
    for _ in range(500):  # 10 s in 1/50 s steps: exactly one token per step
        clock.now += 1 / 50
        accepted += bucket.try_acquire()
    assert accepted == 500


def test_retry_after() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, 2, clock=clock)
    assert bucket.retry_after() == 0
    assert bucket.try_acquire(2)
    assert bucket.retry_after() == pytest.approx(0.1)
    assert bucket.retry_after(2) == pytest.approx(0.2)
    assert bucket.retry_after(3) == math.inf
    clock.now += 0.1
    assert bucket.try_acquire()


def test_failed_acquire_takes_nothing() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1, 3, clock=clock)
    assert not bucket.try_acquire(4)
    assert bucket.tokens == 3
    assert bucket.try_acquire(0)


def test_clock_going_backwards_adds_nothing() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1, 10, clock=clock)
    assert bucket.try_acquire(10)
    clock.now -= 100
    assert bucket.tokens == 0
    clock.now += 100  # back to where it was: still no time has passed
    assert bucket.tokens == 0
    clock.now += 2
    assert bucket.tokens == pytest.approx(2)


@pytest.mark.parametrize(
    ("rate", "burst"), [(0, 1), (-1, 1), (math.inf, 1), (math.nan, 1), (1, 0.5), (1, math.inf)]
)
def test_rejects_bad_parameters(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        TokenBucket(rate, burst, clock=FakeClock())


def test_negative_cost_rejected() -> None:
    with pytest.raises(ValueError, match="cost"):
        TokenBucket(1, 1, clock=FakeClock()).try_acquire(-1)


def test_from_socket_settings_defaults() -> None:
    bucket = TokenBucket.for_pushes(SocketSettings(), clock=FakeClock())
    assert (bucket.rate, bucket.burst) == (50.0, 100.0)
    assert "rate=50.0" in repr(bucket)


@given(st.lists(st.tuples(st.floats(0, 5), st.floats(0, 3)), max_size=60))
def test_never_exceeds_rate_times_time_plus_burst(steps: list[tuple[float, float]]) -> None:
    clock = FakeClock()
    start = clock.now
    bucket = TokenBucket(4, 6, clock=clock)
    spent = 0.0
    for advance, cost in steps:
        clock.now += advance
        if bucket.try_acquire(cost):
            spent += cost
        assert 0 <= bucket.tokens <= 6
    assert spent <= 6 + 4 * (clock.now - start) + 1e-6
