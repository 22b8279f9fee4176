"""Supervision trees on trio: child specs, supervisors, dynamic supervisors, restart intensity.

Generic on purpose: nothing here knows about chat, actors or the store.
"""

from parley.supervision._core import SupervisorBase as SupervisorBase
from parley.supervision.dynamic import DynamicSupervisor as DynamicSupervisor
from parley.supervision.errors import ChildStoppedError as ChildStoppedError
from parley.supervision.errors import DuplicateChildError as DuplicateChildError
from parley.supervision.errors import SupervisionError as SupervisionError
from parley.supervision.errors import SupervisorEscalation as SupervisorEscalation
from parley.supervision.errors import SupervisorNotRunningError as SupervisorNotRunningError
from parley.supervision.errors import TooManyChildrenError as TooManyChildrenError
from parley.supervision.errors import UnknownChildError as UnknownChildError
from parley.supervision.intensity import RestartIntensity as RestartIntensity
from parley.supervision.spec import ChildSpec as ChildSpec
from parley.supervision.spec import ChildStats as ChildStats
from parley.supervision.spec import ChildStatus as ChildStatus
from parley.supervision.spec import Restart as Restart
from parley.supervision.spec import Strategy as Strategy
from parley.supervision.spec import SupervisorStats as SupervisorStats
from parley.supervision.supervisor import Supervisor as Supervisor

__all__ = [
    "ChildSpec",
    "ChildStats",
    "ChildStatus",
    "ChildStoppedError",
    "DuplicateChildError",
    "DynamicSupervisor",
    "Restart",
    "RestartIntensity",
    "Strategy",
    "SupervisionError",
    "Supervisor",
    "SupervisorBase",
    "SupervisorEscalation",
    "SupervisorNotRunningError",
    "SupervisorStats",
    "TooManyChildrenError",
    "UnknownChildError",
]
