"""Sliding-window limits with a fake clock, and the auth rules built on them."""

from __future__ import annotations

import dataclasses

import pytest

from parley.accounts.throttle import AuthThrottle, Decision, SlidingWindowLimiter
from parley.config import AuthSettings, ServerSettings


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_allows_up_to_the_limit_then_refuses(clock: FakeClock) -> None:
    limiter = SlidingWindowLimiter(3, 60, clock=clock)
    assert [limiter.hit("k").remaining for _ in range(3)] == [2, 1, 0]
    refused = limiter.hit("k")
    assert refused == Decision(allowed=False, retry_after_seconds=60, remaining=0)
    assert limiter.hit("other").allowed, "keys are independent"


def test_window_slides(clock: FakeClock) -> None:
    limiter = SlidingWindowLimiter(3, 60, clock=clock)
    limiter.hit("k")  # t=0
    clock.advance(20)
    limiter.hit("k")  # t=20
    clock.advance(20)
    limiter.hit("k")  # t=40
    clock.advance(10)  # t=50: all three still inside the window
    assert limiter.hit("k") == Decision(False, 10, 0)
    clock.advance(9.5)  # t=59.5: retry-after rounds up to whole seconds
    assert limiter.check("k") == Decision(False, 1, 0)
    clock.advance(0.5)  # t=60: the first event leaves the window
    assert limiter.hit("k").allowed
    assert limiter.check("k") == Decision(False, 20, 0)


def test_no_burst_of_twice_the_limit_at_a_boundary(clock: FakeClock) -> None:
    limiter = SlidingWindowLimiter(10, 60, clock=clock)
    clock.advance(59)
    assert all(limiter.hit("k").allowed for _ in range(10))
    clock.advance(2)  # a fixed window would have reset here
    assert not limiter.hit("k").allowed


def test_refused_hits_are_not_counted(clock: FakeClock) -> None:
    limiter = SlidingWindowLimiter(2, 60, clock=clock)
    limiter.hit("k")
    limiter.hit("k")
    for _ in range(50):
        clock.advance(1)
        assert not limiter.hit("k").allowed
    clock.advance(10)  # 60 s after the two counted events, hammering did not extend the block
    assert limiter.hit("k").allowed


def test_check_counts_nothing(clock: FakeClock) -> None:
    limiter = SlidingWindowLimiter(2, 60, clock=clock)
    for _ in range(10):
        assert limiter.check("k") == Decision(True, 0, 2)
    assert len(limiter) == 0, "checking an unknown key stores nothing"
    limiter.hit("k")
    assert limiter.check("k") == Decision(True, 0, 1)
    limiter.hit("k")
    assert limiter.check("k") == Decision(False, 60, 0)


def test_expired_keys_are_pruned(clock: FakeClock) -> None:
    limiter = SlidingWindowLimiter(5, 60, clock=clock)
    for i in range(100):
        limiter.hit(f"k{i}")
    clock.advance(30)
    limiter.hit("fresh")
    assert limiter.prune() == 0
    clock.advance(31)
    assert limiter.prune() == 100
    assert len(limiter) == 1
    assert limiter.check("k1").allowed


def test_memory_is_bounded_by_max_keys(clock: FakeClock) -> None:
    limiter = SlidingWindowLimiter(2, 60, clock=clock, max_keys=10)
    limiter.hit("victim")
    limiter.hit("victim")
    for i in range(1000):
        clock.advance(0.001)
        limiter.hit(f"k{i}")
        assert len(limiter) <= 10
    # The least recently counted key went first.
    assert limiter.check("victim").allowed


def test_expired_keys_go_before_live_ones(clock: FakeClock) -> None:
    limiter = SlidingWindowLimiter(1, 60, clock=clock, max_keys=3)
    limiter.hit("old")
    clock.advance(61)
    limiter.hit("a")
    limiter.hit("b")
    limiter.hit("c")  # full: "old" has expired and is dropped, a and b stay
    assert not limiter.check("a").allowed
    assert not limiter.check("b").allowed
    assert len(limiter) == 3


def test_reset(clock: FakeClock) -> None:
    limiter = SlidingWindowLimiter(1, 60, clock=clock)
    limiter.hit("k")
    assert not limiter.check("k").allowed
    limiter.reset("k")
    assert limiter.check("k").allowed


@pytest.mark.parametrize(
    ("limit", "window", "max_keys"), [(0, 60, 10), (1, 0, 10), (1, 60, 0), (-1, 60, 10)]
)
def test_bad_parameters(limit: int, window: float, max_keys: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        SlidingWindowLimiter(limit, window, max_keys=max_keys)


# -- AuthThrottle --------------------------------------------------------------------------------

AUTH = AuthSettings()
PROD = ServerSettings(env="prod")
DEV = ServerSettings(env="dev")
TEST = ServerSettings(env="test")


def test_failed_logins_per_account(clock: FakeClock) -> None:
    throttle = AuthThrottle(AUTH, PROD, clock=clock)
    for i in range(10):
        assert throttle.check_login("ann@example.com", f"203.0.113.{i}").allowed
        throttle.record_login_failure("ann@example.com", f"203.0.113.{i}")
        clock.advance(1)
    # From a fresh IP, and spelled differently, the account is still blocked.
    decision = throttle.check_login("  ANN@example.com", "198.51.100.7")
    assert not decision.allowed
    assert decision.retry_after_seconds == 15 * 60 - 10
    assert throttle.check_login("bob@example.com", "198.51.100.7").allowed
    clock.advance(15 * 60 - 10)
    assert throttle.check_login("ann@example.com", "198.51.100.7").allowed


def test_successful_logins_never_count(clock: FakeClock) -> None:
    throttle = AuthThrottle(AUTH, PROD, clock=clock)
    for _ in range(1000):
        assert throttle.check_login("ann@example.com", "203.0.113.1").allowed
        # a success records nothing
    assert len(throttle.account_failures) == 0
    assert len(throttle.per_ip) == 0


def test_unknown_accounts_are_throttled_alike(clock: FakeClock) -> None:
    """The limiter is keyed by what was submitted, so it cannot tell who exists."""
    throttle = AuthThrottle(AUTH, PROD, clock=clock)
    for _ in range(10):
        throttle.record_login_failure("nobody@example.com", "203.0.113.1")
    assert not throttle.check_login("nobody@example.com", "203.0.113.1").allowed


def test_failed_logins_per_ip(clock: FakeClock) -> None:
    throttle = AuthThrottle(AUTH, PROD, clock=clock)
    for i in range(100):
        throttle.record_login_failure(f"user{i}@example.com", "203.0.113.9")
    decision = throttle.check_login("fresh@example.com", "203.0.113.9")
    assert not decision.allowed
    assert decision.retry_after_seconds == 3600
    assert throttle.check_login("fresh@example.com", "203.0.113.10").allowed


def test_registrations_and_forgot_password_per_ip(clock: FakeClock) -> None:
    throttle = AuthThrottle(AUTH, PROD, clock=clock)
    for _ in range(100):
        assert throttle.hit_ip("register", "203.0.113.5").allowed
    refused = throttle.hit_ip("register", "203.0.113.5")
    assert not refused.allowed
    assert refused.retry_after_seconds == 3600
    assert throttle.hit_ip("forgot_password", "203.0.113.5").allowed, "separate buckets"
    assert throttle.check_login("ann@example.com", "203.0.113.5").allowed
    clock.advance(3600)
    assert throttle.hit_ip("register", "203.0.113.5").allowed


def test_ipv6_clients_are_counted_per_64(clock: FakeClock) -> None:
    throttle = AuthThrottle(
        dataclasses.replace(AUTH, per_ip_requests_per_hour=2), PROD, clock=clock
    )
    assert throttle.hit_ip("register", "2001:db8:1:2::1").allowed
    assert throttle.hit_ip("register", "2001:db8:1:2:ffff::9").allowed
    assert not throttle.hit_ip("register", "2001:db8:1:2:abcd::1").allowed
    assert throttle.hit_ip("register", "2001:db8:1:3::1").allowed


def test_loopback_is_exempt_in_dev_only(clock: FakeClock) -> None:
    limits = dataclasses.replace(AUTH, per_ip_requests_per_hour=1)
    dev = AuthThrottle(limits, DEV, clock=clock)
    for ip in ("127.0.0.1", "::1", "127.8.9.10", "::ffff:127.0.0.1"):
        assert dev.is_exempt(ip)
        for _ in range(5):
            assert dev.hit_ip("register", ip).allowed
            dev.record_login_failure(f"{ip}@example.com", ip)
        assert dev.check_login("x@example.com", ip).allowed
    assert not dev.is_exempt("10.0.0.1")
    assert dev.hit_ip("register", "10.0.0.1").allowed
    assert not dev.hit_ip("register", "10.0.0.1").allowed
    # The per-account limit applies to loopback even in dev.
    for _ in range(10):
        dev.record_login_failure("ann@example.com", "127.0.0.1")
    assert not dev.check_login("ann@example.com", "127.0.0.1").allowed

    for server in (PROD, TEST):
        strict = AuthThrottle(limits, server, clock=clock)
        assert not strict.is_exempt("127.0.0.1")
        assert strict.hit_ip("register", "127.0.0.1").allowed
        assert not strict.hit_ip("register", "127.0.0.1").allowed
    off = AuthThrottle(dataclasses.replace(limits, exempt_loopback_in_dev=False), DEV)
    assert not off.is_exempt("127.0.0.1")


def test_overlong_account_keys_are_bounded(clock: FakeClock) -> None:
    throttle = AuthThrottle(AUTH, PROD, clock=clock)
    huge = "a" * 1_000_000 + "@example.com"
    for _ in range(10):
        throttle.record_login_failure(huge, "203.0.113.1")
    assert not throttle.check_login(huge.upper(), "203.0.113.2").allowed
    assert all(len(key) < 100 for key in throttle.account_failures._events)


def test_both_limits_over_returns_the_longer_wait(clock: FakeClock) -> None:
    limits = dataclasses.replace(AUTH, login_failures_per_account=1, per_ip_requests_per_hour=1)
    throttle = AuthThrottle(limits, PROD, clock=clock)
    throttle.record_login_failure("ann@example.com", "203.0.113.1")
    decision = throttle.check_login("ann@example.com", "203.0.113.1")
    assert decision == Decision(False, 3600, 0)
