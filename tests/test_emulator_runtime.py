"""The emulator's Runtime API: queueing, deadlines, late answers, init errors, pipelining."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.client import invoke, request
from worker.config import DEFAULT_MAX_PAYLOAD
from worker.emulator.runtime import RuntimeApi, RuntimeProtocol, parse_error
from worker.errors import LambdaError
from worker.jobs import Job


def recorder() -> tuple[list[tuple[Any, LambdaError | None]], Job]:
    seen: list[tuple[Any, LambdaError | None]] = []

    def reply(result: Any, error: LambdaError | None) -> str | None:
        seen.append((result, error))
        return None

    return seen, Job({"k": 1}, reply)


def test_queue_bound_then_429() -> None:
    api = RuntimeApi(queue_size=2, timeout=3, function_arn="arn")
    assert api.submit(recorder()[1]) and api.submit(recorder()[1])
    assert not api.submit(recorder()[1])  # the front answers 429


def test_poll_gets_queued_work_and_response_passes_through() -> None:
    api = RuntimeApi(queue_size=2, timeout=3, function_arn="arn")
    seen, job = recorder()
    api.submit(job)
    delivered: list[tuple[Job, float]] = []
    api.poll(lambda j, deadline: delivered.append((j, deadline)))
    assert delivered[0][0] is job and delivered[0][1] > time.time()
    assert api.respond(job.request_id, b'{"x": 1}') == 202
    assert orjson.dumps(seen[0][0]) == b'{"x": 1}'  # bytes as the runtime sent them
    assert api.respond(job.request_id, b"{}") == 400  # answered already: unknown


def test_deadline_answers_the_caller_and_a_late_answer_gets_410() -> None:
    api = RuntimeApi(queue_size=2, timeout=0.5, function_arn="arn")
    seen, job = recorder()
    api.poll(lambda j, d: None)
    api.submit(job)
    api.expire(time.time() + 1)
    assert seen[0][1] is not None and seen[0][1].error_type == "Sandbox.Timedout"
    assert seen[0][1].message == "Task timed out after 0.50 seconds"
    assert api.respond(job.request_id, b"{}") == 410
    assert api.error(job.request_id, b"{}", None) == 410


def test_init_error_once_then_403_and_every_invoke_sees_it() -> None:
    api = RuntimeApi(queue_size=2, timeout=3, function_arn="arn")
    queued_seen, queued = recorder()
    api.submit(queued)
    body = orjson.dumps({"errorType": "Runtime.ImportModuleError", "errorMessage": "nope"})
    assert api.report_init_error(body, "Runtime.ImportModuleError") == 202
    assert api.report_init_error(body, "Runtime.ImportModuleError") == 403
    assert queued_seen[0][1] is not None
    later_seen, later = recorder()
    assert api.submit(later)
    assert later_seen[0][1] is not None
    assert later_seen[0][1].error_type == "Runtime.ImportModuleError"


def test_parse_error_falls_back_to_the_header() -> None:
    assert parse_error(b"not json", "Function.Oops").error_type == "Function.Oops"
    assert parse_error(b"[]", None).error_type == "Runtime.Unknown"


class _Transport:
    """Records what the protocol writes, one entry per write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        pass


def test_a_pipelined_answer_and_next_get_their_replies_in_one_write() -> None:
    """A runtime that writes its answer and its next `/next` together is answered with the
    202 and the next event together: one write, in order."""
    api = RuntimeApi(queue_size=4, timeout=3, function_arn="arn")
    first_seen, first = recorder()
    _, second = recorder()
    api.submit(first)
    api.submit(second)
    proto = RuntimeProtocol(api)
    transport = _Transport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    proto.data_received(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n")
    assert len(transport.writes) == 1 and first.request_id.encode() in transport.writes[0]
    proto.data_received(
        b"POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\n"
        b'content-length: 7\r\n\r\n{"a":1}'
        b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n" % first.request_id.encode()
    )
    assert len(transport.writes) == 2
    reply, event = transport.writes[1].split(b"HTTP/1.1 ")[1:]
    assert reply.startswith(b"202 ")
    assert event.startswith(b"200 ") and second.request_id.encode() in event
    assert orjson.dumps(first_seen[0][0]) == b'{"a":1}'


def test_replies_outside_a_read_are_written_at_once() -> None:
    """A `/next` that waited is answered when an invoke comes, not at the next read."""
    api = RuntimeApi(queue_size=4, timeout=3, function_arn="arn")
    proto = RuntimeProtocol(api)
    transport = _Transport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    proto.data_received(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n")
    assert transport.writes == []  # the long poll waits
    _, job = recorder()
    api.submit(job)
    assert len(transport.writes) == 1 and job.request_id.encode() in transport.writes[0]


# -- streamed answers (the Runtime API's streaming response mode) ---------------------------


def test_a_streamed_answer_queued_behind_a_next_is_read_whole() -> None:
    """A streamed `/response` that arrives while a `/next` before it on the connection still
    waits is gathered and answered in order (after that `/next`'s reply); an Invoke
    caller gets the bytes whole, prelude and all."""
    api = RuntimeApi(queue_size=4, timeout=3, function_arn="arn")
    seen, job = recorder()
    api.submit(job)
    proto = RuntimeProtocol(api)
    transport = _Transport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    proto.data_received(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n")
    body = b'{"statusCode":200}' + b"\0" * 8 + b"hello"
    proto.data_received(
        b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n"
        b"POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\n"
        b"lambda-runtime-function-response-mode: streaming\r\n"
        b"content-type: application/vnd.awslambda.http-integration-response\r\n"
        b"transfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
        % (job.request_id.encode(), len(body), body)
    )
    assert not seen and len(transport.writes) == 1  # the second /next waits: so does the POST
    _, second = recorder()
    api.submit(second)
    replies = b"".join(transport.writes[1:]).split(b"HTTP/1.1 ")
    assert replies[1].startswith(b"200 ") and replies[2].startswith(b"202 ")  # in order
    assert orjson.dumps(seen[0][0]) == body


async def _chunked_head(
    port: int, path: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int, list[str]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n".encode())
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)).decode("latin-1")
    lines = head.split("\r\n")
    headers = [line.lower() for line in lines[1:] if line]
    assert "transfer-encoding: chunked" in headers
    return reader, writer, int(lines[0].split()[1]), headers


async def _chunk(reader: asyncio.StreamReader) -> bytes:
    """The next chunk of a chunked body (b"" for the last one)."""
    size = int((await asyncio.wait_for(reader.readline(), 20)).strip(), 16)
    data = await asyncio.wait_for(reader.readexactly(size + 2), 20)
    return data[:-2]


STREAMING = {"WORKER_INVOKE_MODE": "RESPONSE_STREAM"}


async def test_a_streaming_response_reaches_the_caller_chunk_by_chunk(
    emulate: Any, tmp_path: Path
) -> None:
    """FastAPI's StreamingResponse under `worker lambda`, through the emulator's proxy path
    (a Function URL in RESPONSE_STREAM mode): status, headers and both cookies first, then
    each chunk as the app sends it (the app cannot send the second before the test has
    read the first: it waits for the gate file)."""
    emu = emulate("tests.apps.lambda_web_apps:stream_app", env=STREAMING)
    gate = tmp_path / "gate"
    reader, writer, status, headers = await _chunked_head(emu.port, f"/stream?gate={gate}")
    assert status == 200
    assert "content-type: text/event-stream; charset=utf-8" in headers
    assert [h for h in headers if h.startswith("set-cookie")] == [
        "set-cookie: a=1; path=/; samesite=lax",
        "set-cookie: b=2; path=/; samesite=lax",
    ]
    assert await _chunk(reader) == b"first\n"
    gate.touch()
    rest = b""
    while chunk := await _chunk(reader):
        rest += chunk
    assert rest == b"second\nthird\n"
    writer.close()


async def test_an_async_generator_handler_streams_the_same_way(
    emulate: Any, tmp_path: Path
) -> None:
    emu = emulate("tests.apps.lambda_web_apps.generator", env=STREAMING)
    gate = tmp_path / "gate"
    reader, writer, status, headers = await _chunked_head(emu.port, f"/g?gate={gate}")
    assert status == 201
    assert "content-type: text/plain" in headers and "set-cookie: g=1" in headers
    assert await _chunk(reader) == b"first\n"
    gate.touch()
    assert await _chunk(reader) == b"second\n"
    assert await _chunk(reader) == b""
    writer.close()


async def test_an_error_after_the_first_chunk_aborts_the_callers_stream(
    emulate: Any, tmp_path: Path
) -> None:
    """The app fails mid-body: the runtime sends the error in its trailers, and the caller's
    chunked answer ends without its last chunk (the connection closes)."""
    emu = emulate("tests.apps.lambda_web_apps:stream_app", env=STREAMING)
    gate = tmp_path / "gate"
    reader, writer, status, _ = await _chunked_head(emu.port, f"/stream-fail?gate={gate}")
    assert status == 200
    assert await _chunk(reader) == b"first\n"
    gate.touch()
    with pytest.raises((asyncio.IncompleteReadError, ValueError, ConnectionError)):
        await _chunk(reader)  # no last chunk: the stream was aborted
    writer.close()
    assert "RuntimeError: failed mid-stream" in emu.logs()


async def test_the_streamed_size_bound_ends_the_stream(emulate: Any) -> None:
    """Past WORKER_MAX_STREAMED_RESPONSE (Lambda's 200 MiB; here 1 MiB) the runtime ends
    the stream with a Function.ResponseSizeTooLarge trailer; the caller's stream is cut."""
    env = {**STREAMING, "WORKER_MAX_STREAMED_RESPONSE": str(1024 * 1024)}
    emu = emulate("tests.apps.lambda_web_apps:stream_app", env=env)
    reader, writer, status, _ = await _chunked_head(emu.port, "/big?mib=3")
    assert status == 200
    received = 0
    with pytest.raises((asyncio.IncompleteReadError, ValueError, ConnectionError)):
        while chunk := await _chunk(reader):
            received += len(chunk)
    assert received <= 1024 * 1024
    writer.close()
    assert "Function.ResponseSizeTooLarge" in emu.logs()


async def test_buffered_mode_and_the_invoke_api_answer_whole(emulate: Any) -> None:
    """Without RESPONSE_STREAM the streamed body is gathered and answered whole, as under
    Mangum; with it, an Invoke caller still gets one whole answer."""
    emu = emulate("tests.apps.lambda_web_apps:stream_app")
    ans = await request(emu.port, "GET", "/big?mib=1")
    assert ans.status == 200 and len(ans.body) == 1024 * 1024
    assert "transfer-encoding" not in ans.headers
    emu = emulate("tests.apps.lambda_web_apps.generator", env=STREAMING)
    ans = await invoke(emu.port, {"queryStringParameters": {"gate": "/"}})
    assert ans.status == 200 and ans.body == b"first\nsecond\n"


def test_a_response_over_the_limit_is_refused_with_its_size() -> None:
    """The Runtime API's limit is 6 MiB + 100 bytes: a post of exactly that is delivered,
    one byte more is refused (413 to the runtime, the platform's error to the caller)."""
    api = RuntimeApi(queue_size=4, timeout=30, function_arn="arn")
    proto = RuntimeProtocol(api)
    transport = _Transport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    answers = []
    for size in (DEFAULT_MAX_PAYLOAD, DEFAULT_MAX_PAYLOAD + 1):
        seen, job = recorder()
        api.submit(job)
        proto.data_received(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n")
        head = b"POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\n" % (
            job.request_id.encode()
        )
        body = b'"' + b"x" * (size - 2) + b'"'
        proto.data_received(head + b"content-length: %d\r\n\r\n" % size + body)
        answers.append((seen[0], transport.writes[-1]))
    (delivered, accepted), ((_, error), refused) = answers
    assert len(orjson.dumps(delivered[0])) == DEFAULT_MAX_PAYLOAD and delivered[1] is None
    assert accepted.startswith(b"HTTP/1.1 202 ")
    message = (
        "Response payload size (6291557 bytes) exceeded maximum allowed payload size "
        "(6291556 bytes)."
    )
    assert error is not None and error.error_type == "Function.ResponseSizeTooLarge"
    assert error.message == message
    assert refused.startswith(b"HTTP/1.1 413 ") and message.encode() in refused


def test_a_late_answer_is_shown(caplog: pytest.LogCaptureFixture) -> None:
    """A runtime answering after the deadline is refused (410) and the emulator says so:
    what tells whether the runtime kept to the platform's clock."""
    api = RuntimeApi(queue_size=2, timeout=0.5, function_arn="arn")
    _, job = recorder()
    api.poll(lambda j, d: None)
    api.submit(job)
    with caplog.at_level(logging.INFO, "worker.emulator"):
        assert api.respond(job.request_id, b"{}") == 202
        assert "after its deadline" not in caplog.text
        _, late = recorder()
        api.poll(lambda j, d: None)
        api.submit(late)
        api.expire(time.time() + 1)
        assert api.error(late.request_id, b"{}", None) == 410
    assert f"an answer for {late.request_id} came after its deadline (410)" in caplog.text


# -- SnapStart (`worker emulate --snapstart`) ----------------------------------------------

NEXT = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n"
RESTORE_NEXT = b"GET /2018-06-01/runtime/restore/next HTTP/1.1\r\n\r\n"


def _connected(api: RuntimeApi) -> tuple[RuntimeProtocol, _Transport]:
    proto = RuntimeProtocol(api)
    transport = _Transport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    return proto, transport


def _status_and_body(data: bytes) -> tuple[int, bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_a_next_before_the_restore_is_refused_in_lambdas_shape(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = RuntimeApi(queue_size=2, timeout=3, function_arn="arn", snapstart=True)
    proto, transport = _connected(api)
    with caplog.at_level(logging.INFO, "worker.emulator"):
        proto.data_received(NEXT)  # during the init
        other, held = _connected(api)
        other.data_received(RESTORE_NEXT)
        proto.data_received(NEXT)  # during the snapshot
    assert held.writes == []  # the snapshot: restore/next is held
    for write in transport.writes:
        status, body = _status_and_body(write)
        error = orjson.loads(body)
        assert status == 403 and error["errorType"] == "InvalidStateTransition"
        assert set(error) == {"errorMessage", "errorType"}
    assert len(transport.writes) == 2
    assert caplog.text.count("refused a /next before the restore") == 2


def test_the_first_invoke_restores_then_the_runtime_polls() -> None:
    api = RuntimeApi(queue_size=2, timeout=3, function_arn="arn", snapstart=True)
    ready: list[str] = []
    api.on_first_poll = lambda: ready.append("ready")
    runtime, held = _connected(api)
    runtime.data_received(RESTORE_NEXT)
    assert api.phase == "snapshot" and ready == ["ready"]  # init done at the snapshot
    runtime.data_received(NEXT)  # pipelined behind the held call: waits its turn
    assert held.writes == []
    _, job = recorder()
    assert api.submit(job)
    assert api.phase == "restored"
    status, _ = _status_and_body(held.writes[0])
    assert status == 200  # restore/next returned
    assert job.request_id.encode() in held.writes[1]  # then the /next got the invoke


def test_restore_next_outside_a_snapstart_init_is_refused() -> None:
    for api in (
        RuntimeApi(queue_size=2, timeout=3, function_arn="arn"),
        RuntimeApi(queue_size=2, timeout=3, function_arn="arn", snapstart=True),
    ):
        if api.snapstart:
            api.snapshot(lambda: None)  # the snapshot is taken once
        proto, transport = _connected(api)
        proto.data_received(RESTORE_NEXT)
        assert _status_and_body(transport.writes[0])[0] == 403


def test_a_restore_error_is_recorded_and_every_invoke_sees_it() -> None:
    api = RuntimeApi(queue_size=2, timeout=3, function_arn="arn", snapstart=True)
    body = b'{"errorMessage":"no db","errorType":"ConnectionError","stackTrace":[]}'
    assert api.report_restore_error(body, "Runtime.AfterRestoreError") == 403  # not restored
    api.snapshot(lambda: None)
    seen, job = recorder()
    api.submit(job)  # restores; queued for the runtime
    assert api.report_restore_error(body, "Runtime.AfterRestoreError") == 202
    assert api.restore_error is not None and api.restore_error.message == "no db"
    assert seen[0][1] is not None and seen[0][1].error_type == "ConnectionError"
    later, other = recorder()
    api.submit(other)
    assert later[0][1] is api.restore_error
    assert api.report_restore_error(body, "Runtime.AfterRestoreError") == 403  # once
