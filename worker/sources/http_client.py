"""A lean HTTP/1.1 client connection on the loop: keep-alive, pipelined requests.

The Runtime API is a local HTTP server; a libcurl client (awslambdaric's) spends most of
an invocation's CPU in its HTTP layer. This is a Protocol with httptools' response parser:
one write per request (or one for several pipelined requests), one parse per response, and
no read timeout (a `/next` long poll may wait for hours).

A request whose body is written as it is produced (the Runtime API's streaming response
mode: chunked) goes out in pieces with `write`; `drain()` says when the server reads
slower than the body is produced.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from typing import cast

import httptools

from worker import httphead


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[bytes, bytes], body: bytes) -> None:
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body


class HttpClientError(ConnectionError):
    """The server broke the protocol or the connection."""


class ClientConnection(asyncio.Protocol):
    """One keep-alive connection. Requests may be pipelined: responses come back in the
    order the requests were written, and each goes to its own waiter."""

    def __init__(self, host: str, port: int) -> None:
        self.host_header = f"host: {host}:{port}\r\n".encode()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self._waiters: deque[asyncio.Future[Response]] = deque()
        self._headers: dict[bytes, bytes] = {}
        self._body: list[bytes] = []
        self._closed = False
        #: Set while the transport's buffer is over its high-water mark (a progressively
        #: written request outruns the server); done once it drains or the connection ends.
        self._drained: asyncio.Future[None] | None = None
        #: Between httptools' first and last callback of a response: its bytes go on to
        #: httptools, not to the fast path.
        self._parsing = False
        self.scan = httphead.scan_response

    @classmethod
    async def open(cls, host: str, port: int) -> ClientConnection:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(lambda: cls(host, port), host, port)
        return proto

    @property
    def closed(self) -> bool:
        return self._closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._fail(HttpClientError(f"connection lost: {exc or 'closed by the server'}"))
        self.resume_writing()  # a writer waiting for the buffer to drain waits no more

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def data_received(self, data: bytes) -> None:
        scan = self.scan
        if scan is not None and not self._parsing:
            # Whole, plain responses are read in one call (a /next's six headers were six
            # callbacks); the first that is not, and all after it, go to httptools.
            start = 0
            while not self._closed:
                response = scan(data, start, sys.maxsize)
                if response is None:
                    break
                status, headers, body, start = response
                self._complete(Response(status, dict(headers), body), True)
                if start == len(data):
                    return
            if self._closed:
                return
            if start:
                data = data[start:]
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpClientError(f"malformed response: {exc}"))
            self.close()

    def on_message_begin(self) -> None:
        self._parsing = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._parsing = False
        response = Response(self.parser.get_status_code(), self._headers, b"".join(self._body))
        self._headers = {}
        self._body = []
        self._complete(response, self.parser.should_keep_alive())

    def _complete(self, response: Response, keep_alive: bool) -> None:
        waiter = self._waiters.popleft() if self._waiters else None
        if waiter is not None and not waiter.done():
            waiter.set_result(response)
        if not keep_alive:
            self.close()

    def _fail(self, exc: Exception) -> None:
        """Every request still waiting for its response gets `exc`."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(exc)

    def close(self) -> None:
        self._closed = True
        if self.transport is not None:
            self.transport.close()

    async def request(
        self, method: bytes, path: bytes, body: bytes = b"", headers: bytes = b""
    ) -> Response:
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.send([self.encode(method, path, body, headers)], waiter)
        return await waiter

    def encode(self, method: bytes, path: bytes, body: bytes = b"", headers: bytes = b"") -> bytes:
        """One request's bytes, for `send`."""
        length = b"content-length: %d\r\n" % len(body) if body or method == b"POST" else b""
        return b"%s %s HTTP/1.1\r\n%s%s%s\r\n%s" % (
            method,
            path,
            self.host_header,
            length,
            headers,
            body,
        )

    def send(self, requests: list[bytes], *waiters: asyncio.Future[Response]) -> None:
        """Write encoded requests now, in one write (no copy of a large body to join
        them); `waiters` get their responses in order (or the connection's failure).

        For a caller that is not a coroutine (a slot answering an invocation writes the
        answer at once, instead of waking the poller to write it)."""
        if self._closed or self.transport is None:
            raise HttpClientError("connection is closed")
        self._waiters.extend(waiters)
        self.transport.writelines(requests)

    def write(self, parts: list[bytes]) -> asyncio.Future[None] | None:
        """More of a request already begun by `send` (a chunked body's pieces), in one
        write: None, or a future to await before writing more, done once the server has
        read enough (flow control) or the connection ended."""
        if self._closed or self.transport is None:
            raise HttpClientError("connection is closed")
        self.transport.writelines(parts)
        return self._drained
