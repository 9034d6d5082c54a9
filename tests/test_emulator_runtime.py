"""The emulator's Runtime API: queueing, deadlines, late answers, init errors, pipelining."""

from __future__ import annotations

import time
from typing import Any

import orjson

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
