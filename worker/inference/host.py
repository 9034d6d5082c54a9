"""The models as one worker process reaches them: a batcher per model on its loop.

On the CPU every worker process is forked from the supervisor after the init phase has
loaded the models, so the weights are in memory once (pages shared copy-on-write; torch
never writes to them at inference) and each process batches its own slots' requests over
them. Each process's torch gets its share of the cores, so the processes' batches do not
fight over threads. On a GPU, CUDA state does not survive a fork: those models live in the
model host process (`modelhost.py`), and this process reaches them over its socket
(`remote.py`); the handler cannot tell the difference.

`infer(name, item, deadline)` is what `context.infer` calls. On the loop's thread (an
async handler) it returns an awaitable; on any other thread (a sync handler) it blocks
until the batch with the item has run, so the same call serves both.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable
from typing import Any

from worker.config import cores
from worker.errors import LambdaError
from worker.inference import registry
from worker.inference.batcher import Batcher
from worker.inference.remote import RemoteModels
from worker.telemetry.metrics import Metrics

log = logging.getLogger("worker.inference")


class Host:
    """This process's batchers, bound to its loop."""

    def __init__(
        self,
        specs: list[registry.ModelSpec],
        metrics: Metrics,
        loop: asyncio.AbstractEventLoop,
        remote: RemoteModels | None = None,
        hosted: frozenset[str] = frozenset(),
    ) -> None:
        self.loop = loop
        self.batchers = {spec.name: Batcher(spec, metrics) for spec in specs}
        self.remote = remote
        self.hosted = hosted  # the names the model host serves

    def infer(self, name: str, item: Any, deadline: float | None) -> Any:
        batcher = self.batchers.get(name)
        if batcher is not None:
            call = batcher.infer(item, deadline)
        elif self.remote is not None and name in self.hosted:
            call = self.remote.infer(name, item, deadline)
        else:
            raise unknown_model(name)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            return call
        # A handler thread: hand the request to the loop and wait for its batch.
        return asyncio.run_coroutine_threadsafe(call, self.loop).result()

    def close(self) -> None:
        for batcher in self.batchers.values():
            batcher.close()
        if self.remote is not None:
            self.remote.close()


#: This process's host, once its loop runs (None in the supervisor and outside a runtime).
current: Host | None = None


def start(metrics: Metrics, processes: int, threads: int = 0, host_socket: str = "") -> Host | None:
    """Called in a worker process on its loop: batchers for every loaded model, and a
    connection to the model host (at `host_socket`) for the models it serves.

    `threads`: torch's threads in this process (0: the cores shared out over the
    processes, one core left for the loop)."""
    global current
    specs = [spec for spec in registry.MODELS.values() if spec.fn is not None]
    hosted = frozenset(spec.name for spec in registry.MODELS.values() if spec.hosted)
    if not specs and not hosted:
        return None
    remote = RemoteModels(host_socket) if hosted else None
    torch = sys.modules.get("torch")
    if torch is not None and specs:
        # The cores are shared by the worker processes: each batch gets its share.
        # A process alone on the machine still leaves one core to its loop and the I/O:
        # on 2 cores, one request through MiniLM took 12.7 ms with 2 torch threads and
        # 10.2 ms with 1 (the threads and the loop fought for the cores).
        share = min(cores() // max(1, processes), cores() - 1)
        torch.set_num_threads(threads or max(1, share))
    current = Host(specs, metrics, asyncio.get_running_loop(), remote, hosted)
    return current


def stop() -> None:
    global current
    if current is not None:
        current.close()
        current = None


def unknown_model(name: str) -> LambdaError:
    known = ", ".join(sorted(registry.MODELS)) or "none"
    return LambdaError(
        "Runtime.ModelNotFound", f"No model named '{name}' is registered (registered: {known})"
    )


async def _ready(value: Any) -> Any:
    return value


def infer(name: str, item: Any, deadline: float | None = None) -> Any:
    """One input through model `name`: an awaitable on the loop's thread, else the output.

    Outside a runtime (a unit test calling the handler directly) the model is loaded on
    first use and called with a batch of one.
    """
    host = current
    if host is not None:
        return host.infer(name, item, deadline)
    spec = registry.MODELS.get(name)
    if spec is None:
        raise unknown_model(name)
    if spec.fn is None:
        registry.load(spec)
    assert spec.fn is not None
    output = registry.run_batch(spec.fn, [item])[0]
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return output
    result: Awaitable[Any] = _ready(output)
    return result
