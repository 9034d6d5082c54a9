"""The echo handler: returns the event it was given (the image's default CMD).

A plain function, so every runtime runs it, the official client included (it has no
async handlers).
"""

from __future__ import annotations

from typing import Any


def handler(event: Any, context: Any) -> Any:
    return event
