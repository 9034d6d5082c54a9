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
