"""One Router serving an API, a queue, a bucket, a schedule and direct invokes."""

from __future__ import annotations

import threading
from typing import Any

from worker.router import Router

router = Router()


@router.http("GET /items/{id}")
async def get_item(event: Any, context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "body": f"item {context.params['id']} via {context.kind}"}


@router.http("POST /items")
def create_item(event: Any, context: Any) -> dict[str, Any]:
    # A sync target: it must run on a handler thread, not the loop's.
    return {"statusCode": 201, "body": threading.current_thread().name}


@router.http("/files/{path+}")
def files(event: Any, context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "body": context.params["path"]}


@router.sqs("orders")
def orders(event: Any, context: Any) -> dict[str, Any]:
    return {"handled": "orders", "count": len(event["Records"])}


@router.s3("uploads*")
async def uploads(event: Any, context: Any) -> dict[str, Any]:
    return {"handled": "uploads", "bucket": context.route}


@router.schedule("nightly-*")
def nightly(event: Any, context: Any) -> str:
    return "nightly"


@router.direct("resize")
async def resize(event: Any, context: Any) -> dict[str, Any]:
    return {"handled": "resize", "width": event.get("width")}


@router.default
def anything(event: Any, context: Any) -> dict[str, Any]:
    return {"handled": "default", "kind": context.kind}


handler = router
