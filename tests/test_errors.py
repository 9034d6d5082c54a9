from __future__ import annotations

from worker.errors import from_exception, timed_out, too_many_requests


def test_handler_exception_shape() -> None:
    try:
        raise ValueError("boom")
    except ValueError as exc:
        err = from_exception(exc)
    body = err.body("rid")
    assert body["errorType"] == "ValueError" and body["errorMessage"] == "boom"
    assert body["requestId"] == "rid"
    assert any("test_handler_exception_shape" in line for line in body["stackTrace"])


def test_timeout_and_throttle_messages() -> None:
    assert timed_out(3).message == "Task timed out after 3.00 seconds"
    assert timed_out(3).error_type == "Sandbox.Timedout"
    assert too_many_requests("x").error_type == "TooManyRequestsException"
