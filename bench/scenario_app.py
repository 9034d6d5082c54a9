"""The service the user-facing scenarios (locust) and the lanes benchmark run against.

A small API through one Router: quick routes (sprinters) and a two-second one (a
marathon), plus direct invokes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from worker.router import Router

router = Router()
_items: dict[str, dict[str, Any]] = {}


@router.http("GET /items/{id}")
async def get_item(event: Any, context: Any) -> Any:
    item = _items.get(context.params["id"], {"id": context.params["id"], "name": "unknown"})
    return {"statusCode": 200, "body": str(item)}


@router.http("POST /items")
async def create_item(event: Any, context: Any) -> Any:
    _items[str(len(_items))] = {"body": event.get("body")}
    return {"statusCode": 201, "body": "created"}


@router.http("GET /report")
async def report(event: Any, context: Any) -> Any:
    """A marathon: two seconds of waiting on something slow."""
    await asyncio.sleep(2.0)
    return {"statusCode": 200, "body": "report ready"}


@router.direct()
async def invoke(event: Any, context: Any) -> Any:
    return {"ok": True, "action": event.get("action") if isinstance(event, dict) else None}


handler = router
