"""Handlers whose failures a Lambda stack trace must show as the user's own: raised on a
thread, on the loop, through a library; a result of an exact size; one that cannot be sent."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import simplejson


def sync_raise(event: Any, context: Any) -> Any:
    """Raises when asked; else says which thread it ran on (so a test sees it placed on the
    loop)."""
    if event.get("fail"):
        raise ValueError("sync boom")
    return {"thread": threading.current_thread().name}


async def async_raise(event: Any, context: Any) -> Any:
    await asyncio.sleep(0)
    raise ValueError("async boom")


def through_library(event: Any, context: Any) -> Any:
    """Fails inside a third-party library (site-packages) the handler called."""
    return simplejson.loads("{not json")


async def sized(event: Any, context: Any) -> Any:
    """A result whose JSON is exactly `bytes` bytes long (a string: its quotes count)."""
    return "x" * (int(event["bytes"]) - 2)


def sync_sized(event: Any, context: Any) -> Any:
    return "x" * (int(event["bytes"]) - 2)


def sync_unmarshalable(event: Any, context: Any) -> Any:
    return {"value": object()}
