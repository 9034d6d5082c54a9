"""Handlers over registered models, with knobs in the environment for the tests.

MODEL_CALLS: a file the loader appends "load <pid>" to (a loader call count per
environment). MODEL_LOAD: "raise" or "hang". MODEL_BYTES: weights to hold (shared by
the worker processes). MODEL_DELAY: seconds each batch takes. NARROW_GATE, PAIR_GATE:
files whose existence lets the `narrow` and `pair` models' batches end.
"""

from __future__ import annotations

import os
import time
from typing import Any

import worker

HELD: list[bytearray] = []  # the "weights", alive for the process's life


def _note(line: str) -> None:
    path = os.environ.get("MODEL_CALLS")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


@worker.model(
    "double", max_batch_size=16, max_wait_ms=20, warmup=[0], device="cpu", max_concurrent_batches=2
)
def load_double() -> Any:
    _note(f"load {os.getpid()}")
    behaviour = os.environ.get("MODEL_LOAD", "")
    if behaviour == "raise":
        raise RuntimeError("weights are corrupt")
    if behaviour == "hang":
        time.sleep(3600)
    weights = bytearray(int(os.environ.get("MODEL_BYTES", "0")))
    for i in range(0, len(weights), 4096):  # really resident, page by page
        weights[i] = 1
    HELD.append(weights)
    delay = float(os.environ.get("MODEL_DELAY", "0.02"))

    def batch(xs: list[Any]) -> list[Any]:
        time.sleep(delay)
        return [x * 2 for x in xs]

    return batch


async def handler(event: Any, context: Any) -> Any:
    return {"out": await context.infer("double", event["x"]), "pid": os.getpid()}


def sync_handler(event: Any, context: Any) -> Any:
    return {"out": context.infer("double", event["x"]), "pid": os.getpid()}


async def unknown(event: Any, context: Any) -> Any:
    return await context.infer("no-such-model", 1)


@worker.model("narrow", max_batch_size=1, max_queue=1, max_concurrent_batches=1, device="cpu")
def load_narrow() -> Any:
    """One item a batch, one waiting: each batch holds until NARROW_GATE exists."""

    def batch(xs: list[Any]) -> list[Any]:
        gate = os.environ["NARROW_GATE"]
        with open(gate + ".entered", "a") as f:
            f.write(f"{xs[0]}\n")
        while not os.path.exists(gate):
            time.sleep(0.005)
        return xs

    return batch


async def narrow(event: Any, context: Any) -> Any:
    return await context.infer("narrow", event["x"])


@worker.model("pair", max_batch_size=1, max_concurrent_batches=2, device="cpu")
def load_pair() -> Any:
    """One item a batch, two batches at once in the model host: each appends its item to
    PAIR_GATE.entered, then holds until PAIR_GATE exists."""

    def batch(xs: list[Any]) -> list[Any]:
        gate = os.environ["PAIR_GATE"]
        with open(gate + ".entered", "a") as f:
            f.write(f"{xs[0]}\n")
        while not os.path.exists(gate):
            time.sleep(0.005)
        return [x * 3 for x in xs]

    return batch


async def pair(event: Any, context: Any) -> Any:
    return await context.infer("pair", event["x"])


class Unpicklable(Exception):
    """An exception that cannot cross a process boundary as itself."""

    def __init__(self, detail: str, code: int) -> None:
        super().__init__(detail)
        self.code = code


@worker.model("picky", max_batch_size=8, device="cpu")
def load_picky() -> Any:
    """Doubles; a batch with a negative fails with ValueError, one with 13 with Unpicklable."""

    def batch(xs: list[Any]) -> list[Any]:
        if any(x < 0 for x in xs):
            raise ValueError(f"negative input in {sorted(xs)}")
        if 13 in xs:
            raise Unpicklable("unlucky", 13)
        return [x * 2 for x in xs]

    return batch


async def picky(event: Any, context: Any) -> Any:
    return await context.infer("picky", event["x"])
