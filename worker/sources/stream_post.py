"""Lambda mode's streamed answers: the Runtime API's streaming response mode, as a `ResponseStream`.

With `WORKER_INVOKE_MODE=RESPONSE_STREAM` (the function behind a Function URL whose
InvokeMode is RESPONSE_STREAM, or API Gateway's streaming integration), an invocation
offers its handler a stream (`Job.stream()`). A streamed answer (an ASGI response sent in
several messages, a handler's async generator: `worker.streaming`) is then posted to
`/runtime/invocation/{id}/response` as it is produced, as AWS's runtimes do:

    POST …/response
    lambda-runtime-function-response-mode: streaming
    transfer-encoding: chunked
    content-type: application/vnd.awslambda.http-integration-response
    trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body

    {"statusCode":200,"headers":{…},"cookies":[…]} + 8 NUL bytes, then the body's chunks

For an HTTP event the body starts with that prelude (status, headers, cookies), which
the Function URL turns into the response's head; any other event's stream is the bare
body (`application/octet-stream`). An error after the head went out (the app failing
mid-body, the deadline, the size bound) ends the body with trailers: the error's type,
and its Lambda error JSON in base64.

A response that is not streamed is posted whole, as always. With the default
`BUFFERED`, nothing streams here (`Job.stream()` is None): a streamed body is gathered
and answered whole, since an API Gateway, an ALB or a buffered Function URL can take no
other answer.

`WORKER_MAX_STREAMED_RESPONSE` bounds a streamed answer (Lambda's 200 MiB): past it the
stream ends with a `Function.ResponseSizeTooLarge` trailer.
"""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING, Any

import orjson

from worker.config import Config
from worker.errors import LambdaError, response_too_large
from worker.sources.http_client import HttpClientError
from worker.sources.lambda_http import HTTP_KINDS
from worker.sources.runtime_api import NEXT, PREFIX, error_type_header, invocation_error
from worker.streaming import STREAMED, Headers

if TYPE_CHECKING:
    import asyncio

    from worker.sources.http_client import Response
    from worker.sources.runtime_api import _Invocation

log = logging.getLogger("worker.lambda")

#: The most a streamed answer may carry by default (bytes of body, prelude not counted):
#: Lambda's 200 MiB (`WORKER_MAX_STREAMED_RESPONSE`, `worker.config`).
MAX_STREAMED = Config.max_streamed_response

HTTP_INTEGRATION = b"application/vnd.awslambda.http-integration-response"
DELIMITER = b"\0" * 8
_HEAD = (
    b"lambda-runtime-function-response-mode: streaming\r\n"
    b"transfer-encoding: chunked\r\n"
    b"trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n"
    b"content-type: %s\r\n"
)
_LAST_CHUNK = b"0\r\n\r\n"
_TRAILERS = (
    b"0\r\nLambda-Runtime-Function-Error-Type: %s\r\nLambda-Runtime-Function-Error-Body: %s\r\n\r\n"
)


def prelude(status: int, headers: Headers) -> bytes:
    """The HTTP integration response's prelude: status, headers (repeats joined with ",",
    as a Function URL's headers are one value each) and cookies, then the 8 NULs."""
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        if key == "set-cookie":
            cookies.append(text)
        else:
            joined[key] = f"{joined[key]},{text}" if key in joined else text
    return orjson.dumps({"statusCode": status, "headers": joined, "cookies": cookies}) + DELIMITER


def error_trailers(error: LambdaError, request_id: str) -> bytes:
    """The last chunk of a stream that failed: the error's type and its JSON in base64."""
    body = base64.b64encode(orjson.dumps(error.body(request_id)))
    return _TRAILERS % (error_type_header(error.error_type).encode(), body)


class StreamPost:
    """One invocation's answer, posted to the Runtime API as it is produced.

    Nothing is sent until `start`: an answer that turns out whole is posted whole by the
    invocation as usual. After `start`, the invocation's `reply` only finishes what was
    sent (`finish`): the last chunk, or the error trailers.
    """

    __slots__ = ("ended", "error_type", "http", "invocation", "limit", "sent", "started")

    def __init__(self, invocation: _Invocation, limit: int = MAX_STREAMED) -> None:
        self.invocation = invocation
        self.limit = limit
        self.http = invocation.kind in HTTP_KINDS
        self.started = False
        self.ended = False
        self.sent = 0
        self.error_type: str | None = None

    def start(self, status: int, headers: Headers) -> None:
        """The request's head and, for an HTTP event, the prelude, in one write."""
        job = self.invocation
        self.started = True
        conn = job.conn
        if self.http:
            head = _HEAD % HTTP_INTEGRATION
            first = prelude(status, headers)
            body = b"%x\r\n%s\r\n" % (len(first), first)
        else:
            head, body = _HEAD % b"application/octet-stream", b""
        path = b"%s/invocation/%s/response" % (PREFIX, job.request_id.encode())
        request = b"POST %s HTTP/1.1\r\n%s%s\r\n" % (path, conn.host_header, head)
        # Should the connection break under the stream, what can still be said is that
        # the answer failed: a stream cannot be posted again.
        job.posted = _broken_stream(job.request_id)
        try:
            conn.send([request, body], job.replied)
        except HttpClientError as exc:
            self.ended = True
            job.replied.set_exception(exc)

    def write(self, chunk: bytes) -> asyncio.Future[None] | None:
        """A piece of the body: None, or a future to await before the next (the Runtime
        API reads slower than the body is produced)."""
        if self.ended or not chunk:
            return None  # finished or failed: what comes after is dropped
        job = self.invocation
        if job.replied.done():
            # The Runtime API answered before the end (a late or refused answer): it takes
            # nothing more of this stream.
            self.ended = True
            return None
        self.sent += len(chunk)
        if self.sent > self.limit:
            error = response_too_large(self.sent, self.limit)
            self.abort(error)
            raise error
        try:
            return job.conn.write([b"%x\r\n" % len(chunk), chunk, b"\r\n"])
        except HttpClientError:
            self.ended = True  # the poller sees the connection's failure on `replied`
            return None

    def end(self) -> None:
        """The body is complete: the last chunk, and the next `/next` pipelined behind it
        as behind a whole answer."""
        if self.ended:
            return
        self.ended = True
        self._last(_LAST_CHUNK)

    def abort(self, error: LambdaError) -> None:
        """End the stream with `error` in its trailers."""
        if self.error_type is None:
            self.error_type = error.error_type
        if self.ended:
            return
        self.ended = True
        log.warning(
            "streamed answer ends with an error in its trailers: %s: %s",
            error.error_type,
            error.message,
            extra={"requestId": self.invocation.request_id},
        )
        self._last(error_trailers(error, self.invocation.request_id))

    def disconnected(self) -> asyncio.Future[Response]:
        """Done once the Runtime API has answered: before the end, it takes no more (the
        ASGI bridge tells the app `http.disconnect`)."""
        return self.invocation.replied

    def finish(self, result: Any, error: LambdaError | None) -> str | None:
        """The invocation's outcome, once the head went out: end or abort the stream."""
        if error is not None:
            self.abort(error)
        else:
            if result is not STREAMED:
                # The stream is all the caller can have once it started: it ends there.
                log.warning("a handler returned a result after streaming its answer: dropped")
            self.end()
        return self.error_type

    def _last(self, data: bytes) -> None:
        job = self.invocation
        conn = job.conn
        if conn.closed or job.replied.done():
            return
        source = job.source
        try:
            if source.pipeline and not source.stopping:
                job.next = job.replied.get_loop().create_future()
                conn.send([data, conn.encode(b"GET", NEXT)], job.next)
            else:
                conn.write([data])
        except HttpClientError:
            job.next = None  # the poller sees the connection's failure on `replied`


def _broken_stream(request_id: str) -> tuple[bytes, bytes, bytes]:
    error = LambdaError(
        "Runtime.StreamError", "The connection to the Runtime API broke while streaming"
    )
    return (b"error", *invocation_error(error, request_id))
