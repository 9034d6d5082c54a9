"""The handler every HTTP benchmark calls, ours and the baselines alike."""

from __future__ import annotations

from typing import Any


async def noop(event: Any, context: Any) -> Any:
    return {"ok": True}


def noop_sync(event: Any, context: Any) -> Any:
    """The same no-op for runtimes without async handlers (the official client)."""
    return {"ok": True}
