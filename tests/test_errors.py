from __future__ import annotations

import contextvars
import os
import pickle
import traceback
from concurrent.futures import ThreadPoolExecutor

import simplejson
from awslambdaric.bootstrap import extract_traceback, make_xray_fault

from worker.config import DEFAULT_MAX_PAYLOAD
from worker.errors import (
    LambdaError,
    from_exception,
    response_too_large,
    stack_of,
    timed_out,
    too_many_requests,
    user_frames,
)
from worker.placement import run_counted


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


def _fails_in_a_library(event: object, context: object) -> object:
    return simplejson.loads("{not json")


def _raised_on_an_executor_thread() -> BaseException:
    """An exception as the pool gets it from a sync handler on a thread: its traceback
    starts in the executor's frame and the runtime's (`run_counted`), then the handler's,
    then the library's."""
    with ThreadPoolExecutor(1) as threads:
        run = contextvars.copy_context().run
        future = threads.submit(run, run_counted, _fails_in_a_library, {}, None)
        exc = future.exception(timeout=10)
    assert exc is not None
    return exc


RUNTIME_FILES = (f"{os.sep}worker{os.sep}", "concurrent", "asyncio", "threading.py")


def test_runtime_frames_before_the_handler_are_dropped_and_library_frames_kept() -> None:
    exc = _raised_on_an_executor_thread()
    whole = traceback.extract_tb(exc.__traceback__)
    assert [f.name for f in whole[:2]] == ["run", "run_counted"]  # what must go
    err = from_exception(exc)
    assert err.frames is not None
    paths = [path for path, _, _ in err.frames]
    assert not any(part in path for path in paths for part in RUNTIME_FILES)
    assert paths[0] == __file__ and err.frames[0][2] == "_fails_in_a_library"
    assert all("site-packages/simplejson/" in path for path in paths[1:]) and len(paths) > 1
    # Each entry as awslambdaric formats it: traceback.format_list of plain tuples.
    kept = [(f.filename, f.lineno, f.name, f.line) for f in whole[2:]]
    assert err.stack == traceback.format_list(kept)  # type: ignore[arg-type]
    assert err.stack[0] == (
        f'  File "{__file__}", line {whole[2].lineno}, in _fails_in_a_library\n'
        '    return simplejson.loads("{not json")\n'
    )
    assert stack_of(exc) == err.stack


def test_a_traceback_of_runtime_frames_only_is_kept_whole() -> None:
    """The runtime's own failure (no user frame at all) keeps every frame: dropping them
    would leave nothing to read."""
    tb = _raised_on_an_executor_thread().__traceback__
    assert tb is not None and tb.tb_next is not None
    only_runtime = tb.tb_next
    only_runtime.tb_next = None  # run_counted's frame alone: no user code below it
    assert [name for _, _, name, _ in user_frames(tb)] == ["run", "run_counted"]
    assert user_frames(None) == []


def test_the_xray_cause_of_a_handler_error_is_awslambdarics() -> None:
    exc = _raised_on_an_executor_thread()
    err = from_exception(exc)
    tb = exc.__traceback__
    assert tb is not None and tb.tb_next is not None
    kept = extract_traceback(tb.tb_next.tb_next)  # awslambdaric's own, from the handler on
    cause = err.xray_cause()
    theirs = make_xray_fault(type(exc).__name__, str(exc), os.getcwd(), kept)
    assert cause["paths"] == list(dict.fromkeys(p for p, _, _, _ in kept))
    assert sorted(theirs.pop("paths")) == sorted(cause.pop("paths"))
    assert cause == theirs


def test_the_xray_cause_of_a_runtime_error_has_no_frames() -> None:
    """As awslambdaric reports its FaultException (a result it cannot marshal…)."""
    err = LambdaError("Runtime.MarshalError", "Unable to marshal response: nope")
    assert err.xray_cause() == make_xray_fault(
        "LambdaValidationError", "Unable to marshal response: nope", os.getcwd(), []
    )
    assert timed_out(2).xray_cause()["exceptions"][0]["type"] == "LambdaValidationError"


def test_frames_survive_a_pickle() -> None:
    """The model host sends a wrapped error across its socket."""
    err = from_exception(_raised_on_an_executor_thread())
    back = pickle.loads(pickle.dumps(err))
    assert (back.error_type, back.message, back.stack, back.frames) == (
        err.error_type,
        err.message,
        err.stack,
        err.frames,
    )


def test_response_too_large_says_the_size_in_the_platforms_words() -> None:
    err = response_too_large(7_000_002)
    assert err.error_type == "Function.ResponseSizeTooLarge"
    assert err.message == (
        "Response payload size (7000002 bytes) exceeded maximum allowed payload size "
        "(6291556 bytes)."
    )
    assert DEFAULT_MAX_PAYLOAD == 6 * 1024 * 1024 + 100
    assert "(9 bytes) exceeded maximum allowed payload size (8 bytes)." in (
        response_too_large(9, 8).message
    )
