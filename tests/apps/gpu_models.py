"""A model that asks for a GPU: the supervisor must not load it itself (CUDA does not
survive a fork), so it lives in the model host process even on a machine without one."""

from __future__ import annotations

import os
from typing import Any

import worker
from tests.apps.models import _note


@worker.model("gpu-only", device="cuda")
def load_gpu_only(device: str) -> Any:
    """Asks for a GPU, computes on the CPU: where it is placed is what the tests look at."""
    _note(f"gpu-only {os.getpid()} {device}")
    return lambda xs: [x + 1 for x in xs]


async def gpu_only(event: Any, context: Any) -> Any:
    """One model from the host process, one from the supervisor's copy-on-write pages."""
    x = event["x"]
    return {"gpu": await context.infer("gpu-only", x), "cpu": await context.infer("double", x)}
