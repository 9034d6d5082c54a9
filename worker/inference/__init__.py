"""Shared inference: models registered with `@worker.model`, loaded once, batched per call.

`registry` holds the models and loads them in the init phase; `batcher` batches one
model's requests; `host` gives each worker process its batchers and `infer()`.
"""

from __future__ import annotations

from worker.inference.registry import model

__all__ = ["model"]
