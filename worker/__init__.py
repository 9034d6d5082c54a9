"""runtime-worker: Lambda-style handlers at high throughput in one execution environment."""

from __future__ import annotations

from worker.context import LambdaContext
from worker.durable import Durable, durable
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
