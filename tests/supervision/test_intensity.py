"""RestartIntensity: more than N restarts within T seconds is too many."""

from __future__ import annotations

import pytest

from parley.supervision import RestartIntensity


def test_up_to_max_restarts_within_the_window_are_allowed() -> None:
    intensity = RestartIntensity(max_restarts=3, window_seconds=5.0)

    assert [intensity.record(now) for now in (0.0, 1.0, 2.0)] == [True, True, True]
    assert intensity.record(3.0) is False


def test_restarts_older_than_the_window_are_forgotten() -> None:
    intensity = RestartIntensity(max_restarts=2, window_seconds=5.0)
    intensity.record(0.0)
    intensity.record(1.0)

    assert intensity.record(5.0) is True  # the restart at 0.0 has just left the window
    assert intensity.recent(5.5) == 2
    assert intensity.recent(100.0) == 0


def test_zero_max_restarts_means_the_first_restart_escalates() -> None:
    assert RestartIntensity(max_restarts=0, window_seconds=1.0).record(0.0) is False


@pytest.mark.parametrize(("max_restarts", "window"), [(-1, 1.0), (1, 0.0)])
def test_nonsense_limits_are_rejected(max_restarts: int, window: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        RestartIntensity(max_restarts, window)
