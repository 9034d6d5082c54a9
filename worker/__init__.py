"""runtime-worker: Lambda-style handlers at high throughput in one execution environment."""

from __future__ import annotations

from worker.context import LambdaContext
from worker.errors import LambdaError
from worker.inference.registry import model

__all__ = ["LambdaContext", "LambdaError", "__version__", "model"]
__version__ = "0.1.0"
