"""Sync handlers using asyncio as code written for the official runtime does."""

from __future__ import annotations

import asyncio
from typing import Any


async def _double(n: int) -> int:
    await asyncio.sleep(0)
    return 2 * n


def run_until_complete(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """`asyncio.get_event_loop().run_until_complete()`, as Mangum and older SDKs do."""
    loop = asyncio.get_event_loop()
    return {"doubled": loop.run_until_complete(_double(event["n"])), "running": loop.is_running()}


def run(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """`asyncio.run()`: a new loop per call, closed when it ends."""
    return {"doubled": asyncio.run(_double(event["n"]))}
