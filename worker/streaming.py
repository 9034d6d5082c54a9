"""Streamed answers: a response that goes out as it is produced, on any source that can.

A source whose callers can take an answer in pieces (the HTTP front: chunked transfer
encoding; the Runtime API: its streaming response mode) gives its jobs a `ResponseStream`
through `Job.stream()`; a source that cannot returns None there, and whatever streams
is gathered and answered whole.

Two things stream:
- an ASGI app's response (`worker.sources.asgi`): `http.response.start`, then each
  `http.response.body` as it is sent;
- a plain handler that returns an async generator: each item it yields (bytes or str) is
  a piece of the body. When the first item is a dict with `statusCode`, it is the
  response's head (status, `headers`, `cookies`), as in Lambda's HTTP integration
  response stream.

When the stream has been used, the handler's result is `STREAMED`: the source's `reply`
then only finishes (or, on an error after the head went out, aborts) what was sent.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

#: Headers as the runtime carries them: lower-case names, raw values.
Headers = list[tuple[bytes, bytes]]


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


class _Streamed:
    """The result of an invocation whose answer went out through its `ResponseStream`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "STREAMED"


STREAMED = _Streamed()
