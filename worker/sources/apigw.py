"""Proxy mode: an HTTP request as an API Gateway HTTP API (payload 2.0) event, and back."""

from __future__ import annotations

import base64
import time
from typing import Any
from urllib.parse import unquote_plus

from worker import marshal
from worker.errors import LambdaError

# Bodies with these content types travel as text; anything else is base64, as API
# Gateway does for binary media.
_TEXT_TYPES = (b"text/", b"application/json", b"application/xml", b"application/javascript")
_TEXT_SUFFIXES = (b"+json", b"+xml", b"x-www-form-urlencoded", b"/graphql")


def _is_text(content_type: bytes) -> bool:
    ct = content_type.split(b";", 1)[0].strip().lower()
    return not ct or ct.startswith(_TEXT_TYPES) or ct.endswith(_TEXT_SUFFIXES)


_stamp: tuple[int, str] = (0, "")


def _request_time(now: float) -> str:
    """API Gateway's `requestContext.time`, formatted once per second, not per request."""
    global _stamp
    second = int(now)
    if _stamp[0] != second:
        _stamp = (second, time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(second)))
    return _stamp[1]


def build_event(
    method: str,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    source_ip: str,
    request_id: str,
    http_version: str,
) -> dict[str, Any]:
    raw_path, _, raw_query = target.partition(b"?")
    hdrs: dict[str, str] = {}
    cookies: list[str] = []
    content_type = b""
    for name, value in headers:
        key = name.decode("latin-1")
        val = value.decode("latin-1")
        if key == "cookie":
            cookies.extend(c.strip() for c in val.split(";") if c.strip())
            continue
        if key == "content-type":
            content_type = value
        # API Gateway joins repeated headers with commas.
        hdrs[key] = f"{hdrs[key]},{val}" if key in hdrs else val
    if cookies:
        hdrs["cookie"] = "; ".join(cookies)
    now = time.time()
    path = raw_path.decode("latin-1")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": raw_query.decode("latin-1"),
        "headers": hdrs,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "runtime-worker",
            "domainName": hdrs.get("host", "localhost"),
            "domainPrefix": hdrs.get("host", "localhost").split(".", 1)[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": f"HTTP/{http_version}",
                "sourceIp": source_ip,
                "userAgent": hdrs.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": _request_time(now),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if raw_query:
        params: dict[str, str] = {}
        for pair in raw_query.decode("latin-1").split("&"):
            if not pair:
                continue
            k, _, v = pair.partition("=")
            if "%" in pair or "+" in pair:  # most query strings need no decoding
                k, v = unquote_plus(k), unquote_plus(v)
            params[k] = f"{params[k]},{v}" if k in params else v
        event["queryStringParameters"] = params
    if body:
        if _is_text(content_type):
            try:
                event["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(body).decode()
                event["isBase64Encoded"] = True
        else:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


Response = tuple[int, list[tuple[str, str]], bytes]


def to_response(result: Any) -> Response:
    """The handler's result as (status, headers, body), by API Gateway's 2.0 rules.

    A dict with `statusCode` is a full response; anything else is a 200 JSON body.
    Raises LambdaError("Runtime.MarshalError") when the value cannot be sent.
    """
    if not (isinstance(result, dict) and "statusCode" in result):
        return 200, [("content-type", "application/json")], marshal.dumps(result)
    try:
        status = int(result["statusCode"])
    except (TypeError, ValueError):
        status = 0
    if not 100 <= status <= 599:
        raise LambdaError(
            "Runtime.MarshalError", f"Invalid statusCode {result.get('statusCode')!r}"
        )
    headers: list[tuple[str, str]] = []
    for k, v in (result.get("headers") or {}).items():
        headers.append((str(k), str(v)))
    for k, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((str(k), str(v)) for v in values)
    headers.extend(("set-cookie", str(c)) for c in result.get("cookies") or [])
    body = result.get("body")
    if body is None:
        data = b""
    elif isinstance(body, bytes):
        data = body
    elif isinstance(body, str):
        data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    else:
        data = marshal.dumps(body)
    if not any(k.lower() == "content-type" for k, _ in headers) and data:
        headers.append(
            (
                "content-type",
                "application/json"
                if body is not None and not isinstance(body, (str, bytes))
                else "text/plain; charset=utf-8",
            )
        )
    return status, headers, data
