"""Showing a durable execution: `worker executions show NAME` and `GET /_worker/executions/NAME`.

Both give the same JSON: the execution's status, version, times (epoch seconds), its
result or error, and its history: every step, wait and recorded value in order, with
its status, attempts and duration.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from worker import state
from worker.state.base import DurableStore, Execution, Op


def _json(data: str | None) -> Any:
    return orjson.loads(data) if data else None


def _op(op: Op) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "seq": op.seq,
        "kind": op.kind,
        "name": op.name,
        "status": op.status,
        "started": op.started,
        "ended": op.ended,
        "durationMs": round((op.ended - op.started) * 1000, 3) if op.ended else None,
    }
    if op.kind == "step":
        shown["attempts"] = op.attempts
        shown["failures"] = op.failures
        shown["result"] = _json(op.value)
        if op.error:
            shown["error"] = _json(op.error)
    else:
        shown["value"] = _json(op.value)
    return shown


def view(execution: Execution) -> dict[str, Any]:
    return {
        "name": execution.name,
        "status": execution.status,
        "function": execution.function,
        "version": execution.version,
        "created": execution.created,
        "updated": execution.updated,
        "wakeAt": execution.wake_at,
        "leaseUntil": execution.lease_until or None,
        "result": _json(execution.result),
        "error": _json(execution.error),
        "steps": [_op(op) for op in execution.ops],
    }


def _stores() -> list[DurableStore]:
    """This process's durable functions' stores, else the configured one."""
    from worker.durable.engine import FUNCTIONS

    stores: list[DurableStore] = []
    for function in FUNCTIONS:
        if all(function.store is not s for s in stores):
            stores.append(function.store)
    return stores or [state.durable_store()]


async def describe(name: str) -> dict[str, Any] | None:
    for store in _stores():
        execution = await store.get(name)
        if execution is not None:
            return view(execution)
    return None


async def answer(name: str) -> tuple[int, bytes]:
    """The admin endpoint's status and body."""
    try:
        shown = await describe(name)
    except Exception as exc:
        body = {"errorType": "ServiceException", "errorMessage": f"the durable store: {exc}"}
        return 500, orjson.dumps(body)
    if shown is None:
        body = {
            "errorType": "ResourceNotFoundException",
            "errorMessage": f"no durable execution named {name!r}",
        }
        return 404, orjson.dumps(body)
    return 200, orjson.dumps(shown)


async def _show(name: str) -> dict[str, Any] | None:
    from worker import aws

    try:
        return await describe(name)
    finally:
        await aws.current.close()


def main(argv: Sequence[str]) -> int:
    """`worker executions show NAME` (the store from WORKER_DURABLE_STORE and
    WORKER_STATE_DIR, as the service has them)."""
    parser = argparse.ArgumentParser(
        prog="worker executions", description="Durable executions in this environment's store."
    )
    parser.add_argument("action", choices=("show",))
    parser.add_argument("name", help="the execution's name")
    args = parser.parse_args(list(argv))
    try:
        shown = asyncio.run(_show(args.name))
    except Exception as exc:
        sys.stderr.write(f"worker executions: {exc}\n")
        return 1
    if shown is None:
        sys.stderr.write(f"worker executions: no execution named {args.name!r}\n")
        return 1
    sys.stdout.write(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0
