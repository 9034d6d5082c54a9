"""A small HTTP API on the proxy (API Gateway HTTP API 2.0) event: a few routes, 404, 400."""

from __future__ import annotations

import base64
import json
import threading
from typing import Any

# One store per worker process; a real service keeps this in a database.
_items: dict[str, dict[str, Any]] = {}
_lock = threading.Lock()


def _json(status: int, body: Any) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
    }


def _body(event: dict[str, Any]) -> Any:
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode("utf-8", "replace")
    return json.loads(raw)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    http = event.get("requestContext", {}).get("http", {})
    method = http.get("method", "GET")
    path = event.get("rawPath", "/").rstrip("/") or "/"
    parts = path.strip("/").split("/")
    if path == "/" and method == "GET":
        return _json(200, {"service": "runtime-worker", "requestId": context.aws_request_id})
    if parts[0] == "hello" and method == "GET":
        name = (event.get("queryStringParameters") or {}).get("name", "world")
        return _json(200, {"message": f"hello, {name}"})
    if parts == ["items"]:
        if method == "GET":
            with _lock:
                return _json(200, {"items": list(_items.values())})
        if method == "POST":
            try:
                item = _body(event)
            except (ValueError, UnicodeDecodeError) as exc:
                return _json(400, {"message": f"body is not valid JSON: {exc}"})
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                return _json(400, {"message": 'expected a JSON object with a string "id"'})
            with _lock:
                _items[item["id"]] = item
            return _json(201, item)
        return _json(405, {"message": f"method {method} not allowed on /items"})
    if len(parts) == 2 and parts[0] == "items":
        with _lock:
            found = _items.get(parts[1])
        if method == "GET":
            return _json(200, found) if found else _json(404, {"message": "item not found"})
        if method == "DELETE":
            with _lock:
                existed = _items.pop(parts[1], None)
            return {"statusCode": 204 if existed else 404, "body": ""}
    return _json(404, {"message": f"no route for {method} {path}"})
