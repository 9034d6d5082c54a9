"""Idempotent handlers: every run of a body appends a line to $RUNS_FILE (when set)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

import worker


def ran(tag: str) -> None:
    path = os.environ.get("RUNS_FILE")
    if path:
        # One write of a short line with O_APPEND: lines from processes never interleave.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{tag}\n".encode())
        finally:
            os.close(fd)


@worker.idempotent(key="order_id", validate="amount")
async def charge(event: dict[str, Any], context: Any) -> dict[str, Any]:
    ran(event["order_id"])
    await asyncio.sleep(float(event.get("seconds", 0)))
    if event.get("fail"):
        raise RuntimeError(f"card declined for {event['order_id']}")
    return {"order_id": event["order_id"], "charged": event.get("amount"), "run": uuid.uuid4().hex}


async def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Who answered, and what the idempotent charge gave."""
    return {"answeredBy": os.getpid(), "result": await charge(event, context)}


@worker.idempotent(key="order.id", expires=1)
def charge_sync(event: dict[str, Any], context: Any) -> dict[str, Any]:
    ran(event["order"]["id"])
    time.sleep(float(event.get("seconds", 0)))
    if event.get("fail"):
        raise RuntimeError("card declined")
    return {"order": event["order"]["id"], "run": uuid.uuid4().hex}


def handler_sync(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"answeredBy": os.getpid(), "result": charge_sync(event, context)}
