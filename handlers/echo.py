"""The echo handler: returns the event it was given (the image's default CMD)."""

from __future__ import annotations

from typing import Any


async def handler(event: Any, context: Any) -> Any:
    return event
