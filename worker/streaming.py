"""Streamed answers: a response that goes out as it is produced, on any source that can.

A source whose callers can take an answer in pieces (the HTTP front: chunked transfer
encoding; the Runtime API: its streaming response mode) gives its jobs a `ResponseStream`
through `Job.stream()`; a source that cannot returns None there, and whatever streams
is gathered and answered whole.

Two things stream:
- an ASGI app's response (`worker.sources.asgi`): `http.response.start`, then each
  `http.response.body` as it is sent;
- a handler whose result is an async generator (an `async def` with `yield`, or any
  handler returning one): each item it yields (bytes or str) is a piece of the body.
  When the first item is a dict with `statusCode`, it is the response's head (status,
  `headers`, `multiValueHeaders`, `cookies`), as in Lambda's HTTP integration response
  stream; without one the head is 200 with `content-type: application/octet-stream`, as
  a Function URL's response stream has it. Where the source cannot stream (the Invoke
  API, a Runtime API call without streaming), the items are gathered and the result is
  the API Gateway response they stand for: `statusCode`, `headers`, `cookies`, `body`
  (text, or base64 with `isBase64Encoded` when it is not UTF-8).

When the stream has been used, the handler's result is `STREAMED`: the source's `reply`
then only finishes (or, on an error after the head went out, aborts) what was sent.

A stream whose caller can go away mid-answer (the HTTP front's) may also offer
`disconnected() -> asyncio.Future[None]`, done once the caller is gone; the ASGI bridge
turns it into `http.disconnect`. It is optional (`Disconnectable`): writes to a caller
that is gone are dropped either way.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncGenerator, Awaitable
from typing import Any, Protocol

from worker.errors import LambdaError

#: Headers as the runtime carries them: lower-case names, raw values.
Headers = list[tuple[bytes, bytes]]

#: The head of a stream whose handler gave none (a Function URL's default).
DEFAULT_CONTENT_TYPE = b"application/octet-stream"


class ResponseStream(Protocol):
    """Where a streamed answer goes, piece by piece. Called on the loop only."""

    @property
    def started(self) -> bool:
        """Whether the head has been sent (after it, an error can only abort)."""

    def start(self, status: int, headers: Headers) -> None:
        """The response's head. Called once, before any `write`."""

    def write(self, chunk: bytes) -> Awaitable[None] | None:
        """Send a piece of the body. Returns an awaitable when the caller reads slower
        than the body is produced: await it before writing more (flow control)."""

    def end(self) -> None:
        """The body is complete."""


class Disconnectable(Protocol):
    """A stream that can tell when its caller has gone away (optional, see above)."""

    def disconnected(self) -> asyncio.Future[None]:
        """Done once the caller is gone (the same future on every call)."""


class _Streamed:
    """The result of an invocation whose answer went out through its `ResponseStream`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "STREAMED"


STREAMED = _Streamed()


def stream_of(context: Any) -> ResponseStream | None:
    """The stream of the invocation a handler's context belongs to, or None (no stream, or
    a context made outside the runtime). The context is a view of its job."""
    job = getattr(context, "_job", None)
    return None if job is None else job.stream()


async def pump(items: AsyncGenerator[Any, None], stream: ResponseStream | None) -> Any:
    """Run a handler's async generator to its end: through `stream` (returns `STREAMED`),
    or gathered into an API Gateway response when there is none.

    The pool calls this right after a handler returned an async generator. An error
    before the head is sent is the handler's error as usual; after it, the source aborts
    what it sent. The generator is closed whatever happens (a deadline's cancellation
    included).
    """
    try:
        item = await _next(items)
        status, headers = 200, [(b"content-type", DEFAULT_CONTENT_TYPE)]
        cookies: list[bytes] = []
        if isinstance(item, dict) and "statusCode" in item:
            status, headers, cookies = _head(item)
            item = await _next(items)
        if stream is None:
            parts = []
            while item is not _END:
                parts.append(_piece(item))
                item = await _next(items)
            return _gathered(status, headers, cookies, b"".join(parts))
        stream.start(status, headers + [(b"set-cookie", c) for c in cookies])
        while item is not _END:
            chunk = _piece(item)
            if chunk:
                wait = stream.write(chunk)
                if wait is not None:
                    await wait
            item = await _next(items)
        stream.end()
        return STREAMED
    finally:
        await items.aclose()


_END = object()


async def _next(items: AsyncGenerator[Any, None]) -> Any:
    try:
        return await items.__anext__()
    except StopAsyncIteration:
        return _END


def _piece(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode()
    if isinstance(item, (bytearray, memoryview)):
        return bytes(item)
    raise LambdaError(
        "Runtime.MarshalError",
        f"A streamed item must be bytes or str, not {type(item).__name__}",
    )


def _head(item: dict[str, Any]) -> tuple[int, Headers, list[bytes]]:
    """Status, headers and cookies of a stream's head (Lambda's HTTP response prelude)."""
    try:
        status = int(item["statusCode"])
    except (TypeError, ValueError):
        status = 0
    if not 100 <= status <= 599:
        raise LambdaError("Runtime.MarshalError", f"Invalid statusCode {item['statusCode']!r}")
    headers: Headers = [
        (str(k).lower().encode("latin-1"), str(v).encode("latin-1"))
        for k, v in (item.get("headers") or {}).items()
    ]
    for k, values in (item.get("multiValueHeaders") or {}).items():
        name = str(k).lower().encode("latin-1")
        headers.extend((name, str(v).encode("latin-1")) for v in values)
    if not any(name == b"content-type" for name, _ in headers):
        headers.append((b"content-type", DEFAULT_CONTENT_TYPE))
    cookies = [str(c).encode("latin-1") for c in item.get("cookies") or ()]
    return status, headers, cookies


def _gathered(status: int, headers: Headers, cookies: list[bytes], body: bytes) -> dict[str, Any]:
    joined: dict[str, str] = {}
    for name, value in headers:
        key, text = name.decode("latin-1"), value.decode("latin-1")
        joined[key] = f"{joined[key]},{text}" if key in joined else text
    result: dict[str, Any] = {"statusCode": status, "headers": joined}
    if cookies:
        result["cookies"] = [c.decode("latin-1") for c in cookies]
    try:
        result["body"] = body.decode("utf-8")
        result["isBase64Encoded"] = False
    except UnicodeDecodeError:
        result["body"] = base64.b64encode(body).decode()
        result["isBase64Encoded"] = True
    return result
