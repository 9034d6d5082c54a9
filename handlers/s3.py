"""S3 put events: read the new object, transform it, write the result under `processed/`.

For each record of an `ObjectCreated` event the object is read with the process's pooled
client (`await context.client("s3")`), transformed, and written to `processed/<key>` in
the same bucket. Keys arrive URL-encoded (a space is `+`), so they are decoded with
`unquote_plus`. The handler's own outputs also fire the bucket's notification: keys
already under `processed/` are skipped, so it never loops.

The transform here normalises text (each line stripped of trailing spaces, Windows line
ends made Unix, the whole in UTF-8) and keeps the content type; replace `transform` with
your own (resize an image, convert a format…).
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote_plus

PREFIX = "processed/"


def transform(data: bytes) -> bytes:
    text = data.decode("utf-8", "replace").replace("\r\n", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n")).encode()


async def _one(s3: Any, record: dict[str, Any]) -> dict[str, Any]:
    bucket = record["s3"]["bucket"]["name"]
    key = unquote_plus(record["s3"]["object"]["key"])
    if key.startswith(PREFIX):
        return {"bucket": bucket, "key": key, "skipped": "own output"}
    got = await s3.get_object(Bucket=bucket, Key=key)
    async with got["Body"] as body:
        data = await body.read()
    out = transform(data)
    target = PREFIX + key
    await s3.put_object(
        Bucket=bucket,
        Key=target,
        Body=out,
        ContentType=got.get("ContentType") or "application/octet-stream",
        Metadata={"source-key": key},
    )
    return {"bucket": bucket, "key": key, "output": target, "bytes": len(out)}


async def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    s3 = await context.client("s3")
    records = [
        r
        for r in event.get("Records", [])
        if str(r.get("eventName", "")).startswith("ObjectCreated")
    ]
    results = await asyncio.gather(*(_one(s3, r) for r in records))
    return {
        "processed": [r for r in results if "output" in r],
        "skipped": [r for r in results if "skipped" in r],
    }
