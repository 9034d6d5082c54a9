"""Sync handlers that use asyncio the way code written for the official runtime does."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from fastapi import FastAPI
from mangum import Mangum


async def _where() -> str:
    await asyncio.sleep(0)
    return threading.current_thread().name


def get_event_loop_then_run(event: Any, context: Any) -> Any:
    """`get_event_loop().run_until_complete()`, twice: the same loop both times."""
    first = asyncio.get_event_loop()
    thread = first.run_until_complete(_where())
    again = asyncio.get_event_loop()
    again.run_until_complete(asyncio.sleep(0))
    return {"thread": thread, "same_loop": first is again}


def run_then_get_event_loop(event: Any, context: Any) -> Any:
    """`asyncio.run()` (which clears the thread's loop when it ends), then the old way."""
    thread = asyncio.run(_where())
    asyncio.get_event_loop().run_until_complete(asyncio.sleep(0))
    return {"thread": thread}


app = FastAPI()


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
    return {"item_id": item_id, "q": q, "thread": threading.current_thread().name}


# Mangum calls asyncio.get_event_loop() and run_until_complete() on every request.
mangum = Mangum(app, lifespan="off")
