"""The drills' figure lines: `FIGURE <id> <name>=<value> target=<target>`."""

from __future__ import annotations

import math
from collections.abc import Sequence

_printed: list[str] = []


def figure(drill: str, name: str, value: object, target: str) -> str:
    """Record (and print, for `-s` runs) one figure line; the terminal summary repeats them all."""
    shown = f"{value:.3g}" if isinstance(value, float) else str(value)
    line = f"FIGURE {drill} {name}={shown} target={target}"
    _printed.append(line)
    print(line)
    return line


def printed_figures() -> list[str]:
    return list(_printed)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` 0.99 for p99); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]
