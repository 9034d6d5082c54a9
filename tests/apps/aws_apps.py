"""Handlers that use the pooled AWS clients."""

from __future__ import annotations

from typing import Any


async def async_buckets(event: Any, context: Any) -> Any:
    s3 = await context.client("s3")
    names = [b["Name"] for b in (await s3.list_buckets())["Buckets"]]
    return {"buckets": names, "client": id(s3)}


def sync_buckets(event: Any, context: Any) -> Any:
    s3 = context.client("s3")
    return {"buckets": [b["Name"] for b in s3.list_buckets()["Buckets"]], "client": id(s3)}
