"""The model registry: `@worker.model(...)` loaders, loaded once in the init phase.

    @worker.model("minilm", max_batch_size=64, max_wait_ms=5, warmup=["hello"])
    def load(device):
        model = build(device)
        return lambda texts: model(texts)      # list of inputs -> list of outputs

A handler module registers its models at import; the supervisor then loads every one of
them during the init phase (before readiness, before the first `/next`), under the same
`WORKER_INIT_TIMEOUT` as the import, logging a progress line per model (seconds, bytes,
device). On the CPU the worker processes are forked from the supervisor afterwards and
share the weights copy-on-write; each runs its own batcher over them (`host.py`). A model
on a GPU (or every model, with `WORKER_MODEL_HOST=process`) is loaded by the model host
process instead (`modelhost.py`), which the workers reach over a Unix socket.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from worker.errors import LambdaError, stack_of

log = logging.getLogger("worker.inference")

BatchFn = Callable[[list[Any]], Sequence[Any]]
Loader = Callable[..., BatchFn]


@dataclasses.dataclass
class ModelSpec:
    """One registered model: its loader, its batching bounds and, once loaded, its function."""

    name: str
    loader: Loader
    max_batch_size: int = 32
    max_wait_ms: float = 10.0
    device: str = "auto"
    warmup: list[Any] | None = None
    size_fn: Callable[[Any], int] | None = None
    #: Requests waiting per process before new ones are refused (None: DEFAULT_QUEUE, or
    #: 8 batches' worth when that is more).
    max_queue: int | None = None
    #: Batches of this model the model host runs at once (None: by device, see
    #: `modelhost.batches_in_flight`); a worker process runs one at a time.
    max_concurrent_batches: int | None = None
    fn: BatchFn | None = None
    resolved_device: str = ""
    #: Served by the model host process (`modelhost.py`), not loaded in this one.
    hosted: bool = False

    @property
    def queue_bound(self) -> int:
        if self.max_queue is not None:
            return self.max_queue
        return max(DEFAULT_QUEUE, 8 * self.max_batch_size)


#: Default bound of a model's queue per process: enough for every slot of a busy process
#: to wait with a few items, small enough that a wait past it would mean a timeout anyway.
DEFAULT_QUEUE = 1024

#: name -> spec, in registration order.
MODELS: dict[str, ModelSpec] = {}


def model(
    name: str,
    *,
    max_batch_size: int = 32,
    max_wait_ms: float = 10.0,
    device: str = "auto",
    warmup: list[Any] | None = None,
    size_fn: Callable[[Any], int] | None = None,
    max_queue: int | None = None,
    max_concurrent_batches: int | None = None,
) -> Callable[[Loader], Loader]:
    """Register `loader` as model `name`. The loader gets the device when it takes an
    argument and returns the batch function. Bounds are checked here, at import."""
    if max_batch_size < 1:
        raise ValueError(f"model {name!r}: max_batch_size must be >= 1, got {max_batch_size}")
    if max_wait_ms < 0:
        raise ValueError(f"model {name!r}: max_wait_ms must be >= 0, got {max_wait_ms}")
    if max_queue is not None and max_queue < 1:
        raise ValueError(f"model {name!r}: max_queue must be >= 1, got {max_queue}")
    if max_concurrent_batches is not None and max_concurrent_batches < 1:
        raise ValueError(
            f"model {name!r}: max_concurrent_batches must be >= 1, got {max_concurrent_batches}"
        )

    def register(loader: Loader) -> Loader:
        MODELS[name] = ModelSpec(
            name=name,
            loader=loader,
            max_batch_size=max_batch_size,
            max_wait_ms=max_wait_ms,
            device=device,
            warmup=list(warmup) if warmup is not None else None,
            size_fn=size_fn,
            max_queue=max_queue,
            max_concurrent_batches=max_concurrent_batches,
        )
        return loader

    return register


def resolve_device(device: str) -> str:
    """`auto`: CUDA when torch sees a GPU, else the CPU."""
    if device != "auto":
        return device
    return "cuda" if cuda_available() else "cpu"


def cuda_available() -> bool:
    """Whether torch sees a GPU, asked without initialising CUDA in this process.

    The supervisor asks before it forks: CUDA initialised here would be unusable in
    every child (torch's NVML check does not initialise it)."""
    try:
        import torch
    except ImportError:
        return False
    previous = os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK")
    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"
    try:
        return bool(torch.cuda.is_available())
    finally:
        if previous is None:
            del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]
        else:
            os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = previous


def needs_host(spec: ModelSpec, placement: str) -> bool:
    """Whether `spec` is served by the model host process: every model when `placement`
    is "process", else (`auto`) the models on a GPU."""
    if placement == "process":
        return True
    return spec.device.startswith("cuda") or (spec.device == "auto" and cuda_available())


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _gpu_bytes(device: str) -> int:
    if not device.startswith("cuda"):
        return 0
    import torch

    return int(torch.cuda.memory_allocated())


def load(spec: ModelSpec) -> None:
    """Load one model (and run its warm-up batch); a failure is a Lambda init error."""
    device = resolve_device(spec.device)
    started, rss0, gpu0 = time.monotonic(), _rss_bytes(), _gpu_bytes(device)
    try:
        takes_device = bool(inspect.signature(spec.loader).parameters)
        fn = spec.loader(device) if takes_device else spec.loader()
        if not callable(fn):
            raise TypeError(f"the loader returned {type(fn).__name__}, not a batch function")
        loaded = time.monotonic()
        if spec.warmup:
            outputs = run_batch(fn, list(spec.warmup))
            if len(outputs) != len(spec.warmup):
                raise ValueError(
                    f"the warm-up batch of {len(spec.warmup)} gave {len(outputs)} outputs"
                )
    except Exception as exc:
        raise LambdaError(
            type(exc).__name__, f"Model '{spec.name}' failed to load: {exc}", stack_of(exc)
        ) from exc
    spec.fn, spec.resolved_device = fn, device
    log.info(
        "model loaded",
        extra={
            "fields": {
                "model": spec.name,
                "device": device,
                "seconds": round(loaded - started, 3),
                "warmup_seconds": round(time.monotonic() - loaded, 3) if spec.warmup else 0.0,
                "bytes": max(0, _rss_bytes() - rss0) + max(0, _gpu_bytes(device) - gpu0),
            }
        },
    )


def load_all() -> list[ModelSpec]:
    """Every registered model the model host does not serve, in registration order (the
    init phase's last step)."""
    for spec in MODELS.values():
        if spec.fn is None and not spec.hosted:
            load(spec)
    return list(MODELS.values())


def run_batch(fn: BatchFn, inputs: list[Any]) -> Sequence[Any]:
    """Call a batch function without autograd bookkeeping when torch is there."""
    # A model that uses torch has imported it by now (its loader ran); one that does not
    # should not pay for importing it.
    torch = sys.modules.get("torch")
    if torch is None:
        return fn(inputs)
    with torch.inference_mode():
        return fn(inputs)
