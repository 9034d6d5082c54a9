"""Lambda mode: a Runtime API client, one long-poll `/next` per free slot.

Each poller owns a slot's worth of concurrency and a keep-alive connection: it asks for
the next event only once its previous invocation has been answered, so there is never
more work in the process than it has slots (backpressure needs no queue). The answer is
posted on the same connection that fetched the event.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from worker import marshal
from worker.classify import classify
from worker.config import DEFAULT_MAX_PAYLOAD, Config
from worker.context import ClientContext, CognitoIdentity
from worker.errors import TIMED_OUT, LambdaError, response_too_large
from worker.jobs import Job
from worker.sources.http_client import ClientConnection, HttpClientError, Response
from worker.streaming import ResponseStream

if TYPE_CHECKING:
    from worker.inflight import Inflight
    from worker.sources.stream_post import StreamPost

log = logging.getLogger("worker.lambda")

PREFIX = b"/2018-06-01/runtime"
NEXT = PREFIX + b"/invocation/next"
_VALID_TYPE = re.compile(r"^(Runtime|Function)\.[A-Z][a-zA-Z]+$")
#: Exit status of a worker whose Runtime API kept failing: the supervisor ends the
#: environment instead of replacing the worker.
EXIT_API_GONE = 75
#: The most the Runtime API takes of an error body, and of an X-Ray error cause (which
#: awslambdaric leaves out when it would reach this).
ERROR_LIMIT = 1024 * 1024


def parse_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"AWS_LAMBDA_RUNTIME_API must be host:port, got {value!r}")
    return host.strip("[]"), int(port)


def error_type_header(error_type: str) -> str:
    """The `Lambda-Runtime-Function-Error-Type` value: the platform records anything
    outside `(Runtime|Function).Name` as Runtime.Unknown, so other types are mapped."""
    if _VALID_TYPE.match(error_type):
        return error_type
    name = re.sub(r"[^a-zA-Z]", "", error_type.rsplit(".", 1)[-1]) or "Error"
    return f"Function.{name[0].upper()}{name[1:]}"


def error_request(error: LambdaError, request_id: str | None) -> tuple[bytes, bytes]:
    """(body, headers) of an `/error` or `/init/error` post."""
    body = orjson.dumps(error.body(request_id))
    if len(body) > ERROR_LIMIT:
        body = orjson.dumps(LambdaError(error.error_type, error.message[:4096]).body(request_id))
    headers = (
        b"lambda-runtime-function-error-type: %s\r\ncontent-type: application/json\r\n"
        % error_type_header(error.error_type).encode()
    )
    return body, headers


def invocation_error(error: LambdaError, request_id: str) -> tuple[bytes, bytes]:
    """(body, headers) of an `/error` post: `error_request`'s, with the X-Ray error cause
    awslambdaric sends with every invocation error (not with init errors), unless it would
    reach 1 MiB."""
    body, headers = error_request(error, request_id)
    cause = orjson.dumps(error.xray_cause())
    if len(cause) < ERROR_LIMIT:
        headers += b"lambda-runtime-function-xray-error-cause: %s\r\n" % cause
    return body, headers


def _json_header(value: bytes | None) -> Any:
    if not value:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None


def _decode_event(resp: Response) -> Any:
    """The event: JSON, or the raw bytes when its content type says it is not JSON."""
    try:
        return marshal.loads(resp.body)
    except orjson.JSONDecodeError as exc:
        ctype = resp.headers.get(b"content-type", b"application/json").lower()
        if b"json" not in ctype and ctype != b"":
            return resp.body
        raise LambdaError("Runtime.UnmarshalError", f"Unable to unmarshal input: {exc}") from None


class RuntimeApiSource:
    """The pollers of one worker process.

    `slots` pollers run at once; `submit` hands a job to the pool (its lane has room for
    every poller). A `/next` that fails is retried with backoff; after `attempts`
    consecutive failures the source gives up and `run()` returns EXIT_API_GONE.

    `pipeline`: the next `/next` goes out in the same write as an answer, behind it on the
    keep-alive connection (HTTP/1.1 pipelining), instead of after the Runtime API's reply
    to the answer. The Runtime API reads the two in one read and can reply to both in one
    write: two system calls and a wake-up fewer per invocation on each side.
    """

    _loop: asyncio.AbstractEventLoop  # set by run()

    def __init__(
        self,
        address: str,
        submit: Callable[[Job], bool],
        *,
        slots: int,
        attempts: int = 10,
        backoff: float = 0.05,
        pipeline: bool = True,
        streams: bool = False,
        stream_limit: int = Config.max_streamed_response,
        inflight: Inflight | None = None,
    ) -> None:
        self.host, self.port = parse_address(address)
        #: Where each poller's invocation is written for the supervisor (`worker.inflight`).
        self.inflight = inflight
        self.submit = submit
        self.slots = slots
        self.attempts = attempts
        self.backoff = backoff
        self.pipeline = pipeline
        #: Answers may stream (`WORKER_INVOKE_MODE=RESPONSE_STREAM`, see `stream_post`),
        #: up to `stream_limit` bytes each.
        self.streams = streams
        self.stream_limit = stream_limit
        self.failures = 0
        self.stopping = False
        self._abandon = False  # stopping, and `/next` requests still waiting are abandoned
        self.gone = False
        self._polling: set[asyncio.Task[None]] = set()
        self._pollers: list[asyncio.Task[None]] = []

    async def run(self) -> int:
        """Poll until `stop()` (returns 0) or until the Runtime API is gone."""
        # Kept: on Python 3.11 every get_running_loop() is a getpid() system call.
        self._loop = asyncio.get_running_loop()
        self._pollers = [asyncio.ensure_future(self._poller(i)) for i in range(self.slots)]
        await asyncio.gather(*self._pollers, return_exceptions=True)
        return EXIT_API_GONE if self.gone else 0

    def stop(self, cancel_waiting: bool = True) -> None:
        """No new `/next`; pollers with an invocation in flight post its answer first.

        `cancel_waiting`: also abandon the `/next` requests still waiting for an event (at
        shutdown no more will come; when recycling, one may, so they are left to finish).
        """
        self.stopping = True
        if cancel_waiting:
            self._abandon = True
            for task in list(self._polling):
                task.cancel()

    async def _poller(self, index: int) -> None:
        conn: ClientConnection | None = None
        # The `/next` already written behind the last answer (pipelined), if any.
        pending: asyncio.Future[Response] | None = None
        me = asyncio.current_task()
        loop = self._loop
        assert me is not None
        try:
            while True:
                if self.stopping and not self._still_wanted(pending):
                    if pending is not None:
                        _drop(pending)
                    return
                try:
                    if pending is None:
                        if conn is None or conn.closed:
                            conn = await ClientConnection.open(self.host, self.port)
                        pending = loop.create_future()
                        conn.send([conn.encode(b"GET", NEXT)], pending)
                    waiting, pending = pending, None
                    self._polling.add(me)
                    try:
                        resp = await waiting
                    except asyncio.CancelledError:
                        if not _holds_event(waiting):
                            raise
                        # The event came back just as the stop cancelled this wait: run
                        # it rather than drop it.
                        me.uncancel()
                        resp = waiting.result()
                    finally:
                        self._polling.discard(me)
                    if resp.status != 200:
                        raise HttpClientError(f"/next answered {resp.status}: {resp.body[:200]!r}")
                except asyncio.CancelledError:
                    if self.stopping:
                        return
                    raise
                except (OSError, HttpClientError) as exc:
                    conn = None
                    if not await self._failed(exc):
                        return
                    continue
                self.failures = 0
                assert conn is not None
                inflight = self.inflight
                if inflight is not None:
                    inflight.hold(index, resp.headers.get(b"lambda-runtime-aws-request-id", b""))
                try:
                    conn, pending = await self._invoke(conn, resp)
                    if inflight is not None:
                        inflight.release(index)
                except Exception as exc:  # a poller must not end quietly: count and go on
                    if inflight is not None:
                        inflight.release(index)
                    log.exception("handling an invocation from the Runtime API failed")
                    conn = None
                    if not await self._failed(exc):
                        return
        finally:
            if conn is not None:
                conn.close()

    def _still_wanted(self, pending: asyncio.Future[Response] | None) -> bool:
        """Whether a `/next` written before the stop is still awaited: waiting ones are not
        abandoned (recycling), or it came back with an event already (never dropped)."""
        return pending is not None and (not self._abandon or _holds_event(pending))

    async def _failed(self, exc: Exception) -> bool:
        """Back off after a failed `/next`; False once the Runtime API counts as gone."""
        self.failures += 1
        if self.failures >= self.attempts:
            if not self.gone:
                self.gone = True
                log.error(
                    "the Runtime API failed %d times in a row, ending the environment: %s",
                    self.failures,
                    exc,
                )
                self.stop()
            return False
        delay = min(1.0, self.backoff * 2 ** (self.failures - 1))
        log.warning("Runtime API /next failed (%s); retrying in %.2fs", exc, delay)
        await asyncio.sleep(delay)
        return not self.stopping

    async def _invoke(
        self, conn: ClientConnection, resp: Response
    ) -> tuple[ClientConnection | None, asyncio.Future[Response] | None]:
        """Run one invocation and post its answer: (the connection to go on with, the
        `/next` already written behind the answer or None)."""
        h = resp.headers
        request_id = h.get(b"lambda-runtime-aws-request-id", b"").decode()
        try:
            event = _decode_event(resp)
        except LambdaError as exc:
            body, headers = invocation_error(exc, request_id)
            return await self._post(conn, request_id, b"error", body, headers), None
        deadline_ms = h.get(b"lambda-runtime-deadline-ms")
        trace_id = h.get(b"lambda-runtime-trace-id")
        if trace_id and self.slots == 1:
            # One slot in this process: the environment variable is this invocation's.
            os.environ["_X_AMZN_TRACE_ID"] = trace_id.decode()
        cc = _json_header(h.get(b"lambda-runtime-client-context"))
        identity = _json_header(h.get(b"lambda-runtime-cognito-identity"))
        arn = h.get(b"lambda-runtime-invoked-function-arn")
        tenant = h.get(b"lambda-runtime-aws-tenant-id")
        what, route = classify.kind_route(resp.body)
        # By position, as the HTTP front does (see Job): request id, size, deadline, kind,
        # route, trace id, client context, identity, invoked ARN, tenant id.
        job = _Invocation(
            event,
            None,
            request_id,
            len(resp.body),
            int(deadline_ms) / 1000 if deadline_ms and deadline_ms.isdigit() else None,
            what,
            route or what,
            trace_id.decode() if trace_id else None,
            ClientContext.from_json(cc),
            CognitoIdentity.from_json(identity) if identity else None,
            arn.decode() if arn else None,
            tenant.decode() if tenant else None,
        )
        # The slot writes the answer on this connection the moment it has one; the
        # poller wakes once, for the Runtime API's reply to it (see `_answer`).
        job.conn = conn
        job.replied = self._loop.create_future()
        job.source = self
        job.next = None
        job.posted = _NOTHING_POSTED
        if not self.submit(job):  # cannot happen while pollers <= slots; never drop it
            self._answer(job, None, LambdaError("Runtime.Busy", "no free slot"))
        try:
            reply = await job.replied
        except (OSError, HttpClientError) as exc:
            # The connection broke under the answer: post it again on a fresh one. A
            # `/next` behind it broke with it (its failure is the same one, seen here).
            if job.next is not None:
                _drop(job.next)
            log.warning("posting the answer for %s failed: %s", request_id, exc)
            kind, body, headers = job.posted
            return await self._post(None, request_id, kind, body, headers), None
        if reply is _LEFT_TO_PLATFORM:
            return conn, None  # nothing was posted: the next `/next` goes out now
        _check(reply, request_id)
        pending = job.next
        if pending is not None and conn.closed and not _holds_event(pending):
            # The Runtime API closed the connection after its reply (no keep-alive): the
            # `/next` behind the answer went with it. Ask again on a fresh connection;
            # this is no failure of the API.
            _drop(pending)
            return None, None
        return conn, pending

    def _answer(self, answer: _Invocation, result: Any, error: LambdaError | None) -> str | None:
        """Called by the slot, on the loop: marshal (so the error type is known) and write
        the answer's request at once.

        A timeout is not answered: on Lambda the platform owns the deadline and answers
        the caller itself (an error posted just before it would count as a function error,
        not a timeout). The runtime logs it, as the platform does, and asks for its next
        event.
        """
        if error is None:
            try:
                data = marshal.dumps(result)
                if len(data) <= DEFAULT_MAX_PAYLOAD:
                    answer.post(b"response", data, b"content-type: application/json\r\n")
                    return None
                error = response_too_large(len(data))
            except LambdaError as exc:
                error = exc
        if error.error_type == TIMED_OUT:
            log.error(error.message, extra={"requestId": answer.request_id})
            answer.replied.set_result(_LEFT_TO_PLATFORM)
            return error.error_type
        body, headers = invocation_error(error, answer.request_id)
        answer.post(b"error", body, headers)
        return error.error_type

    async def _post(
        self,
        conn: ClientConnection | None,
        request_id: str,
        kind: bytes,
        body: bytes,
        headers: bytes,
    ) -> ClientConnection | None:
        path = _path(request_id, kind)
        for _ in range(2):  # one retry on a fresh connection if this one broke
            try:
                if conn is None or conn.closed:
                    conn = await ClientConnection.open(self.host, self.port)
                resp = await conn.request(b"POST", path, body, headers)
            except (OSError, HttpClientError) as exc:
                log.warning("posting /%s for %s failed: %s", kind.decode(), request_id, exc)
                conn = None
                continue
            _check(resp, request_id)
            return conn
        return conn


def _path(request_id: str, kind: bytes) -> bytes:
    return b"%s/invocation/%s/%s" % (PREFIX, request_id.encode(), kind)


def _check(resp: Response, request_id: str) -> None:
    """Log what the Runtime API said to an answer, when it did not take it."""
    if resp.status == 410:
        # The platform timed it out a moment before the runtime's own clock did: expected,
        # and the platform has logged the timeout.
        log.debug("answer for %s came after its deadline (410)", request_id)
    elif resp.status >= 300:
        log.error(
            "Runtime API refused the answer for %s: %d %r",
            request_id,
            resp.status,
            resp.body[:200],
        )


def _holds_event(pending: asyncio.Future[Response]) -> bool:
    """Whether a `/next` already came back with an invocation."""
    return pending.done() and not pending.cancelled() and pending.exception() is None


def _drop(pending: asyncio.Future[Response]) -> None:
    """Let go of a `/next` no one will read: cancelled, or its failure marked as seen (so
    asyncio does not report an exception that was never retrieved)."""
    if not pending.done():
        pending.cancel()
    elif not pending.cancelled():
        pending.exception()


_NOTHING_POSTED = (b"", b"", b"")
#: The "reply" to an invocation that timed out: nothing was posted, the platform answers.
_LEFT_TO_PLATFORM = Response(0, {}, b"")


class _Invocation(Job):
    """An invocation from `/next` as a job, and its answer: what was posted, the Runtime
    API's reply to it, and the `/next` pipelined behind it.

    Made as a Job (by position, see Job), then told its connection: one object per
    invocation, not a job, an answer and a callback joining them.
    """

    __slots__ = ("conn", "next", "posted", "replied", "source", "streamer")

    conn: ClientConnection
    next: asyncio.Future[Response] | None
    posted: tuple[bytes, bytes, bytes]
    replied: asyncio.Future[Response]
    source: RuntimeApiSource
    streamer: StreamPost

    def reply(self, result: Any, error: LambdaError | None) -> str | None:
        return self.source._answer(self, result, error)

    def stream(self) -> ResponseStream | None:
        """The Runtime API's streaming response mode, when this function's answers may
        stream (see `worker.sources.stream_post`)."""
        if not self.source.streams:
            return None
        from worker.sources.stream_post import StreamPost

        self.streamer = StreamPost(self, self.source.stream_limit)
        # From now on this invocation answers as a streamed one: a class of its own, so
        # the invocations that never ask cost no check of it in `reply`.
        self.__class__ = _StreamedInvocation
        return self.streamer

    def post(self, kind: bytes, body: bytes, headers: bytes) -> None:
        self.posted = (kind, body, headers)
        conn = self.conn
        data = conn.encode(b"POST", _path(self.request_id, kind), body, headers)
        try:
            if self.source.pipeline and not self.source.stopping:
                self.next = self.replied.get_loop().create_future()
                conn.send([data, conn.encode(b"GET", NEXT)], self.replied, self.next)
            else:
                conn.send([data], self.replied)
        except HttpClientError as exc:
            self.next = None
            self.replied.set_exception(exc)


class _StreamedInvocation(_Invocation):
    """An invocation that offered its handler a stream: once the head went out, its
    reply ends (or, with an error, aborts) the stream; before that it answers whole."""

    __slots__ = ()

    def stream(self) -> ResponseStream | None:
        return self.streamer

    def reply(self, result: Any, error: LambdaError | None) -> str | None:
        streamer = self.streamer
        if streamer.started:
            return streamer.finish(result, error)
        return self.source._answer(self, result, error)
