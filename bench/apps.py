"""The handler every HTTP benchmark calls, ours and the baselines alike."""

from __future__ import annotations

import asyncio
from typing import Any


async def noop(event: Any, context: Any) -> Any:
    return {"ok": True}


def noop_sync(event: Any, context: Any) -> Any:
    """The same no-op for runtimes without async handlers (the official client)."""
    return {"ok": True}


async def io_wait(event: Any, context: Any) -> Any:
    """A handler that waits 20 ms on I/O (a database call): capacity = slots / 20 ms."""
    await asyncio.sleep(0.02)
    return {"ok": True}


def soak(event: Any, context: Any) -> Any:
    """The soak's handler (`bench/soak.py`): a sync function that does what the event says,
    so one server sees every kind of fault; a proxy request is answered plainly."""
    import os
    import time

    if "rawPath" in event:
        return {"statusCode": 200, "body": "ok"}
    action = event.get("do")
    if action == "raise":
        raise ValueError("soak: a handler that raises")
    if action == "hang":
        time.sleep(event.get("seconds", 3.0))  # past the deadline: its thread outlives it
    elif action == "exit":
        os._exit(1)  # the whole worker process, with what it holds
    return {"ok": True}


async def io_wait_50ms(event: Any, context: Any) -> Any:
    """A handler that waits 50 ms on I/O: the cost benchmark's I/O-bound profile."""
    await asyncio.sleep(0.05)
    return {"ok": True}
