"""Fail when a Python module under the given directories is longer than the limit (`make lint`).

DESIGN §2 and STYLE ask for no module over 500 lines: past that a module has usually grown a
second subject, which wants a module of its own. Neither ruff nor mypy counts lines, so this does;
it names every module over the limit with its length, and exits 1 if there is any.

    python tools/check_module_size.py --max-lines 500 src/parley
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def too_long(roots: list[Path], max_lines: int) -> list[tuple[Path, int]]:
    """Every `*.py` file under `roots` with more than `max_lines` lines, longest first."""
    found = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > max_lines:
                found.append((path, lines))
    return sorted(found, key=lambda item: -item[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", type=Path, help="directories to check")
    parser.add_argument("--max-lines", type=int, default=500)
    args = parser.parse_args(argv)
    missing = [root for root in args.roots if not root.is_dir()]
    if missing:
        parser.error(f"not a directory: {', '.join(map(str, missing))}")
    offenders = too_long(args.roots, args.max_lines)
    for path, lines in offenders:
        print(
            f"{path}: {lines} lines, over the limit of {args.max_lines}: split it into "
            "cohesive modules (DESIGN §2)",
            file=sys.stderr,
        )
    if offenders:
        return 1
    print(f"module size: every module has at most {args.max_lines} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
