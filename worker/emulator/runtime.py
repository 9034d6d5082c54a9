"""The emulator's Runtime API: invocations handed to runtimes polling `/next`, with LMI concurrency.

Unlike AWS's emulator it takes concurrent invokes: they wait in a bounded queue for a
runtime's `/next` (the queue full → the front answers 429, as the platform does), every
concurrent `/next` gets its own invocation, deadlines are enforced (the caller gets
`Sandbox.Timedout`, a late `/response` gets 410), and errors map as Lambda maps them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, cast

import httptools
import orjson

from worker import httphead, marshal
from worker.errors import LambdaError, timed_out
from worker.jobs import Job
from worker.sources.http import status_line

log = logging.getLogger("worker.emulator")

PREFIX = b"/2018-06-01/runtime"
RESPONSE_LIMIT = 6 * 1024 * 1024 + 100
#: What the fast path reads of a runtime's request head (past these, httptools reads it).
HEAD_LIMIT = 64 * 1024
HEADERS_LIMIT = 100
ERROR_LIMIT = 1024 * 1024
#: A runtime's `/next` is handed an invocation through this.
Deliver = Callable[[Job, float], None]


class RuntimeApi:
    """Invocations between the Invoke front and the runtime's pollers."""

    def __init__(self, *, queue_size: int, timeout: float, function_arn: str) -> None:
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

    # -- the front's side ------------------------------------------------------------

    def submit(self, job: Job) -> bool:
        """Hand a job to a waiting runtime, else queue it, else False (429)."""
        failed = self.init_error or self.exit_error
        if failed is not None:
            job.reply(None, failed)  # as Lambda does: every invoke sees the failure
            return True
        if self.pollers:
            self._deliver(self.pollers.popleft(), job)
            return True
        if len(self.queue) >= self.queue_size:
            return False
        self.queue.append(job)
        return True

    # -- the runtime's side ------------------------------------------------------------

    def poll(self, deliver: Deliver) -> None:
        if self.on_first_poll is not None:
            # Init is complete when a runtime first asks for work (as on LMI).
            self.on_first_poll()
            self.on_first_poll = None
        if self.queue:
            self._deliver(deliver, self.queue.popleft())
        else:
            self.pollers.append(deliver)

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

    def report_init_error(self, body: bytes, error_type: str | None) -> int:
        if self.init_error is not None:
            return 403  # another process of the runtime reported first
        self.init_error = parse_error(body, error_type)
        log.error("runtime init failed: %s", self.init_error.message)
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
        return 410 if request_id in self.late else 400

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
        self.too_large = False
        self.waiting: Deliver | None = None  # set while a /next is unanswered
        # While a read is parsed, replies are gathered here and written together: a
        # pipelining runtime's answer and `/next` get their replies in one write.
        self.out: list[bytes] | None = None
        self.backlog: deque[tuple[bytes, bytes, dict[bytes, bytes], bytes, bool]] = deque()
        #: Between httptools' first and last callback of a request (see HttpProtocol).
        self.parsing = False
        self.scan = httphead.scan

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
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
                request = scan(data, start, HEAD_LIMIT, HEADERS_LIMIT, RESPONSE_LIMIT)
                if request is None:
                    break
                method, url, headers, body, start = request
                self._request(method, url, dict(headers), body, False)
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
        self.too_large = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > RESPONSE_LIMIT:
            self.too_large = True  # keep reading (the body must be consumed), keep nothing
            self.body = []
        else:
            self.body.append(body)

    def on_message_complete(self) -> None:
        self.parsing = False
        self._request(
            self.parser.get_method(), self.url, self.headers, b"".join(self.body), self.too_large
        )

    def _request(
        self, method: bytes, url: bytes, headers: dict[bytes, bytes], body: bytes, too_large: bool
    ) -> None:
        request = (method, url, headers, body, too_large)
        if self.waiting is not None or self.backlog:
            self.backlog.append(request)  # answered once the /next before it is
        else:
            self._handle(*request)

    def _handle(
        self, method: bytes, url: bytes, headers: dict[bytes, bytes], body: bytes, too_large: bool
    ) -> None:
        path = url.partition(b"?")[0]
        if method == b"GET" and path == PREFIX + b"/invocation/next":
            self.waiting = self._deliver
            self.api.poll(self._deliver)
            return
        if method != b"POST" or not path.startswith(PREFIX):
            return self._send(404, b'{"errorMessage":"not found"}')
        rest = path[len(PREFIX) :].strip(b"/").split(b"/")
        error_type = headers.get(b"lambda-runtime-function-error-type")
        etype = error_type.decode("latin-1") if error_type else None
        if rest == [b"init", b"error"]:
            return self._send(self.api.report_init_error(body, etype), b"")
        if len(rest) != 3 or rest[0] != b"invocation":
            return self._send(404, b'{"errorMessage":"not found"}')
        request_id = rest[1].decode("latin-1")
        if rest[2] == b"response":
            if too_large:
                # Lambda's answer to the caller; the runtime learns it through the 413.
                self.api.error(
                    request_id,
                    orjson.dumps(
                        {
                            "errorType": "Function.ResponseSizeTooLarge",
                            "errorMessage": "Response payload size exceeded maximum allowed "
                            f"payload size ({RESPONSE_LIMIT} bytes).",
                        }
                    ),
                    None,
                )
                return self._send(413, b'{"errorMessage":"response too large"}')
            return self._send(self.api.respond(request_id, body), b"")
        if rest[2] == b"error":
            return self._send(self.api.error(request_id, body[:ERROR_LIMIT], etype), b"")
        self._send(404, b'{"errorMessage":"not found"}')

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
