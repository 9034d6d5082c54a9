"""Durable handlers: each step's run appends `<step> <pid>` to $DURABLE_LOG (when set)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import worker


def ran(step: str) -> None:
    path = os.environ.get("DURABLE_LOG")
    if path:
        # One short O_APPEND write: lines from processes never interleave.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{step} {os.getpid()}\n".encode())
        finally:
            os.close(fd)


async def charge(event: dict[str, Any]) -> dict[str, Any]:
    ran("charge")
    return {"order": event.get("order", "o-1"), "charged": event.get("amount", 1)}


def ship(order: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """A sync step. With `stall` (a file), its first run writes its pid there and stalls
    (the test kills it); later runs ship."""
    ran("ship")
    stall = event.get("stall")
    if stall and not Path(stall).exists():
        Path(stall).write_text(str(os.getpid()))
        time.sleep(60)
    return {**order, "shipped": True}


#: Calls of `hold` that have started, and the event the last one sets (one process).
_holding: list[asyncio.Event] = []


async def hold(together: int) -> bool:
    """Wait until `together` calls hold at once; False if they never do (1.5 s)."""
    if not _holding:
        _holding.append(asyncio.Event())
    _holding.append(_holding[0])
    if len(_holding) - 1 >= together:
        _holding[0].set()
    try:
        await asyncio.wait_for(_holding[0].wait(), timeout=1.5)
        return True
    except TimeoutError:
        return False


@worker.durable
async def flow(event: dict[str, Any], ctx: Any) -> Any:
    if "hold" in event:
        return {"together": await ctx.step("hold", hold, int(event["hold"]))}
    started = ctx.now()
    order = await ctx.step("charge", charge, event)
    await ctx.wait(seconds=float(event.get("wait", 0.5)))
    shipped = await ctx.step("ship", ship, order, event)
    return {**shipped, "now": started, "execution": ctx.execution_name}


async def step_a() -> str:
    ran("a")
    return "a"


async def step_b() -> str:
    ran("b")
    return "b"


@worker.durable
async def flow_ab(event: dict[str, Any], ctx: Any) -> Any:
    first = await ctx.step("a", step_a)
    await ctx.wait(seconds=float(event.get("wait", 0.5)))
    return [first, await ctx.step("b", step_b)]


@worker.durable
async def flow_ba(event: dict[str, Any], ctx: Any) -> Any:
    """flow_ab changed: its steps in the other order."""
    first = await ctx.step("b", step_b)
    await ctx.wait(seconds=float(event.get("wait", 0.5)))
    return [first, await ctx.step("a", step_a)]
