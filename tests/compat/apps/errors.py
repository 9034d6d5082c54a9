"""A handler that raises: the error a caller gets and the lines the runtime logs."""

from __future__ import annotations

import json
from typing import Any


def _check(order: dict[str, Any]) -> None:
    if order["quantity"] < 0:
        raise ValueError(f"quantity must not be negative: {order['quantity']}")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _check(event)
    return {"ok": True}


def through_library(event: dict[str, Any], context: Any) -> Any:
    """The error is raised inside the standard library (a frame that is not the handler's)."""
    return json.loads(event["raw"])
