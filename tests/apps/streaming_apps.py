"""Plain handlers that stream by returning an async generator (`worker.streaming`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

_gates: dict[str, asyncio.Event] = {}
closed: list[str] = []


def gate(name: str) -> asyncio.Event:
    event = _gates.get(name)
    if event is None:
        event = _gates[name] = asyncio.Event()
    return event


def reset() -> None:
    _gates.clear()
    closed.clear()


async def events(event: Any, context: Any) -> AsyncIterator[Any]:
    """A head, then three pieces, each after the test has read the one before."""
    yield {"statusCode": 201, "headers": {"Content-Type": "text/plain"}, "cookies": ["k=v"]}
    yield "one "
    await gate("two").wait()
    yield b"two "
    await gate("three").wait()
    yield "three"


async def plain(event: Any, context: Any) -> AsyncIterator[Any]:
    """No head: 200 with the default content type."""
    yield b"\x00\x01"
    yield "text"


def returns_generator(event: Any, context: Any) -> Any:
    """A sync handler returning an async generator streams too."""

    async def pieces() -> AsyncIterator[str]:
        yield "from "
        yield "sync"

    return pieces()


async def fails_midway(event: Any, context: Any) -> AsyncIterator[Any]:
    try:
        yield "begun "
        raise RuntimeError("stream broke")
    finally:
        closed.append("fails_midway")


async def fails_first(event: Any, context: Any) -> AsyncIterator[Any]:
    raise RuntimeError("nothing to stream")
    yield "never"  # pragma: no cover


async def bad_item(event: Any, context: Any) -> AsyncIterator[Any]:
    yield {"statusCode": 200}
    yield 42
