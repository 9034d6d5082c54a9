"""Lambda mode's streamed answers: the Runtime API's streaming response mode, on the wire and
through the emulator's Runtime API to a caller's stream.

The runtime's side is the real `RuntimeApiSource` (its pool replaced by a coroutine per
job that streams as the ASGI bridge does: `job.stream()`, start, writes, end, then
`reply(STREAMED)`); the other side is either a server that records the request's raw
bytes, or the emulator's real Runtime API with a caller whose stream records what
reaches it.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Any

import httptools
import orjson
import pytest

from worker.emulator import runtime as emulator
from worker.emulator.runtime import RuntimeApi, RuntimeProtocol
from worker.errors import LambdaError
from worker.jobs import Job
from worker.sources import stream_post
from worker.sources.runtime_api import RuntimeApiSource
from worker.sources.stream_post import StreamPost
from worker.streaming import STREAMED, Headers

Produce = Callable[[Job], Awaitable[None]]
#: The handlers' tasks, held until they end.
_running: set[asyncio.Future[None]] = set()


def _spawn(work: Awaitable[None]) -> None:
    task = asyncio.ensure_future(work)
    _running.add(task)
    task.add_done_callback(_running.discard)


def _next_response(request_id: bytes, event: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nlambda-runtime-aws-request-id: %s\r\n"
        b"lambda-runtime-deadline-ms: 9999999999999\r\ncontent-length: %d\r\n\r\n%s"
    ) % (request_id, len(event), event)


V2_EVENT = orjson.dumps(
    {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/s",
        "rawQueryString": "",
        "headers": {"host": "abc.lambda-url.us-east-1.on.aws"},
        "requestContext": {
            "domainName": "abc.lambda-url.us-east-1.on.aws",
            "http": {"method": "GET", "path": "/s"},
        },
        "isBase64Encoded": False,
    }
)


def _source(port: int, produce: Produce, **kwargs: Any) -> RuntimeApiSource:
    """A Runtime API client whose pool runs `produce(job)` for each invocation."""

    def submit(job: Job) -> bool:
        _spawn(produce(job))
        return True

    return RuntimeApiSource(f"127.0.0.1:{port}", submit, slots=1, streams=True, **kwargs)


class _Recorder(asyncio.Protocol):
    """A Runtime API that hands out one event, then records the raw bytes of the request
    that answers it (parsed with httptools, trailers included) and accepts it."""

    def __init__(self, event: bytes) -> None:
        self.event = event
        self.parser = httptools.HttpRequestParser(self)
        self.raw = b""
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.trailers: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.in_body = False
        self.pieces: list[bytes] = []
        self.answered = asyncio.Event()
        self.requests = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.raw += data
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.requests += 1

    def on_url(self, url: bytes) -> None:
        if self.requests == 2:  # the answer: what is recorded
            self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.requests == 2:
            (self.trailers if self.in_body else self.headers).append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.in_body = True

    def on_body(self, body: bytes) -> None:
        self.body += body
        self.pieces.append(body)

    def on_message_complete(self) -> None:
        assert self.transport is not None
        self.in_body = False
        if self.requests == 1:
            self.transport.write(_next_response(b"r1", self.event))
        elif self.requests == 2:
            self.transport.write(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
            self.answered.set()
        # later: the pipelined `/next` long-polls


async def _record(event: bytes, produce: Produce, **kwargs: Any) -> _Recorder:
    api = _Recorder(event)
    server = await asyncio.get_running_loop().create_server(lambda: api, "127.0.0.1", 0)
    source = _source(server.sockets[0].getsockname()[1], produce, **kwargs)
    running = asyncio.ensure_future(source.run())
    await asyncio.wait_for(api.answered.wait(), 10)
    source.stop()
    await asyncio.wait_for(running, 10)
    server.close()
    return api


async def _two_chunks(job: Job) -> None:
    stream = job.stream()
    assert isinstance(stream, StreamPost)
    headers: Headers = [
        (b"content-type", b"text/plain"),
        (b"x-a", b"1"),
        (b"x-a", b"2"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]
    stream.start(201, headers)
    for chunk in (b"first ", b"second"):
        waiting = stream.write(chunk)
        if waiting is not None:
            await waiting
    stream.end()
    job.reply(STREAMED, None)


async def test_a_streamed_http_answer_on_the_wire() -> None:
    """The request AWS's runtimes make: streaming mode, chunked, the HTTP integration
    content type and trailer names, then the prelude, 8 NULs and the body's chunks; the
    next `/next` pipelined behind its last chunk."""
    api = await _record(V2_EVENT, _two_chunks)
    assert api.url == b"/2018-06-01/runtime/invocation/r1/response"
    headers = dict(api.headers)
    assert headers[b"lambda-runtime-function-response-mode"] == b"streaming"
    assert headers[b"transfer-encoding"] == b"chunked"
    assert headers[b"content-type"] == b"application/vnd.awslambda.http-integration-response"
    assert headers[b"trailer"] == (
        b"Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body"
    )
    assert b"content-length" not in headers
    prelude, _, body = api.body.partition(b"\0" * 8)
    assert orjson.loads(prelude) == {
        "statusCode": 201,
        "headers": {"content-type": "text/plain", "x-a": "1,2"},
        "cookies": ["a=1", "b=2"],
    }
    assert body == b"first second"
    assert api.pieces[-2:] == [b"first ", b"second"]  # a chunk per write
    assert api.trailers == []
    next_poll = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n"
    assert api.raw.count(next_poll) == 2
    assert api.raw.rsplit(next_poll, 1)[0].endswith(b"second\r\n0\r\n\r\n")


async def test_an_error_after_the_head_goes_in_the_trailers() -> None:
    async def fails(job: Job) -> None:
        stream = job.stream()
        assert stream is not None
        stream.start(200, [(b"content-type", b"text/plain")])
        stream.write(b"partial")
        job.reply(None, LambdaError("ValueError", "failed mid-stream", ["  File x\n"]))

    api = await _record(V2_EVENT, fails)
    trailers = dict(api.trailers)
    assert trailers[b"lambda-runtime-function-error-type"] == b"Function.ValueError"
    error = orjson.loads(base64.b64decode(trailers[b"lambda-runtime-function-error-body"]))
    assert error == {
        "errorMessage": "failed mid-stream",
        "errorType": "ValueError",
        "requestId": "r1",
        "stackTrace": ["  File x\n"],
    }
    assert api.body.endswith(b"partial")


async def test_a_stream_for_an_event_that_is_not_http_is_the_bare_body() -> None:
    api = await _record(b'{"prompt": "hi"}', _two_chunks)
    assert dict(api.headers)[b"content-type"] == b"application/octet-stream"
    assert api.body == b"first second"  # no prelude


async def test_past_the_bound_the_stream_ends_with_a_size_error() -> None:
    raised: list[LambdaError] = []

    async def big(job: Job) -> None:
        stream = job.stream()
        assert isinstance(stream, StreamPost)
        stream.limit = 10
        stream.start(200, [])
        stream.write(b"12345")
        try:
            stream.write(b"678901")
        except LambdaError as exc:
            raised.append(exc)
            job.reply(None, exc)

    api = await _record(V2_EVENT, big)
    assert raised[0].error_type == "Function.ResponseSizeTooLarge"
    assert "(11 bytes)" in raised[0].message and "(10 bytes)" in raised[0].message
    trailers = dict(api.trailers)
    assert trailers[b"lambda-runtime-function-error-type"] == b"Function.ResponseSizeTooLarge"
    assert api.body.endswith(b"12345")  # the chunk past the bound was not sent


def test_the_bound_is_lambdas_200_mib() -> None:
    assert stream_post.MAX_STREAMED == 200 * 1024 * 1024
    assert emulator.STREAM_LIMIT == 200 * 1024 * 1024


async def test_buffered_mode_offers_no_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without WORKER_INVOKE_MODE=RESPONSE_STREAM the handler gets no stream: an API
    Gateway or a buffered Function URL can take only a whole answer."""
    offered: list[Any] = []

    async def whole(job: Job) -> None:
        offered.append(job.stream())
        job.reply({"statusCode": 200, "body": "whole"}, None)

    api = _Recorder(V2_EVENT)
    server = await asyncio.get_running_loop().create_server(lambda: api, "127.0.0.1", 0)

    def submit(job: Job) -> bool:
        _spawn(whole(job))
        return True

    source = RuntimeApiSource(f"127.0.0.1:{server.sockets[0].getsockname()[1]}", submit, slots=1)
    running = asyncio.ensure_future(source.run())
    await asyncio.wait_for(api.answered.wait(), 10)
    source.stop()
    await asyncio.wait_for(running, 10)
    server.close()
    assert offered == [None]
    assert orjson.loads(api.body) == {"statusCode": 200, "body": "whole"}


# -- through the emulator's Runtime API to a caller ------------------------------------------


class _CallerStream:
    """What a caller of the emulator receives, piece by piece (the front's ResponseStream)."""

    def __init__(self) -> None:
        self.started = False
        self.status = 0
        self.headers: Headers = []
        self.chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self.ended = False
        self.hold: asyncio.Future[None] | None = None  # set: the caller reads slowly

    def start(self, status: int, headers: Headers) -> None:
        self.started = True
        self.status, self.headers = status, headers

    def write(self, chunk: bytes) -> asyncio.Future[None] | None:
        self.chunks.put_nowait(chunk)
        return self.hold

    def end(self) -> None:
        self.ended = True


class _Caller(Job):
    """A proxy-path job (its event made from a request, so no raw bytes) with a stream."""

    def __init__(self, event: bytes, kind: str = "apigw-http", stream: bool = True) -> None:
        super().__init__(orjson.loads(event), None, kind=kind)
        self.to_caller = _CallerStream() if stream else None
        self.answers: list[tuple[Any, LambdaError | None]] = []
        self.answered = asyncio.Event()

    def stream(self) -> Any:
        return self.to_caller

    def reply(self, result: Any, error: LambdaError | None) -> str | None:
        self.answers.append((result, error))
        self.answered.set()
        return None


async def _through_emulator(
    caller: Job, produce: Produce, **kwargs: Any
) -> tuple[RuntimeApi, Callable[[], Awaitable[None]]]:
    api = RuntimeApi(queue_size=4, timeout=30, function_arn="arn")
    server = await asyncio.get_running_loop().create_server(
        lambda: RuntimeProtocol(api), "127.0.0.1", 0
    )
    source = _source(server.sockets[0].getsockname()[1], produce, **kwargs)
    running = asyncio.ensure_future(source.run())
    assert api.submit(caller)

    async def stop() -> None:
        source.stop()
        await asyncio.wait_for(running, 10)
        server.close()

    return api, stop


async def test_the_caller_gets_each_chunk_as_it_is_sent() -> None:
    """The prelude becomes the caller's status, headers and cookies; the first chunk
    reaches the caller before the handler has produced the second."""
    caller = _Caller(V2_EVENT)
    go_on = asyncio.Event()

    async def produce(job: Job) -> None:
        stream = job.stream()
        assert stream is not None
        stream.start(201, [(b"content-type", b"text/event-stream"), (b"set-cookie", b"a=1")])
        stream.write(b"data: 1\n\n")
        await go_on.wait()
        stream.write(b"data: 2\n\n")
        stream.end()
        job.reply(STREAMED, None)

    _, stop = await _through_emulator(caller, produce)
    to_caller = caller.to_caller
    assert to_caller is not None
    assert await asyncio.wait_for(to_caller.chunks.get(), 10) == b"data: 1\n\n"
    assert to_caller.status == 201 and not caller.answers
    assert to_caller.headers == [
        (b"content-type", b"text/event-stream"),
        (b"set-cookie", b"a=1"),
    ]
    go_on.set()
    assert await asyncio.wait_for(to_caller.chunks.get(), 10) == b"data: 2\n\n"
    await asyncio.wait_for(caller.answered.wait(), 10)
    assert caller.answers == [(STREAMED, None)] and to_caller.ended
    await stop()


async def test_an_error_mid_stream_aborts_the_callers_stream() -> None:
    caller = _Caller(V2_EVENT)

    async def produce(job: Job) -> None:
        stream = job.stream()
        assert stream is not None
        stream.start(200, [(b"content-type", b"text/plain")])
        stream.write(b"first")
        await asyncio.sleep(0)
        job.reply(None, LambdaError("RuntimeError", "failed mid-stream"))

    _, stop = await _through_emulator(caller, produce)
    await asyncio.wait_for(caller.answered.wait(), 10)
    assert caller.to_caller is not None and caller.to_caller.started
    assert caller.to_caller.chunks.get_nowait() == b"first"
    [(result, error)] = caller.answers
    assert result is None and error is not None
    assert (error.error_type, error.message) == ("RuntimeError", "failed mid-stream")
    await stop()


async def test_an_error_before_any_body_is_the_callers_lambda_error() -> None:
    """Nothing reached the caller yet: the trailers' error is its whole answer."""
    caller = _Caller(V2_EVENT, stream=False)

    async def produce(job: Job) -> None:
        stream = job.stream()
        assert stream is not None
        stream.start(200, [])
        job.reply(None, LambdaError("KeyError", "'x'"))

    _, stop = await _through_emulator(caller, produce)
    await asyncio.wait_for(caller.answered.wait(), 10)
    [(result, error)] = caller.answers
    assert result is None and error is not None and error.error_type == "KeyError"
    await stop()


async def test_without_a_caller_stream_the_answer_is_gathered() -> None:
    """A proxy caller that cannot stream gets the API Gateway response the stream stands
    for; an Invoke caller (any other kind) gets the bytes as the runtime sent them."""
    caller = _Caller(V2_EVENT, stream=False)
    _, stop = await _through_emulator(caller, _two_chunks)
    await asyncio.wait_for(caller.answered.wait(), 10)
    [(result, error)] = caller.answers
    assert error is None
    assert result == {
        "statusCode": 201,
        "headers": {"content-type": "text/plain", "x-a": "1,2"},
        "cookies": ["a=1", "b=2"],
        "body": base64.b64encode(b"first second").decode(),
        "isBase64Encoded": True,
    }
    await stop()

    invoked = _Caller(b'{"prompt": "hi"}', kind="direct", stream=False)
    _, stop = await _through_emulator(invoked, _two_chunks)
    await asyncio.wait_for(invoked.answered.wait(), 10)
    [(result, error)] = invoked.answers
    assert orjson.dumps(result) == b"first second"
    await stop()


async def test_a_slow_caller_holds_the_runtime_back() -> None:
    """Flow control end to end: while the caller does not read, the emulator stops
    reading the runtime, and the runtime's writes wait (its `write` returns a future)
    instead of buffering the whole answer; all of it arrives once the caller reads."""
    caller = _Caller(V2_EVENT)
    assert caller.to_caller is not None
    caller.to_caller.hold = asyncio.get_running_loop().create_future()
    waited = asyncio.Event()
    chunk = b"x" * 65536
    count = 256  # 16 MiB: far beyond what the sockets' buffers hold

    async def produce(job: Job) -> None:
        stream = job.stream()
        assert stream is not None
        stream.start(200, [(b"content-type", b"application/octet-stream")])
        for _ in range(count):
            waiting = stream.write(chunk)
            if waiting is not None:
                waited.set()
                await waiting
        stream.end()
        job.reply(STREAMED, None)

    _, stop = await _through_emulator(caller, produce)
    await asyncio.wait_for(waited.wait(), 10)
    assert not caller.answers
    caller.to_caller.hold.set_result(None)
    caller.to_caller.hold = None
    await asyncio.wait_for(caller.answered.wait(), 10)
    received = 0
    while not caller.to_caller.chunks.empty():
        received += len(caller.to_caller.chunks.get_nowait())
    assert received == len(chunk) * count
    await stop()


async def test_the_emulators_bound_aborts_the_caller_and_refuses_the_runtime(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(emulator, "STREAM_LIMIT", 100)
    caller = _Caller(V2_EVENT)
    refused: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def produce(job: Job) -> None:
        stream = job.stream()
        assert stream is not None
        stream.start(200, [])
        stream.write(b"x" * 80)
        stream.write(b"x" * 80)
        stream.end()
        job.reply(STREAMED, None)
        reply = await job.replied  # type: ignore[attr-defined]
        refused.set_result(reply.status)

    _, stop = await _through_emulator(caller, produce)
    await asyncio.wait_for(caller.answered.wait(), 10)
    [(_, error)] = caller.answers
    assert error is not None and error.error_type == "Function.ResponseSizeTooLarge"
    assert await asyncio.wait_for(refused, 10) == 413
    await stop()


async def test_the_deadline_cuts_a_stream_and_the_rest_gets_410() -> None:
    caller = _Caller(V2_EVENT)
    go_on = asyncio.Event()
    status: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def produce(job: Job) -> None:
        stream = job.stream()
        assert stream is not None
        stream.start(200, [])
        stream.write(b"first")
        await go_on.wait()
        stream.write(b"late")
        stream.end()
        job.reply(STREAMED, None)
        status.set_result((await job.replied).status)  # type: ignore[attr-defined]

    api, stop = await _through_emulator(caller, produce)
    assert caller.to_caller is not None
    assert await asyncio.wait_for(caller.to_caller.chunks.get(), 10) == b"first"
    api.expire(float("inf"))  # the deadline passes
    [(_, error)] = caller.answers
    assert error is not None and error.error_type == "Sandbox.Timedout"
    go_on.set()
    assert await asyncio.wait_for(status, 10) == 410
    assert caller.to_caller.chunks.empty()
    await stop()
