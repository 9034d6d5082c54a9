"""The baseline: a raw ASGI app (no framework) on uvicorn that calls the same handler.

Invoke path: the body is parsed as the event. Any other path: a small event of method,
path, query and headers (less than our API Gateway 2.0 event carries).
"""

from __future__ import annotations

from typing import Any

import orjson

from bench.apps import noop

INVOKE = "/2015-03-31/functions/"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["method"] == "POST" and scope["path"].startswith(INVOKE):
        event: Any = orjson.loads(body) if body else {}
    else:
        event = {
            "method": scope["method"],
            "path": scope["path"],
            "query": scope["query_string"].decode(),
            "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
        }
    payload = orjson.dumps(await noop(event, None))
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
