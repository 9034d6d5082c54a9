"""runtime-worker: Lambda-style handlers at high throughput in one execution environment.

The names below are imported on first use (PEP 562), but for `durable` (see below): a
cold start does not pay for idempotency, models or the AWS clients a function never uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Not lazy: `worker.durable` is also a subpackage, and importing it anywhere would bind
# the name to the package (the decorator must win, as it does when imported here first).
from worker.durable import Durable, durable

if TYPE_CHECKING:
    from worker.context import LambdaContext
    from worker.errors import LambdaError
    from worker.idempotency import idempotent
    from worker.inference.registry import model

__all__ = [
    "Durable",
    "LambdaContext",
    "LambdaError",
    "__version__",
    "durable",
    "idempotent",
    "model",
]
__version__ = "0.1.0"

#: Each public name, and the module it comes from.
_LAZY = {
    "LambdaContext": "worker.context",
    "LambdaError": "worker.errors",
    "idempotent": "worker.idempotency",
    "model": "worker.inference.registry",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'worker' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
