"""The handlers `bench/state.py` runs: 1 ms of I/O, plain, idempotent (ours, Powertools'), durable.

Each wrapped handler times itself around the wrapped part and subtracts the part's own
time: what is left is the wrapper's overhead for that call (µs), kept per process and
appended to `$STATE_BENCH_DIR/<kind>-<pid>.txt` every `FLUSH_EVERY` calls.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import worker

IO_SECONDS = 0.001
FLUSH_EVERY = 200

_samples: dict[str, list[float]] = {}


def _keep(kind: str, micros: float) -> None:
    samples = _samples.setdefault(kind, [])
    samples.append(micros)
    if len(samples) >= FLUSH_EVERY:
        folder = os.environ.get("STATE_BENCH_DIR")
        if folder:
            with open(os.path.join(folder, f"{kind}-{os.getpid()}.txt"), "a") as f:
                f.write("".join(f"{s:.2f}\n" for s in samples))
        samples.clear()


async def plain(event: Any, context: Any) -> Any:
    await asyncio.sleep(IO_SECONDS)
    return {"ok": True}


@worker.idempotent(key="order_id")
async def _charge(event: Any, context: Any) -> Any:
    start = time.perf_counter()
    await asyncio.sleep(IO_SECONDS)
    return {"ok": True, "inner": time.perf_counter() - start}


async def idempotent(event: Any, context: Any) -> Any:
    """Ours: its store is WORKER_IDEMPOTENCY_STORE (sqlite:, dynamodb:TABLE)."""
    start = time.perf_counter()
    result = await _charge(event, context)
    _keep("idempotent", (time.perf_counter() - start - result["inner"]) * 1e6)
    return result


def _powertools() -> Any:
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
    )
    from aws_lambda_powertools.utilities.idempotency import idempotent as powertools_idempotent
    from botocore.config import Config

    table = os.environ.get("POWERTOOLS_TABLE")
    if not table:
        return None
    # A pool as large as the slots: its default (10) would throttle it below ours.
    persistence = DynamoDBPersistenceLayer(
        table_name=table, boto_config=Config(max_pool_connections=64)
    )
    config = IdempotencyConfig(event_key_jmespath="order_id")

    # Sync: Powertools' idempotency is sync-only; its 1 ms of I/O waits on its thread.
    @powertools_idempotent(persistence_store=persistence, config=config)
    def charge(event: Any, context: Any) -> Any:
        start = time.perf_counter()
        time.sleep(IO_SECONDS)
        return {"ok": True, "inner": time.perf_counter() - start}

    return charge


_powertools_charge = _powertools()


def powertools(event: Any, context: Any) -> Any:
    start = time.perf_counter()
    result = _powertools_charge(event, context)
    _keep("powertools", (time.perf_counter() - start - result["inner"]) * 1e6)
    return result


async def _io() -> float:
    start = time.perf_counter()
    await asyncio.sleep(IO_SECONDS)
    return time.perf_counter() - start


@worker.durable
async def _three_steps(event: Any, ctx: Any) -> Any:
    total = 0.0
    for name in ("one", "two", "three"):
        start = time.perf_counter()
        inner = await ctx.step(name, _io)
        _keep("step", (time.perf_counter() - start - inner) * 1e6)
        total += inner
    return {"ok": True, "inner": total}


async def durable(event: Any, context: Any) -> Any:
    """Three steps, each 1 ms of I/O; the execution is named by the request id."""
    start = time.perf_counter()
    result = await _three_steps(event, context)
    _keep("execution", (time.perf_counter() - start - result["inner"]) * 1e6)
    return result
