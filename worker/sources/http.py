"""The HTTP source: an asyncio.Protocol with httptools, the Invoke API and proxy mode.

Not an ASGI stack: a request is parsed in `data_received`, becomes a Job, and goes
through a bounded lane to a slot; the slot's answer is written back in request order
(pipelining). Writing from the slots, after the loop's reads, batches the system calls.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote

import httptools
import orjson

from worker import httphead, marshal
from worker.classify import classify
from worker.config import Config
from worker.context import ClientContext
from worker.errors import THROTTLED, LambdaError, response_too_large, too_many_requests
from worker.httpmsg import HttpRequest, HttpResponse
from worker.jobs import Job, new_request_id
from worker.sources import apigw
from worker.sources.routes import Templates
from worker.streaming import Headers, ResponseStream

if TYPE_CHECKING:
    from worker.handler import Handler
    from worker.offload import Offload

log = logging.getLogger("worker.http")

INVOKE_PREFIX = b"/2015-03-31/functions/"
INVOKE_SUFFIX = b"/invocations"

_REASONS = {
    100: b"Continue",
    200: b"OK",
    202: b"Accepted",
    204: b"No Content",
    400: b"Bad Request",
    403: b"Forbidden",
    404: b"Not Found",
    408: b"Request Timeout",
    410: b"Gone",
    413: b"Payload Too Large",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
}
# Every status a web app may answer has its reason phrase; ours keep theirs.
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus} | _REASONS
_STATUS_LINES = {code: b"HTTP/1.1 %d %s\r\n" % (code, r) for code, r in _REASONS.items()}
_JSON = b"content-type: application/json\r\n"
#: The Invoke API's headers that reach the job, and the invocation type of an Invoke that
#: sends no X-Amz-Invocation-Type (compared by identity: the usual case, one test).
_INVOKE_HEADERS = frozenset(
    (
        b"x-amz-invocation-type",
        b"x-amz-client-context",
        b"x-amzn-trace-id",
        b"x-amz-durable-execution-name",
    )
)
_REQUEST_RESPONSE = b"RequestResponse"
#: Framing headers are ours to set; a handler's values for them are dropped.
_OWN_HEADERS = frozenset(("content-length", "connection", "date", "transfer-encoding"))
_OWN_HEADER_BYTES = frozenset(h.encode() for h in _OWN_HEADERS)
#: How much of a streamed answer waits in memory while an earlier answer on its
#: connection is still owed; past it the stream's writer waits (flow control).
STREAM_BUFFER = 64 * 1024
#: A streamed answer's framing: its body is chunked, has a content-length (what is left
#: of it), has no body (HEAD, 204, 304), or ends with the connection (HTTP/1.0).
_CHUNKED = -1
_BODYLESS = -2
_UNTIL_CLOSE = -3
_LAST_CHUNK = b"0\r\n\r\n"


def status_line(code: int) -> bytes:
    return _STATUS_LINES.get(code) or b"HTTP/1.1 %d Status\r\n" % code


class Front:
    """What every connection of one worker process shares: the pool, settings, state.

    With a web app as the handler (`handler.app_kind`), proxy-mode requests reach it as
    `HttpRequest`s (`NativeHttpProtocol`), routed by their path's template; decided here,
    once: `protocol` is the connections' class.
    """

    def __init__(
        self,
        config: Config,
        submit: Callable[[Job], bool],
        *,
        metrics_text: Callable[[], str],
        pid: int,
        stats_json: Callable[[], bytes] | None = None,
        handler: Handler | None = None,
    ) -> None:
        self.config = config
        self.submit = submit
        #: Where an Event invocation of an offload route goes (`worker.offload`), when set.
        self.offload: Offload | None = None
        self.native = handler is not None and handler.app_kind is not None
        self.templates = Templates(handler.app) if handler is not None and self.native else None
        self.protocol: type[HttpProtocol] = NativeHttpProtocol if self.native else HttpProtocol
        self.metrics_text = metrics_text
        self.stats_json = stats_json
        self.pid = pid
        self.ready = True
        self.max_connections = config.connections_per_process
        self.refused_connections = 0
        # SIGTERM: new requests are refused (503), then connections close.
        self._draining = False
        # Recycling: requests are still served, each connection closes after its answer
        # (its client reconnects to the worker that replaces this one).
        self._recycling = False
        #: Connections close after their current answer (draining or recycling). A plain
        #: attribute, kept in step by the two setters: every request reads it.
        self.winding_down = False
        self.connections: set[HttpProtocol] = set()
        self.tasks: set[asyncio.Task[None]] = set()  # admin reads under way
        self.date = b""
        self.tick()

    def tick(self) -> None:
        """Refresh the cached Date header and expire slow or idle connections (the worker
        process calls it every half second).

        A connection with no deadline that is idle has answered everything since the last
        tick: its keep-alive timeout starts now, so it ends up to one tick later than
        `WORKER_KEEPALIVE_TIMEOUT` says. Starting it at each answer cost every request a
        clock read.
        """
        self.date = b"date: " + formatdate(usegmt=True).encode() + b"\r\n"
        now = time.monotonic()
        keepalive = self.config.keepalive_timeout
        for conn in list(self.connections):
            deadline = conn.deadline
            if not deadline:
                if conn.idle:
                    conn.deadline = now + keepalive
            elif now > deadline:
                conn.expire()

    @property
    def draining(self) -> bool:
        return self._draining

    @draining.setter
    def draining(self, value: bool) -> None:
        self._draining = value
        self.winding_down = value or self._recycling

    @property
    def recycling(self) -> bool:
        return self._recycling

    @recycling.setter
    def recycling(self, value: bool) -> None:
        self._recycling = value
        self.winding_down = value or self._draining

    def close_idle(self, used_only: bool = False) -> None:
        """Close connections with nothing in progress. `used_only`: spare the ones just
        accepted, whose first request is on its way (recycling serves it, then closes)."""
        for conn in list(self.connections):
            if conn.idle and (conn.used or not used_only):
                conn.close()


class _Ready:
    """An answer made at once (an error, a 429, an internal endpoint): its place in the
    connection's answer order."""

    __slots__ = ("close", "data")

    answer = "ready"  # never a stream (see _Exchange.answer)

    def __init__(self, data: bytes, close: bool) -> None:
        self.data: bytes | None = data
        self.close = close


class _Exchange(Job):
    """A request that became a job: its place in the connection's answer order, and the
    answer the slot's outcome becomes (`reply`). `answer` is "invoke", "event", "proxy"
    (an API Gateway event), "native" (an `HttpRequest` to a web app), or "stream" once a
    streamed answer has started.

    Made as a Job (by position, see Job) and then told its connection: one object per
    request, not a job and an exchange.

    A proxy exchange is also its request's `ResponseStream` (a handler returning an async
    generator streams): the head and the pieces of a streamed answer are written as they
    come while it is at the head of its connection's line, and wait in its `out` (up to
    `STREAM_BUFFER`) while an earlier answer is still owed. A web app's requests are
    `_AppExchange`s; a proxy exchange becomes one when its stream starts, so that the
    plain paths' `reply` has nothing more to tell apart.
    """

    # `execution`: the X-Amz-Durable-Execution-Name header, set only when sent (read
    # with getattr by `worker.durable`).
    __slots__ = ("answer", "close", "data", "execution", "head", "out", "proto")

    proto: HttpProtocol
    answer: str
    head: bool
    close: bool
    data: bytes | None
    out: _Out  # set when a streamed answer starts
    execution: str  # set only when the invoke named its durable execution

    def reply(self, result: Any, error: LambdaError | None) -> str | None:
        """Turn a slot's outcome into the bytes of the answer; returns the error type sent."""
        answer = self.answer
        proto = self.proto
        if answer == "event":
            if error is not None:
                log.error("event invocation failed: %s: %s", error.error_type, error.message)
            return error.error_type if error else None
        close = self.close or proto.front.winding_down
        rid = _request_id(self.request_id)
        if answer == "invoke":
            if error is None:
                # The usual answer, in line: each call saved here is saved on every request.
                try:
                    data = marshal.dumps(result)
                except LambdaError as exc:
                    error = exc
                else:
                    if len(data) <= proto.config.max_payload:
                        self.data = proto._response(200, data, close, rid)
                        proto._flush()
                        return None
                    error = response_too_large(len(data), proto.config.max_payload)
            proto._invoke_error(self, error, rid, close)
        else:
            error = proto._proxy_answer(self, result, error, rid, close)
        proto._flush()
        return error.error_type if error else None

    # -- ResponseStream ----------------------------------------------------------------

    def stream(self) -> ResponseStream | None:
        return self if self.answer == "proxy" else None

    @property
    def started(self) -> bool:
        return self.answer == "stream"

    def start(self, status: int, headers: Headers) -> None:
        self.proto._start_stream(self, status, headers)

    def write(self, chunk: bytes) -> Awaitable[None] | None:
        return self.proto._write_stream(self, chunk)

    def end(self) -> None:
        self.proto._end_stream(self)

    def disconnected(self) -> asyncio.Future[None]:
        """Done once the client is gone (`worker.streaming.Disconnectable`)."""
        return self.proto.lost()

    # -- answered later (a durable execution that let its slot go) ----------------------

    def park(self) -> Callable[[int, Any, LambdaError | None], None] | None:
        """Let the slot finish without answering: the answer comes through the returned
        `settle(status, result, error)` (200: as a slot's reply; 202: accepted, `result`
        the body). None for a request that cannot wait so (an event, a web app's)."""
        if self.answer != "invoke" and self.answer != "proxy":
            return None
        self.__class__ = _Parked
        return self.settle

    def settle(self, status: int, result: Any, error: LambdaError | None) -> None:
        if status == 200:
            _Exchange.reply(self, result, error)
            return
        proto = self.proto
        close = self.close or proto.front.winding_down
        body = marshal.dumps(result)
        rid = _request_id(self.request_id)
        self.data = proto._response(status, body, close, rid, head=self.head)
        proto._flush()


class _Parked(_Exchange):
    """A parked request (`park`): its slot's reply is not its answer."""

    __slots__ = ()

    def reply(self, result: Any, error: LambdaError | None) -> str | None:
        return None


class _AppExchange(_Exchange):
    """A web app's request ("native"), or any streamed answer ("stream"): its `reply`
    takes an `HttpResponse` or finishes the stream. Same layout as `_Exchange`, so a proxy
    exchange whose stream starts becomes one."""

    __slots__ = ()

    def reply(self, result: Any, error: LambdaError | None) -> str | None:
        proto = self.proto
        close = self.close or proto.front.winding_down
        error = proto._app_answer(self, result, error, _request_id(self.request_id), close)
        proto._flush()
        return error.error_type if error else None

    def stream(self) -> ResponseStream | None:
        return self


class _Out:
    """A streamed answer's bytes on their way out."""

    __slots__ = ("held", "left", "parts", "waiter")

    def __init__(self, head: bytes, left: int) -> None:
        self.parts: list[bytes] | None = [head]  # not yet written; None once it ended
        self.held = len(head)  # how many bytes `parts` holds
        self.left = left  # body bytes due under its content-length, or one of _CHUNKED…
        self.waiter: asyncio.Future[None] | None = None  # its writer's (flow control)


#: What a connection owes, in request order: answers made at once, and requests in slots.
_Owed = _Ready | _Exchange


class _Refuse(Exception):
    """Stop parsing and answer with this status (oversize, bad headers)."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type


class HttpProtocol(asyncio.Protocol):
    """One client connection: HTTP/1.1 with keep-alive and pipelining."""

    def __init__(self, front: Front) -> None:
        self.front = front
        self.config = front.config
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.pending: deque[_Owed] = deque()
        self.peer = "127.0.0.1"
        self.deadline = 0.0
        self.paused_reading = False
        self.paused_writing = False
        self.ending = False
        self.used = False  # a request has begun on it (a fresh one is about to send one)
        self._closing = False
        #: Between httptools' first and last callback of a request: its bytes must go on to
        #: httptools, not to the fast path.
        self.parsing = False
        self.scan = httphead.scan
        self.streams = 0  # streamed answers started and not yet ended on this connection
        #: Requests the environment had no room for while this connection's own earlier
        #: ones held slots: in line, unsubmitted, reading paused until answers drain.
        self.held: deque[_Exchange] = deque()
        self._admitting = False
        #: Chunked bodies: inside a chunk whose size line this read carried, and the body
        #: bytes seen since that line (`_check_chunk` reads the size back from them).
        self.chunk_open = False
        self.chunk_seen = -1
        self._lost: asyncio.Future[None] | None = None  # made when a web app asks
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.body: list[bytes] = []
        self.body_len = 0

    # -- connection --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is duck-typed
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = str(peer[0])
        front = self.front
        if len(front.connections) >= front.max_connections:
            # Past the bound every open connection costs memory and a descriptor: refuse
            # at once, politely, rather than letting idle or slow clients pile up.
            front.refused_connections += 1
            body = b'{"errorType":"ServiceException","errorMessage":"Too many open connections"}'
            self.transport.write(self._response(503, body, True, extra=b"retry-after: 1\r\n"))
            self._closing = True
            self.transport.close()
            return
        front.connections.add(self)
        self.deadline = time.monotonic() + self.config.header_timeout

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.connections.discard(self)
        self.transport = None
        self._closing = True
        if self.streams or self._lost is not None:
            self._gone()

    def lost(self) -> asyncio.Future[None]:
        """A future done once this connection is gone (a web app's `http.disconnect`)."""
        lost = self._lost
        if lost is None:
            lost = self._lost = asyncio.get_running_loop().create_future()
            if self.transport is None:
                lost.set_result(None)
        return lost

    def _gone(self) -> None:
        """The client went away: streams' writers stop waiting (their writes are dropped)."""
        lost = self._lost
        if lost is not None and not lost.done():
            lost.set_result(None)
        for owed in self.pending:
            if owed.answer == "stream":
                _wake(cast(_Exchange, owed).out)

    @property
    def idle(self) -> bool:
        return not self.pending and not self.url and not self.headers

    def close(self) -> None:
        if self.transport is not None and not self._closing:
            self._closing = True
            self.transport.close()

    def expire(self) -> None:
        """A deadline passed: slow headers or body get 408, an idle connection just ends.

        Answers still owed on the connection go out first; the 408 follows them in order
        and closes the connection, and nothing more is read from it meanwhile.
        """
        self.deadline = 0.0
        if self.idle:
            self.close()
            return
        self._end_with(408, ("RequestTimeout", "Request not received in time"))

    def _end_with(self, status: int, error: tuple[str, str]) -> None:
        """Answer `status` and end the connection: the answers owed before it go out first,
        in order, then this one, then the close; nothing more is read meanwhile."""
        self.ending = True
        if self.transport is not None:
            self.transport.pause_reading()
            self.paused_reading = True
        self._answer_now(status, error=error, close=True)

    def pause_writing(self) -> None:
        # The client reads slowly: stop reading its requests until it catches up.
        self.paused_writing = True
        self._set_reading()

    def resume_writing(self) -> None:
        self.paused_writing = False
        self._set_reading()
        if self.streams and self.pending and self.pending[0].answer == "stream":
            _wake(cast(_Exchange, self.pending[0]).out)

    def _set_reading(self) -> None:
        if self.transport is None or self.ending:
            return  # a connection that timed out is not read again
        want_pause = (
            self.paused_writing or len(self.pending) >= self.config.max_pipeline or bool(self.held)
        )
        if want_pause and not self.paused_reading:
            self.paused_reading = True
            self.transport.pause_reading()
        elif not want_pause and self.paused_reading:
            self.paused_reading = False
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.ending:
            return  # read before the pause took hold: nothing after the last answer counts
        scan = self.scan
        if scan is not None and not self.parsing:
            # Whole, plain requests are read in one call; the first that is not (cut off,
            # chunked, unusual in any way) and everything after it go to httptools.
            config = self.config
            start = 0
            while not self._closing:
                request = scan(
                    data, start, config.max_header_bytes, config.max_headers, config.max_payload
                )
                if request is None:
                    break
                method, url, headers, body, start = request
                self.used = True
                self._request(method, url, headers, body, True, "1.1")
                if start == len(data):
                    return
            if self._closing:
                return  # answered with a close: nothing more is read from it
            if start:
                data = data[start:]
        try:
            self.chunk_seen = -1
            self.parser.feed_data(data)
            if self.chunk_open and self.chunk_seen >= 0:
                self._check_chunk(data)
        except _Refuse as refuse:
            self._refuse(refuse)
        except httptools.HttpParserUpgrade:
            pass  # no upgrades here: the request was answered as a plain request
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Refuse):
                self._refuse(cause)
            else:
                log.error("request handling failed", exc_info=cause or exc)
                self._end_with(500, ("ServiceException", "Internal error"))
        except httptools.HttpParserError as exc:
            self._end_with(400, ("BadRequest", f"Malformed HTTP request: {exc}"))

    def _refuse(self, refuse: _Refuse) -> None:
        self._end_with(refuse.status, (refuse.error_type, str(refuse)))

    # -- parser callbacks --------------------------------------------------------

    def on_message_begin(self) -> None:
        self.used = True
        self.parsing = True
        self._reset()
        self.deadline = time.monotonic() + self.config.header_timeout

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.header_bytes += len(url)
        if self.header_bytes > self.config.max_header_bytes:
            raise _Refuse(431, "RequestHeaderFieldsTooLarge", "Request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self.headers
        size = self.header_bytes = self.header_bytes + len(name) + len(value) + 4
        config = self.config
        if size > config.max_header_bytes:
            raise _Refuse(431, "RequestHeaderFieldsTooLarge", "Request headers too large")
        if len(headers) >= config.max_headers:
            raise _Refuse(431, "RequestHeaderFieldsTooLarge", "Too many request headers")
        headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        version = self.parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise _Refuse(505, "HTTPVersionNotSupported", f"HTTP/{version} is not supported")
        limit = self.config.max_payload
        expect_continue = False
        for name, value in self.headers:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    raise _Refuse(400, "BadRequest", "Invalid Content-Length") from None
                if length > limit:
                    # Refused before the body is read: it never enters memory.
                    raise _Refuse(413, "RequestEntityTooLargeException", _too_large(limit))
            elif name == b"expect" and value.lower() == b"100-continue":
                expect_continue = True
        if expect_continue and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.deadline = time.monotonic() + self.config.body_timeout

    def on_chunk_header(self) -> None:
        self.chunk_open = True
        self.chunk_seen = 0

    def on_chunk_complete(self) -> None:
        self.chunk_open = False

    def _check_chunk(self, data: bytes) -> None:
        """A read ended inside a chunk whose size line it carried: a size past what the
        payload limit leaves is refused now (413), not after the body timeout, since the
        bytes it announces may never come. httptools does not tell a chunk's size; the
        size line ends where the chunk's bytes seen since it begin."""
        end = len(data) - self.chunk_seen - 2  # the size line's CRLF
        line = data[data.rfind(b"\n", 0, end) + 1 : end]
        try:
            size = int(line.partition(b";")[0].strip(), 16)
        except ValueError:
            return  # a size line split over reads: the body's own limit still holds
        limit = self.config.max_payload
        if self.body_len - self.chunk_seen + size > limit:
            raise _Refuse(413, "RequestEntityTooLargeException", _too_large(limit))

    def on_body(self, body: bytes) -> None:
        if self.chunk_seen >= 0:
            self.chunk_seen += len(body)
        self.body_len += len(body)
        if self.body_len > self.config.max_payload:
            raise _Refuse(
                413, "RequestEntityTooLargeException", _too_large(self.config.max_payload)
            )
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.parsing = False
        if self._closing:
            return  # read after the answer that closes the connection: never admitted
        parser = self.parser
        body = b"".join(self.body) if self.body else b""
        url = self.url
        self.url = b""
        if url[:1] != b"/":
            url = _origin_form(url)
        headers = self.headers
        self.headers = []
        self._request(
            parser.get_method(),
            url,
            headers,
            body,
            parser.should_keep_alive(),
            parser.get_http_version(),
        )

    def _request(
        self,
        method: bytes,
        url: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        keep_alive: bool,
        version: str,
    ) -> None:
        """One whole request, from httptools or the fast path: to its endpoint."""
        close = not keep_alive or self.front.winding_down
        self.deadline = 0.0
        head = method == b"HEAD"
        path = url.partition(b"?")[0]
        if method == b"POST" and path.startswith(INVOKE_PREFIX) and path.endswith(INVOKE_SUFFIX):
            # Whichever function the path names: this service runs one.
            self._invoke(headers, body, close)
        elif not (
            path.startswith(b"/_worker/")
            and method in (b"GET", b"HEAD")
            and self._internal(path, head, close)
        ):
            self._proxy(method, url, headers, body, version, head, close)
        if self.paused_reading or len(self.pending) >= self.config.max_pipeline:
            self._set_reading()

    # -- endpoints -----------------------------------------------------------------

    def _internal(self, path: bytes, head: bool, close: bool) -> bool:
        """The load balancer's checks, on the service port. The operator's endpoints
        (metrics, stats, dashboard, executions) have their own listener (`worker.admin`)."""
        front = self.front
        if path == b"/_worker/health":
            body = b'{"status":"ok","pid":%d}' % front.pid
            self._answer_now(200, body=body, head=head, close=close)
        elif path == b"/_worker/ready":
            if front.ready and not front.draining:
                self._answer_now(200, body=b'{"status":"ready"}', head=head, close=close)
            else:
                state = b"draining" if front.draining else b"initializing"
                self._answer_now(503, body=b'{"status":"%s"}' % state, head=head, close=close)
        else:
            return False
        return True

    def _invoke(self, headers: list[tuple[bytes, bytes]], body: bytes, close: bool) -> None:
        # `winding_down` first: a plain attribute, False but while draining or recycling.
        if self.front.winding_down and self.front.draining:
            return self._answer_now(
                503, error=("ServiceException", "The service is shutting down"), close=True
            )
        invocation_type = _REQUEST_RESPONSE
        client_context = None
        trace_id = None
        execution = None
        for key, value in headers:
            if key not in _INVOKE_HEADERS:  # one look-up for the many that are none of them
                continue
            if key == b"x-amz-invocation-type":
                invocation_type = value
            elif key == b"x-amz-client-context":
                client_context = _client_context(value)
            elif key == b"x-amzn-trace-id":
                trace_id = value.decode("latin-1")
            else:
                execution = value.decode("utf-8", "replace")
        try:
            event = marshal.loads(body)
        except orjson.JSONDecodeError as exc:
            return self._answer_now(
                400,
                error=(
                    "InvalidRequestContentException",
                    f"Could not parse request body into json: {exc}",
                ),
                close=close,
            )
        answer = "invoke"
        if invocation_type is not _REQUEST_RESPONSE:  # no header: the usual, one test
            if invocation_type == b"DryRun":
                return self._answer_now(204, body=b"", close=close)
            if invocation_type == b"Event":
                answer = "event"
        request_id = new_request_id()
        # The event's own kind and route (an SQS batch, an API call, a direct "action")
        # decide its lane, whatever function name the caller used.
        what, route = classify.kind_route(body)
        # By position (see Job): reply, request id, size, deadline, kind, route, trace id,
        # client context, identity, invoked ARN, tenant id, raw bytes.
        job = _Exchange(
            event,
            None,
            request_id,
            len(body),
            None,
            what,
            route or what,
            trace_id,
            client_context,
            None,
            None,
            None,
            body,
        )
        if execution is not None:
            job.execution = execution
        self._admit(job, answer, False, close)

    def _proxy(
        self,
        method: bytes,
        url: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        version: str,
        head: bool,
        close: bool,
    ) -> None:
        if self.front.winding_down and self.front.draining:
            return self._answer_now(
                503, error=("ServiceException", "The service is shutting down"), close=True
            )
        request_id = new_request_id()
        verb = method.decode("latin-1")
        # By position, as the Invoke path (see Job): this runs for every request.
        event = apigw.build_event(verb, url, headers, body, self.peer, request_id, version)
        route = verb + " " + event["rawPath"]
        # The caller's X-Ray header is the invocation's trace id, as API Gateway passes it.
        trace = event["headers"].get("x-amzn-trace-id")
        job = _Exchange(event, None, request_id, len(body), None, "apigw-http", route, trace)
        self._admit(job, "proxy", head, close)

    def _admit(self, job: _Exchange, answer: str, head: bool, close: bool) -> None:
        """Give the job its place in the answer order and submit it.

        Refused with nothing of this connection's ahead of it, the environment is full:
        429 at once. Refused behind this connection's own unanswered requests, it is the
        client's pipelining that fills the lane, not a full environment: the job waits,
        unsubmitted and in its place, reading pauses, and it is submitted again as the
        answers ahead of it go out (`_admit_held`)."""
        job.proto = self
        job.answer = answer
        job.head = head
        job.close = close
        job.data = None
        # In line before submitting: a source may answer at once (an emulator whose runtime
        # failed its init does), and the answer must find its place.
        pending = self.pending
        pending.append(job)
        held = self.held
        if not held:
            offload = self.front.offload
            if answer == "event" and offload is not None and offload.take(job, self._offloaded):
                return  # its 202 once SQS has it (`_offloaded`)
            if self.front.submit(job):
                if answer == "event":
                    self._queued(job)
                return
            if len(pending) == 1:
                pending.pop()
                self._throttle(head=head, close=close)
                return
        held.append(job)
        self._set_reading()

    def _queued(self, job: _Exchange) -> None:
        """An `Event` invocation was accepted: the caller is told at once (202); the
        outcome only reaches the logs."""
        job.data = self._response(202, b"", job.close, _request_id(job.request_id))
        self._flush()

    def _offloaded(self, job: Job, sent: bool) -> None:
        """An offload send ended: 202 once the queue has the event; if it could not take
        it, the event runs here, as any other (202 once a lane takes it, else 429)."""
        exchange = cast(_Exchange, job)
        if sent or self.front.submit(exchange):
            self._queued(exchange)
            return
        error_type, message = _throttled()
        body = orjson.dumps({"errorType": error_type, "errorMessage": message})
        exchange.data = self._response(429, body, exchange.close, extra=b"retry-after: 1\r\n")
        self._flush()

    def _admit_held(self) -> None:
        """Submit held requests, in order, while the environment takes them; one that
        reaches the head of the line and is still refused gets its 429 there."""
        held, submit = self.held, self.front.submit
        self._admitting = True
        try:
            while held and self.transport is not None:
                job = held[0]
                if submit(job):
                    held.popleft()
                    if job.answer == "event":
                        self._queued(job)
                    continue
                if self.pending[0] is not job:
                    return  # this connection's earlier requests still run: wait for them
                held.popleft()
                error_type, message = _throttled()
                body = orjson.dumps({"errorType": error_type, "errorMessage": message})
                extra = b"retry-after: 1\r\n"
                job.data = self._response(429, body, job.close, extra=extra, head=job.head)
                self._flush()
        finally:
            self._admitting = False
        self._set_reading()

    # -- answers -------------------------------------------------------------------

    def _invoke_error(
        self, exchange: _Exchange, error: LambdaError, rid: bytes, close: bool
    ) -> None:
        if error.error_type == THROTTLED:
            self._shed(exchange, error, rid, close)
            return
        # A function error is still a 200 for the Invoke API, flagged by this header.
        data = orjson.dumps(error.body(exchange.request_id))
        extra = rid + b"x-amz-function-error: Unhandled\r\n"
        exchange.data = self._response(200, data, close, extra)

    def _proxy_answer(
        self,
        exchange: _Exchange,
        result: Any,
        error: LambdaError | None,
        rid: bytes,
        close: bool,
    ) -> LambdaError | None:
        head = exchange.head
        if error is None:
            try:
                if not (isinstance(result, dict) and "statusCode" in result):
                    # A bare value: API Gateway's rule is a 200 with it as JSON.
                    data = marshal.dumps(result)
                    exchange.data = self._response(200, data, close, extra=rid, head=head)
                    return None
                status, headers, data = apigw.to_response(result)
                extra = rid + b"".join(
                    f"{k}: {v}\r\n".encode("latin-1", "replace")
                    for k, v in headers
                    if k.lower() not in _OWN_HEADERS
                )
                exchange.data = self._response(
                    status, data, close, extra=extra, head=head, ctype=b""
                )
                return None
            except LambdaError as exc:
                error = exc
        return self._proxy_error(exchange, error, rid, close)

    def _proxy_error(
        self, exchange: _Exchange, error: LambdaError, rid: bytes, close: bool
    ) -> LambdaError:
        if error.error_type == THROTTLED:
            return self._shed(exchange, error, rid, close)
        # API Gateway's answer when the integration fails (it sends no function-error
        # header: that is the Invoke API's); details go to the log only.
        log.error("proxy invocation failed: %s: %s", error.error_type, error.message)
        exchange.data = self._response(
            502, b'{"message":"Internal Server Error"}', close, extra=rid, head=exchange.head
        )
        return error

    # -- web apps and streamed answers ---------------------------------------------------

    def _app_answer(
        self,
        exchange: _Exchange,
        result: Any,
        error: LambdaError | None,
        rid: bytes,
        close: bool,
    ) -> LambdaError | None:
        """A web app's answer (an `HttpResponse`), or the end of a streamed one."""
        if exchange.answer == "stream":
            return self._stream_outcome(exchange, error, rid, close)
        if error is None:
            if type(result) is HttpResponse:
                try:
                    data = self._app_response(
                        result.status, result.headers, result.body, close, rid, exchange.head
                    )
                except (TypeError, ValueError):  # not bytes where bytes belong
                    data = None
                if data is not None:
                    exchange.data = data
                    return None
                error = LambdaError("Runtime.MarshalError", "Invalid HTTP response")
            else:
                error = LambdaError(
                    "Runtime.MarshalError",
                    f"A web app's answer must be an HttpResponse, not {type(result).__name__}",
                )
        return self._proxy_error(exchange, error, rid, close)

    def _app_response(
        self, status: int, headers: Headers, body: bytes, close: bool, rid: bytes, head: bool
    ) -> bytes | None:
        """A whole answer with the app's headers (framing ones are ours: a HEAD answer keeps
        the app's content-length, the length its GET would have); None when a header
        holds a line break. Header names and values are bytes, the status an int."""
        own = _OWN_HEADER_BYTES
        length = len(body)
        lines = []
        for name, value in headers:
            lowered = name.lower()
            if lowered in own:
                if head and lowered == b"content-length" and not body and value.isdigit():
                    length = int(value)
                continue
            lines.append(b"%s: %s\r\n" % (name, value))
        block = b"".join(lines)
        # One line break per header, or a header smuggles in lines of its own.
        if block.count(b"\n") != len(lines) or block.count(b"\r") != len(lines):
            return None
        return b"%scontent-length: %d\r\n%s%s%s\r\n%s" % (
            _STATUS_LINES.get(status) or status_line(status),
            length,
            block,
            self.front.date,
            b"connection: close\r\n" + rid if close else rid,
            b"" if head else body,
        )

    def _start_stream(self, exchange: _Exchange, status: int, headers: Headers) -> None:
        if exchange.answer == "stream":
            raise RuntimeError("The response has already started")
        close = exchange.close or self.front.winding_down
        own = _OWN_HEADER_BYTES
        length = -1
        lines = []
        for name, value in headers:
            lowered = name.lower()
            if lowered in own:
                if lowered == b"content-length" and value.isdigit():
                    length = int(value)
                continue
            lines.append(b"%s: %s\r\n" % (name, value))
        block = b"".join(lines)
        if block.count(b"\n") != len(lines) or block.count(b"\r") != len(lines):
            raise ValueError("Invalid HTTP response header")
        if exchange.head or status in (204, 304) or status < 200:
            left = _BODYLESS
            framing = b"content-length: %d\r\n" % length if exchange.head and length >= 0 else b""
        elif length >= 0:
            left = length
            framing = b"content-length: %d\r\n" % length
        elif _http10(exchange.event):
            left = _UNTIL_CLOSE  # no chunked encoding in HTTP/1.0: the close ends the body
            framing = b""
            close = True
        else:
            left = _CHUNKED
            framing = b"transfer-encoding: chunked\r\n"
        head = b"%s%s%s%s%s%s\r\n" % (
            _STATUS_LINES.get(status) or status_line(status),
            block,
            framing,
            self.front.date,
            b"connection: close\r\n" if close else b"",
            _request_id(exchange.request_id),
        )
        exchange.close = close
        exchange.out = _Out(head, left)
        exchange.answer = "stream"
        if type(exchange) is _Exchange:
            # A plain handler's stream: from now on its reply finishes a stream.
            exchange.__class__ = _AppExchange
        self.streams += 1
        self._push(exchange)

    def _write_stream(self, exchange: _Exchange, chunk: bytes) -> Awaitable[None] | None:
        out = exchange.out
        parts = out.parts
        if parts is None:
            raise RuntimeError("The response has already ended")
        left = out.left
        if not chunk or left == _BODYLESS:
            return None
        if self.transport is None or self._closing:
            # The client is gone: dropped, as uvicorn drops them. The writer still passes
            # the loop once per write, so one that writes without pause cannot hold the
            # loop (and the deadline watcher) forever.
            return asyncio.sleep(0)
        if left == _CHUNKED:
            piece = b"%x\r\n%s\r\n" % (len(chunk), chunk)
        elif left == _UNTIL_CLOSE:
            piece = chunk
        elif len(chunk) > left:
            raise RuntimeError("Response content longer than Content-Length")
        else:
            out.left = left - len(chunk)
            piece = chunk
        parts.append(piece)
        out.held += len(piece)
        return self._push(exchange)

    def _end_stream(self, exchange: _Exchange) -> None:
        out = exchange.out
        parts = out.parts
        if parts is None:
            raise RuntimeError("The response has already ended")
        if out.left == _CHUNKED:
            parts.append(_LAST_CHUNK)
        elif out.left > 0:
            raise RuntimeError("Response content shorter than Content-Length")
        self.streams -= 1
        # What is left to write makes it an ordinary finished answer: `_flush` writes it
        # at the head of the line and closes the connection if it must.
        out.parts = None
        exchange.data = b"".join(parts)
        _wake(out)
        self._flush()

    def _push(self, exchange: _Exchange) -> Awaitable[None] | None:
        """Write a stream's buffered bytes if it is at the head of its line; an awaitable
        when its writer must wait (the client reads slowly, or too much is buffered)."""
        out = exchange.out
        parts = out.parts
        assert parts is not None
        transport = self.transport
        if transport is None or self._closing:
            parts.clear()  # the client is gone: dropped, as uvicorn drops them
            out.held = 0
            return None
        if self.pending[0] is exchange:
            if parts:
                transport.write(parts[0] if len(parts) == 1 else b"".join(parts))
                parts.clear()
                out.held = 0
            if not self.paused_writing:
                _wake(out)
                return None
        elif out.held <= STREAM_BUFFER:
            return None
        waiter = out.waiter
        if waiter is None or waiter.done():
            waiter = out.waiter = asyncio.get_running_loop().create_future()
        return waiter

    def _stream_outcome(
        self, exchange: _Exchange, error: LambdaError | None, rid: bytes, close: bool
    ) -> LambdaError | None:
        """The invocation of a streamed answer ended: it is complete, or it is aborted."""
        out = exchange.out
        parts = out.parts
        if parts is None:
            return error  # complete (a failure after it, say a background task's, only counts)
        if error is None:
            error = LambdaError(
                "Runtime.IncompleteResponse", "The streamed answer ended before its end"
            )
        self.streams -= 1
        out.parts = None
        _wake(out)
        if self.pending and self.pending[0] is not exchange:
            # Nothing of it was written yet (an earlier answer is still owed): it can
            # still be answered as any failed invocation is.
            exchange.answer = "native"
            return self._proxy_error(exchange, error, rid, close)
        # Its head went out: all that is left is to cut the body short. The connection
        # closes without the last chunk (or before the content-length is reached), so
        # the client sees an incomplete answer, never a complete wrong one.
        log.error("streamed answer aborted: %s: %s", error.error_type, error.message)
        exchange.data = b"".join(parts)
        exchange.close = True
        return error

    def _shed(
        self, exchange: _Exchange, error: LambdaError, rid: bytes, close: bool
    ) -> LambdaError:
        """The runtime shed this invocation after admitting it (a model's queue was full,
        or it could not finish in time): 429, as a full lane answers, so callers retry."""
        body = orjson.dumps({"errorType": error.error_type, "errorMessage": error.message})
        exchange.data = self._response(
            429, body, close, extra=rid + b"retry-after: 1\r\n", head=exchange.head
        )
        return error

    def _response(
        self,
        status: int,
        body: bytes,
        close: bool,
        extra: bytes = b"",
        *,
        head: bool = False,
        ctype: bytes = _JSON,
    ) -> bytes:
        # One formatting for head and body: a concatenation more would copy the body again.
        return b"%scontent-length: %d\r\n%s%s%s%s\r\n%s" % (
            _STATUS_LINES.get(status) or status_line(status),  # the call only for odd codes
            len(body),
            ctype if body or status >= 400 else b"",
            self.front.date,
            b"connection: close\r\n" if close else b"",
            extra,
            b"" if head else body,
        )

    def _throttle(self, *, head: bool, close: bool) -> None:
        """429: the lane is full. The connection is closed with it when nothing else is
        owed on it (as Envoy's overload manager turns keep-alive off): a keep-alive client
        reuses the connection a fast 429 freed first, so without this it keeps sending to
        the one full process while another idles; reconnecting lets the kernel spread it."""
        close = close or not self.pending
        self._answer_now(429, error=_throttled(), head=head, close=close, retry_after=True)

    def _answer_now(
        self,
        status: int,
        *,
        body: bytes | None = None,
        error: tuple[str, str] | None = None,
        head: bool = False,
        close: bool = False,
        retry_after: bool = False,
        ctype: bytes = _JSON,
    ) -> None:
        if error is not None:
            body = orjson.dumps({"errorType": error[0], "errorMessage": error[1]})
        extra = b"retry-after: 1\r\n" if retry_after else b""
        data = self._response(status, body or b"", close, extra=extra, head=head, ctype=ctype)
        self.pending.append(_Ready(data, close))
        self._flush()

    def _flush(self) -> None:
        """Write every finished answer at the head of the line, in request order."""
        pending = self.pending
        transport = self.transport
        while pending and pending[0].data is not None:
            exchange = pending.popleft()
            if transport is None or self._closing:
                continue
            transport.write(exchange.data)  # type: ignore[arg-type]
            if exchange.close:
                self.close()
        if self.held and not self._admitting:
            self._admit_held()
        if not pending:
            if self.transport is not None:
                if self.paused_reading:
                    self._set_reading()
                if self.front.winding_down and not self.url and not self.headers:
                    self.close()
        elif self.streams and pending[0].answer == "stream":
            # A streamed answer reached the head of the line: what it buffered goes out.
            self._push(cast(_Exchange, pending[0]))


class NativeHttpProtocol(HttpProtocol):
    """A connection of a front whose handler is a web app: proxy-mode requests become
    `HttpRequest` events, routed by method and path template (`worker.sources.routes`).
    The Invoke API and the internal endpoints are as on any front."""

    client: tuple[str, int] | None = None
    server: tuple[str, int | None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        if peer and len(peer) >= 2:
            self.client = (str(peer[0]), int(peer[1]))
        local = transport.get_extra_info("sockname")
        if local and len(local) >= 2:
            self.server = (str(local[0]), int(local[1]))

    def _proxy(
        self,
        method: bytes,
        url: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        version: str,
        head: bool,
        close: bool,
    ) -> None:
        front = self.front
        if front.winding_down and front.draining:
            return self._answer_now(
                503, error=("ServiceException", "The service is shutting down"), close=True
            )
        request_id = new_request_id()
        verb = method.decode("latin-1")
        raw_path, _, query = url.partition(b"?")
        path = raw_path.decode("utf-8", "replace")
        if "%" in path:
            path = unquote(path)
        # By position, as the other paths build their jobs (see Job).
        request = HttpRequest(
            verb, path, raw_path, query, headers, body, self.client, self.server, "http", version
        )
        assert front.templates is not None
        route = verb + " " + front.templates.of(path)
        trace = None
        for name, value in headers:
            if name == b"x-amzn-trace-id":
                trace = value.decode("latin-1")
        job = _AppExchange(request, None, request_id, len(body), None, "http", route, trace)
        self._admit(job, "native", head, close)


def _wake(out: _Out) -> None:
    """Let a stream's writer go on (it re-checks when it writes again)."""
    waiter = out.waiter
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


def _http10(event: Any) -> bool:
    if type(event) is HttpRequest:
        return event.http_version == "1.0"
    try:
        return bool(event["requestContext"]["http"]["protocol"] == "HTTP/1.0")
    except (KeyError, TypeError):
        return False


def _origin_form(url: bytes) -> bytes:
    """The path and query of an absolute-form target (`http://host/x?y` -> `/x?y`), as a
    server that is not a proxy reads it (RFC 9112 3.2.2); `*` and the rest are kept."""
    scheme, sep, rest = url.partition(b"://")
    if not sep or not scheme.isalpha():
        return url
    authority_end = min((i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0), default=-1)
    if authority_end < 0:
        return b"/"
    target = rest[authority_end:]
    return target if target[:1] == b"/" else b"/" + target


def _request_id(request_id: str) -> bytes:
    return b"x-amzn-requestid: " + request_id.encode() + b"\r\n"


def _too_large(limit: int) -> str:
    return f"Request must be smaller than {limit} bytes for the InvokeFunction operation"


def _throttled() -> tuple[str, str]:
    err = too_many_requests(
        "Rate Exceeded: every slot is busy and the lane's queue is full"
        " (WORKER_QUEUE_SIZE) or would keep this request waiting too long (WORKER_QUEUE_WAIT)"
    )
    return err.error_type, err.message


def _client_context(value: bytes) -> ClientContext | None:
    try:
        return ClientContext.from_json(orjson.loads(base64.b64decode(value)))
    except (binascii.Error, orjson.JSONDecodeError, ValueError):
        return None
