"""Errors raised by supervisors."""

from __future__ import annotations


class SupervisionError(Exception):
    """Base class of every error raised by `parley.supervision`."""


class SupervisorEscalation(SupervisionError):
    """A supervisor exceeded its restart intensity, stopped its children and failed to its parent.

    `__cause__` is the last child error (None when a permanent child kept returning normally).
    """

    def __init__(self, supervisor: str, child: str, max_restarts: int, window_seconds: float):
        super().__init__(
            f"supervisor {supervisor!r} gave up: child {child!r} needed more than {max_restarts} "
            f"restart(s) within {window_seconds:g}s"
        )
        self.supervisor = supervisor
        self.child = child


class SupervisorNotRunningError(SupervisionError):
    """A child was to be started under a supervisor that is not running (or is shutting down)."""


class DuplicateChildError(SupervisionError):
    """A dynamic child was started under a name that is already in use."""


class TooManyChildrenError(SupervisionError):
    """A dynamic supervisor already holds `max_children` children."""


class UnknownChildError(SupervisionError, LookupError):
    """No child of that name is running under the supervisor."""


class ChildStoppedError(SupervisionError):
    """The child was stopped (terminated, or its supervisor shut down) before it had started."""
