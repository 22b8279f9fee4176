"""The operator console (DESIGN §6): sign-in, JSON views of the live node, safe actions,
`/metrics`, and the console's pages (docs/operators.md).

`OperatorConsole` is built at the composition root over the app's context; `install` serves it.
"""

from parley.api.operator.console import OperatorConsole as OperatorConsole
from parley.api.operator.routes import install as install

__all__ = ["OperatorConsole", "install"]
