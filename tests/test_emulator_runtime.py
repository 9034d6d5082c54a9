"""The emulator's Runtime API state: queueing, deadlines, late answers, init errors."""

from __future__ import annotations

import time
from typing import Any

import orjson

from worker.emulator.runtime import RuntimeApi, parse_error
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
