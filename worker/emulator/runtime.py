"""The emulator's Runtime API: invocations handed to runtimes polling `/next`, with LMI concurrency.

Unlike AWS's emulator it takes concurrent invokes: they wait in a bounded queue for a
runtime's `/next` (the queue full → the front answers 429, as the platform does), every
concurrent `/next` gets its own invocation, deadlines are enforced (the caller gets
`Sandbox.Timedout`, a late `/response` gets 410), and errors map as Lambda maps them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any, cast

import httptools
import orjson

from worker import httphead, marshal
from worker.config import DEFAULT_MAX_PAYLOAD
from worker.errors import LambdaError, response_too_large, timed_out
from worker.jobs import Job
from worker.sources.http import status_line
from worker.streaming import DEFAULT_CONTENT_TYPE, STREAMED, Headers

log = logging.getLogger("worker.emulator")

PREFIX = b"/2018-06-01/runtime"
#: What the fast path reads of a runtime's request head (past these, httptools reads it).
HEAD_LIMIT = 64 * 1024
HEADERS_LIMIT = 100
ERROR_LIMIT = 1024 * 1024
#: A streamed answer's bound: Lambda's, for the streaming response mode.
STREAM_LIMIT = 200 * 1024 * 1024
#: How much of a streamed HTTP answer may come before its prelude's end (its 8 NULs).
PRELUDE_LIMIT = 64 * 1024
STREAMING = b"streaming"
HTTP_INTEGRATION = b"application/vnd.awslambda.http-integration-response"
DELIMITER = b"\0" * 8
#: A runtime's `/next` is handed an invocation through this.
Deliver = Callable[[Job, float], None]
#: What the platform answers a call the environment's state does not allow (a `/next`
#: before a SnapStart environment is restored).
REFUSED = (
    b'{"errorMessage":"State transition is not allowed: %s","errorType":"InvalidStateTransition"}'
)


class RuntimeApi:
    """Invocations between the Invoke front and the runtime's pollers."""

    def __init__(
        self, *, queue_size: int, timeout: float, function_arn: str, snapstart: bool = False
    ) -> None:
        self.queue_size = queue_size
        self.timeout = timeout
        self.function_arn = function_arn
        self.queue: deque[Job] = deque()
        self.pollers: deque[Deliver] = deque()
        self.inflight: dict[str, tuple[Job, float]] = {}
        self.late: OrderedDict[str, None] = OrderedDict()  # recently timed out
        self.init_error: LambdaError | None = None
        self.exit_error: LambdaError | None = None
        self.on_first_poll: Callable[[], None] | None = None
        #: SnapStart (`--snapstart`): "init"; "snapshot" once the runtime waits in
        #: `restore/next` (held as the snapshot); "restored" once the first invoke let it go.
        self.snapstart = snapstart
        self.phase = "init" if snapstart else "restored"
        self.release: Callable[[], None] | None = None  # answers the held `restore/next`
        self.on_snapshot: Callable[[], None] | None = None
        self.restore_error: LambdaError | None = None
        self.polled = False

    # -- the front's side ------------------------------------------------------------

    def submit(self, job: Job) -> bool:
        """Hand a job to a waiting runtime, else queue it, else False (429)."""
        failed = self.init_error or self.exit_error
        if failed is not None:
            job.reply(None, failed)  # as Lambda does: every invoke sees the failure
            return True
        if self.phase == "snapshot":
            self.restore()  # as on Lambda: an invoke is what restores an environment
        if self.pollers:
            self._deliver(self.pollers.popleft(), job)
            return True
        if len(self.queue) >= self.queue_size:
            return False
        self.queue.append(job)
        return True

    # -- the runtime's side ------------------------------------------------------------

    def poll(self, deliver: Deliver) -> bool:
        """A runtime's `/next`; False when it is refused (a SnapStart environment that is
        not restored yet)."""
        if self.phase != "restored":
            log.error("refused a /next before the restore (phase: %s)", self.phase)
            return False
        if self.snapstart and not self.polled:
            log.info("the runtime's first /next after the restore")
        self.polled = True
        if self.on_first_poll is not None:
            # Init is complete when a runtime first asks for work (as on LMI).
            self.on_first_poll()
            self.on_first_poll = None
        if self.queue:
            self._deliver(deliver, self.queue.popleft())
        else:
            self.pollers.append(deliver)
        return True

    def snapshot(self, release: Callable[[], None]) -> bool:
        """The runtime's `restore/next`: its init is done and it is quiet. The call is held
        (that is the snapshot) until `restore()`. False when refused: not a SnapStart
        environment, or not in its init."""
        if self.phase != "init":
            return False
        self.phase = "snapshot"
        self.release = release
        log.info("snapshot taken: the runtime waits in restore/next until the first invoke")
        if self.on_first_poll is not None:
            self.on_first_poll()  # the init phase is over: ready for invokes
            self.on_first_poll = None
        if self.on_snapshot is not None:
            self.on_snapshot()
        return True

    def restore(self) -> None:
        """Let the held `restore/next` return: the environment is restored."""
        self.phase = "restored"
        release, self.release = self.release, None
        log.info("restoring: restore/next returns")
        if release is not None:
            release()

    def report_restore_error(self, body: bytes, error_type: str | None) -> int:
        """`restore/error`: recorded, and every invoke fails with it as with an init error."""
        if not self.snapstart or self.phase != "restored" or self.restore_error is not None:
            return 403
        self.restore_error = error = parse_error(body, error_type)
        log.error("runtime restore failed: %s: %s: %s", error_type, error.error_type, error.message)
        self.init_error = self.init_error or error
        while self.queue:
            self.queue.popleft().reply(None, error)
        return 202

    def forget(self, deliver: Deliver) -> None:
        """A polling connection went away before it got an invocation."""
        with contextlib.suppress(ValueError):
            self.pollers.remove(deliver)

    def _deliver(self, deliver: Deliver, job: Job) -> None:
        deadline = time.time() + self.timeout
        self.inflight[job.request_id] = (job, deadline)
        deliver(job, deadline)

    def respond(self, request_id: str, body: bytes) -> int:
        found = self._take(request_id)
        if isinstance(found, int):
            return found
        if found.kind == "apigw-http":
            try:
                result: Any = orjson.loads(body)  # proxy mode maps the result's fields
            except orjson.JSONDecodeError:
                result = body.decode("utf-8", "replace")
        else:
            result = orjson.Fragment(body)  # passed through as the runtime sent it
        found.reply(result, None)
        return 202

    def error(self, request_id: str, body: bytes, error_type: str | None) -> int:
        found = self._take(request_id)
        if isinstance(found, int):
            return found
        found.reply(None, parse_error(body, error_type))
        return 202

    def stream(self, request_id: str, headers: dict[bytes, bytes]) -> StreamSink:
        """A runtime's streamed `/response` (the streaming response mode) for `request_id`,
        read as it arrives: see `StreamSink`."""
        entry = self.inflight.get(request_id)
        refused = 0 if entry is not None else (410 if request_id in self.late else 400)
        content_type = headers.get(b"content-type", b"")
        return StreamSink(
            self, request_id, entry[0] if entry else None, content_type == HTTP_INTEGRATION, refused
        )

    def report_init_error(self, body: bytes, error_type: str | None) -> int:
        if self.init_error is not None:
            return 403  # another process of the runtime reported first
        self.init_error = parse_error(body, error_type)
        log.error("runtime init failed (%s): %s", error_type, self.init_error.message)
        while self.queue:
            self.queue.popleft().reply(None, self.init_error)
        return 202

    def runtime_exited(self, code: int) -> None:
        """The runtime process ended: everything pending fails, as on Lambda."""
        if self.init_error is None:
            self.exit_error = LambdaError(
                "Runtime.ExitError", f"RequestId: runtime exited with error: exit status {code}"
            )
        failure = self.init_error or self.exit_error
        assert failure is not None
        for job, _ in list(self.inflight.values()):
            job.reply(None, failure)
        self.inflight.clear()
        while self.queue:
            self.queue.popleft().reply(None, failure)

    def _take(self, request_id: str) -> Job | int:
        entry = self.inflight.pop(request_id, None)
        if entry is not None:
            return entry[0]
        if request_id in self.late:
            # Shown: on Lambda a runtime that answers after the platform's timeout is
            # refused too, and a test can tell the runtime's clock from the emulator's.
            log.info("an answer for %s came after its deadline (410)", request_id)
            return 410
        return 400

    def expire(self, now: float) -> None:
        """Answer every invocation past its deadline; its late answer will get 410."""
        for request_id, (job, deadline) in list(self.inflight.items()):
            if now >= deadline:
                del self.inflight[request_id]
                self.late[request_id] = None
                if len(self.late) > 10_000:
                    self.late.popitem(last=False)
                job.reply(None, timed_out(self.timeout))


def parse_error(body: bytes, error_type: str | None) -> LambdaError:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    stack = data.get("stackTrace")
    return LambdaError(
        str(data.get("errorType") or error_type or "Runtime.Unknown"),
        str(data.get("errorMessage", "")),
        [str(x) for x in stack] if isinstance(stack, list) else [],
    )


class RuntimeProtocol(asyncio.Protocol):
    """One runtime connection to the emulator's Runtime API, requests served in order."""

    def __init__(self, api: RuntimeApi) -> None:
        self.api = api
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []
        self.size = 0
        self.oversize = 0  # the size of a body over DEFAULT_MAX_PAYLOAD (then not kept)
        #: A streamed `/response` being read: its body goes on as it arrives, unkept.
        self.sink: StreamSink | None = None
        self.waiting: Deliver | None = None  # set while a /next is unanswered
        self.holding = False  # this connection's `restore/next` is the held snapshot
        # While a read is parsed, replies are gathered here and written together: a
        # pipelining runtime's answer and `/next` get their replies in one write.
        self.out: list[bytes] | None = None
        self.backlog: deque[tuple[bytes, bytes, dict[bytes, bytes], bytes, int]] = deque()
        #: Between httptools' first and last callback of a request (see HttpProtocol).
        self.parsing = False
        self.scan = httphead.scan

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.holding and self.api.phase == "snapshot":
            self.api.release = None  # the runtime left its snapshot
        if self.waiting is not None:
            self.api.forget(self.waiting)
            self.waiting = None
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.out = []
        scan = self.scan
        if scan is not None and not self.parsing:
            # Whole, plain requests (a /next, a /response) are read in one call; the first
            # that is not, and all after it, go to httptools (as the HTTP front does).
            start = 0
            while self.transport is not None:
                request = scan(data, start, HEAD_LIMIT, HEADERS_LIMIT, DEFAULT_MAX_PAYLOAD)
                if request is None:
                    break
                method, url, headers, body, start = request
                self._request(method, url, dict(headers), body, 0)
                if start == len(data):
                    self._flush()
                    return
            data = data[start:]
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._send(400, b'{"errorMessage":"malformed request"}')
            self._flush()
            if self.transport is not None:
                self.transport.close()
        else:
            self._flush()

    def _flush(self) -> None:
        out, self.out = self.out, None
        if out and self.transport is not None:
            self.transport.write(b"".join(out))

    def on_message_begin(self) -> None:
        self.parsing = True
        self.url = b""
        self.headers = {}
        self.body = []
        self.size = 0
        self.oversize = 0
        self.sink = None

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        # A streamed answer is read as it arrives when it would be handled now (nothing
        # before it on this connection still waits for its reply; else it is gathered).
        # The headers read after this point are its trailers, in the same dict.
        if (
            self.headers.get(b"lambda-runtime-function-response-mode", b"").lower() == STREAMING
            and self.waiting is None
            and not self.backlog
            and self.parser.get_method() == b"POST"
        ):
            request_id = _response_id(self.url)
            if request_id is not None:
                self.sink = self.api.stream(request_id, self.headers)
                self.sink.transport = self.transport

    def on_body(self, body: bytes) -> None:
        sink = self.sink
        if sink is not None:
            sink.feed(body)
            return
        self.size += len(body)
        if self.size > DEFAULT_MAX_PAYLOAD:
            self.oversize = self.size  # keep reading (the body must be consumed), keep nothing
            self.body = []
        else:
            self.body.append(body)

    def on_message_complete(self) -> None:
        self.parsing = False
        sink = self.sink
        if sink is not None:
            self.sink = None
            self._send(sink.finish(self.headers), b"")
            return
        self._request(
            self.parser.get_method(), self.url, self.headers, b"".join(self.body), self.oversize
        )

    def _request(
        self, method: bytes, url: bytes, headers: dict[bytes, bytes], body: bytes, oversize: int
    ) -> None:
        """`oversize`: the size of a body over DEFAULT_MAX_PAYLOAD (not kept), else 0."""
        request = (method, url, headers, body, oversize)
        if self.waiting is not None or self.holding or self.backlog:
            self.backlog.append(request)  # answered once the /next before it is
        else:
            self._handle(*request)

    def _handle(
        self, method: bytes, url: bytes, headers: dict[bytes, bytes], body: bytes, oversize: int
    ) -> None:
        path = url.partition(b"?")[0]
        if method == b"GET" and path == PREFIX + b"/invocation/next":
            self.waiting = self._deliver
            if not self.api.poll(self._deliver):
                self.waiting = None
                self._send(403, REFUSED % self.api.phase.encode())
            return
        if method == b"GET" and path == PREFIX + b"/restore/next":
            self.holding = self.api.snapshot(self._restored)
            if not self.holding:
                self._send(403, REFUSED % b"restore/next outside a SnapStart init")
            return
        if method != b"POST" or not path.startswith(PREFIX):
            return self._send(404, b'{"errorMessage":"not found"}')
        rest = path[len(PREFIX) :].strip(b"/").split(b"/")
        error_type = headers.get(b"lambda-runtime-function-error-type")
        etype = error_type.decode("latin-1") if error_type else None
        if rest == [b"init", b"error"]:
            return self._send(self.api.report_init_error(body, etype), b"")
        if rest == [b"restore", b"error"]:
            return self._send(self.api.report_restore_error(body[:ERROR_LIMIT], etype), b"")
        if len(rest) != 3 or rest[0] != b"invocation":
            return self._send(404, b'{"errorMessage":"not found"}')
        request_id = rest[1].decode("latin-1")
        if rest[2] == b"response":
            if oversize:
                # Lambda's answer to the caller; the runtime learns it through the 413.
                refused = orjson.dumps(response_too_large(oversize).body())
                self.api.error(request_id, refused, None)
                return self._send(413, refused)
            if headers.get(b"lambda-runtime-function-response-mode", b"").lower() == STREAMING:
                # Streamed, but queued behind a `/next` on its connection: read whole.
                sink = self.api.stream(request_id, headers)
                sink.feed(body)
                return self._send(sink.finish(headers), b"")
            return self._send(self.api.respond(request_id, body), b"")
        if rest[2] == b"error":
            return self._send(self.api.error(request_id, body[:ERROR_LIMIT], etype), b"")
        self._send(404, b'{"errorMessage":"not found"}')

    def _restored(self) -> None:
        self.holding = False
        self._send(200, b"")
        while self.backlog and self.waiting is None and not self.holding:
            self._handle(*self.backlog.popleft())

    def _deliver(self, job: Job, deadline: float) -> None:
        self.waiting = None
        if self.transport is None:
            # The poller left between asking and being served: back to the front of the line.
            self.api.queue.appendleft(job)
            self.api.inflight.pop(job.request_id, None)
            return
        body = job.raw if job.raw is not None else marshal.dumps(job.event)
        extra = [
            b"lambda-runtime-aws-request-id: %s\r\n" % job.request_id.encode(),
            b"lambda-runtime-deadline-ms: %d\r\n" % int(deadline * 1000),
            b"lambda-runtime-invoked-function-arn: %s\r\n" % self.api.function_arn.encode(),
            b"lambda-runtime-trace-id: %s\r\n"
            % (job.trace_id or f"Root=1-{int(time.time()):08x}-{job.request_id[-24:]}").encode(),
        ]
        if job.client_context is not None:
            extra.append(
                b"lambda-runtime-client-context: %s\r\n" % orjson.dumps(job.client_context.raw)
            )
        self._send(200, body, b"".join(extra))
        while self.backlog and self.waiting is None:
            self._handle(*self.backlog.popleft())

    def _send(self, status: int, body: bytes, extra: bytes = b"") -> None:
        if self.transport is None:
            return
        data = b"%scontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s" % (
            status_line(status),
            len(body),
            extra,
            body,
        )
        if self.out is not None:
            self.out.append(data)
        else:
            self.transport.write(data)


def _response_id(url: bytes) -> str | None:
    """The request id of a `/runtime/invocation/{id}/response` URL, else None."""
    rest = url.partition(b"?")[0][len(PREFIX) :].strip(b"/").split(b"/")
    if url.startswith(PREFIX) and len(rest) == 3 and rest[:3:2] == [b"invocation", b"response"]:
        return rest[1].decode("latin-1")
    return None


class StreamSink:
    """A runtime's streamed answer, on its way to the caller as it arrives.

    The caller of the proxy path (a request that is not an Invoke: a Function URL whose
    InvokeMode is RESPONSE_STREAM) gets it as it comes: the HTTP integration prelude
    becomes the response's status, headers and cookies, every piece of body after it a
    chunk, through the front's stream (`Job.stream()`); where there is none the answer is
    gathered into the API Gateway response it stands for. An Invoke caller gets the
    bytes whole, as Lambda's buffered Invoke of a streaming function has them.

    An error in the trailers is the caller's Lambda error when nothing was sent yet, and
    aborts its stream otherwise. Past `STREAM_LIMIT` the caller gets (or its stream is
    aborted with) `Function.ResponseSizeTooLarge`, and the runtime a 413. The deadline
    goes on: at it the caller is answered, and the rest of the stream is dropped (410).
    """

    def __init__(
        self, api: RuntimeApi, request_id: str, job: Job | None, http: bool, refused: int
    ) -> None:
        self.api = api
        self.request_id = request_id
        self.job = job
        self.refused = refused  # the runtime's answer once the caller has had its own
        self.prelude: bytearray | None = bytearray() if http else None  # until the NULs
        self.status = 200
        self.headers: Headers = [(b"content-type", DEFAULT_CONTENT_TYPE)]
        # Only the proxy path's caller takes a stream; an Invoke's answer is whole.
        self.stream = job.stream() if job is not None and _proxied(job) else None
        self.parts: list[bytes] = []  # the bytes as sent, where there is no stream
        self.size = 0
        self.started = False
        self.paused = False
        self.transport: asyncio.Transport | None = None

    def feed(self, data: bytes) -> None:
        """A piece of the request's body, as httptools read it."""
        if self.refused or not data:
            return
        if self.request_id not in self.api.inflight:
            self.refused = 410  # the deadline answered the caller: the rest is dropped
            return
        self.size += len(data)
        if self.size > STREAM_LIMIT:
            self._fail(response_too_large(self.size, STREAM_LIMIT), 413)
            return
        if self.stream is None:
            self.parts.append(data)
            return
        if self.prelude is not None:
            self.prelude += data
            end = self.prelude.find(DELIMITER)
            if end < 0:
                if len(self.prelude) <= PRELUDE_LIMIT:
                    return
                data, self.prelude = bytes(self.prelude), None  # no prelude: all body
            else:
                self.status, self.headers = _head(bytes(self.prelude[:end]))
                data, self.prelude = bytes(self.prelude[end + len(DELIMITER) :]), None
        self._send(data)

    def _send(self, data: bytes) -> None:
        assert self.stream is not None
        if not self.started:
            self.started = True
            self.stream.start(self.status, self.headers)
        if data:
            self._pause_for(self.stream.write(data))

    def finish(self, fields: dict[bytes, bytes]) -> int:
        """The request is complete (`fields`: its headers and trailers): answer the caller,
        and return the runtime's status."""
        if self.refused:
            if self.refused == 410:
                self.api._take(self.request_id)  # noted as late, as a whole late answer
            return self.refused
        job = self.api._take(self.request_id)
        if isinstance(job, int):
            return job
        error_type = fields.get(b"lambda-runtime-function-error-type")
        if error_type is not None:
            body = fields.get(b"lambda-runtime-function-error-body", b"")
            try:
                raw = base64.b64decode(body)
            except ValueError:
                raw = b""
            job.reply(None, parse_error(raw, error_type.decode("latin-1")))
            return 202
        if self.stream is not None:
            if self.prelude is not None:
                # It ended before its prelude did: what came is all body.
                rest, self.prelude = bytes(self.prelude), None
                self._send(rest)
            else:
                self._send(b"")
            self.stream.end()
            job.reply(STREAMED, None)
            return 202
        raw = b"".join(self.parts)
        if _proxied(job):
            job.reply(_gathered(raw, self.prelude is not None), None)
        else:
            job.reply(orjson.Fragment(raw), None)  # the bytes as the runtime sent them
        return 202

    def _fail(self, error: LambdaError, status: int) -> None:
        job = self.api._take(self.request_id)
        if not isinstance(job, int):
            job.reply(None, error)
        self.refused = status
        self.parts = []

    def _pause_for(self, waiting: Awaitable[None] | None) -> None:
        """The caller reads slower than the runtime sends: stop reading the runtime's
        connection until it catches up (its own flow control then holds the runtime)."""
        transport = self.transport
        if waiting is None or self.paused or transport is None:
            return
        self.paused = True
        transport.pause_reading()

        def resume(_: object) -> None:
            self.paused = False
            if not transport.is_closing():
                transport.resume_reading()

        asyncio.ensure_future(waiting).add_done_callback(resume)


def _proxied(job: Job) -> bool:
    """Whether the job came through the front's proxy path (its event was made from the
    request; an Invoke's job carries the bytes it was sent)."""
    return job.kind == "apigw-http" and job.raw is None


def _head(prelude: bytes) -> tuple[int, Headers]:
    """Status and headers (cookies as set-cookie) of an HTTP integration prelude."""
    try:
        data = orjson.loads(prelude)
    except orjson.JSONDecodeError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    try:
        status = int(data.get("statusCode", 200))
    except (TypeError, ValueError):
        status = 200
    headers: Headers = [
        (str(k).lower().encode("latin-1", "replace"), str(v).encode("latin-1", "replace"))
        for k, v in (data.get("headers") or {}).items()
    ]
    if not any(name == b"content-type" for name, _ in headers):
        headers.append((b"content-type", DEFAULT_CONTENT_TYPE))
    headers.extend(
        (b"set-cookie", str(c).encode("latin-1", "replace")) for c in data.get("cookies") or ()
    )
    return status, headers


def _gathered(raw: bytes, http: bool) -> dict[str, Any]:
    """A streamed answer, whole, as the API Gateway response it stands for."""
    status, headers, body = 200, [(b"content-type", DEFAULT_CONTENT_TYPE)], raw
    if http:
        end = raw.find(DELIMITER)
        if end >= 0:
            status, headers = _head(raw[:end])
            body = raw[end + len(DELIMITER) :]
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key, text = name.decode("latin-1"), value.decode("latin-1")
        if key == "set-cookie":
            cookies.append(text)
        else:
            joined[key] = f"{joined[key]},{text}" if key in joined else text
    return {
        "statusCode": status,
        "headers": joined,
        "cookies": cookies,
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }
