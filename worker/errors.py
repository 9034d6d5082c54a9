"""Errors in Lambda's shape: `{"errorMessage", "errorType", "requestId", "stackTrace"}`."""

from __future__ import annotations

import os
import traceback
from types import TracebackType
from typing import Any

from worker.config import DEFAULT_MAX_PAYLOAD

#: One frame of user code: (path, line, function), what an X-Ray error cause lists.
Frame = tuple[str, int | None, str]

#: The error type of a timeout: on Lambda the platform answers it, elsewhere the runtime.
TIMED_OUT = "Sandbox.Timedout"

#: What awslambdaric names, in an X-Ray error cause, an error of the runtime's own (its
#: FaultException: a result that cannot be marshalled, an event that cannot be read).
RUNTIME_FAULT = "LambdaValidationError"


class LambdaError(Exception):
    """An error with a Lambda error type, raised by the runtime itself (not by user code).

    `frames`: the user frames of the exception it wraps (`from_exception`); None for an
    error of the runtime's own, which has no handler frames to show.
    """

    def __init__(
        self,
        error_type: str,
        message: str,
        stack: list[str] | None = None,
        frames: list[Frame] | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.stack = stack or []
        self.frames = frames

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        return error_body(self.error_type, self.message, self.stack, request_id)

    def xray_cause(self) -> dict[str, Any]:
        """The `Lambda-Runtime-Function-XRay-Error-Cause` object, as awslambdaric's
        `make_xray_fault` builds it: the working directory, the exception (message, type,
        user frames) and the files of those frames.

        An error of the runtime's own (a timeout, a result that cannot be marshalled or is
        too large, an event that cannot be read) is what awslambdaric raises as a
        FaultException, and it reports every one of those alike: type
        "LambdaValidationError", the error's message, no frames, no paths. So does this.
        """
        frames = self.frames
        if frames is None:
            kind, stack, paths = RUNTIME_FAULT, [], []
        else:
            kind = self.error_type
            stack = [{"label": name, "path": path, "line": line} for path, line, name in frames]
            paths = list(dict.fromkeys(path for path, _, _ in frames))
        try:
            cwd = os.getcwd()
        except OSError:  # the handler removed the directory it ran in
            cwd = ""
        return {
            "working_directory": cwd,
            "exceptions": [{"message": self.message, "type": kind, "stack": stack}],
            "paths": paths,
        }

    def __reduce__(
        self,
    ) -> tuple[type[LambdaError], tuple[str, str, list[str], list[Frame] | None]]:
        # Pickled across the model host's socket: rebuilt from all four fields.
        return (LambdaError, (self.error_type, self.message, self.stack, self.frames))


def error_body(
    error_type: str, message: str, stack: list[str], request_id: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"errorMessage": message, "errorType": error_type}
    if request_id is not None:
        body["requestId"] = request_id
    body["stackTrace"] = stack
    return body


def _runtime_paths() -> tuple[str, ...]:
    """Where the frames that run a handler live: this package, and the standard library's
    executor, event loop and thread machinery that carry a call to it."""
    stdlib = os.path.dirname(os.__file__)
    return (
        os.path.dirname(os.path.abspath(__file__)) + os.sep,
        os.path.join(stdlib, "concurrent", "futures") + os.sep,
        os.path.join(stdlib, "asyncio") + os.sep,
        os.path.join(stdlib, "threading.py"),
        os.path.join(stdlib, "contextvars.py"),
    )


_RUNTIME = _runtime_paths()


def user_frames(tb: TracebackType | None) -> list[tuple[str, int | None, str, str | None]]:
    """The frames of a traceback from the first one of user code on, all of them (a
    library the handler called included): (path, line, function, source line).

    Runtime frames before it are dropped, as awslambdaric drops its bootstrap's. A
    traceback with no user frame at all is the runtime's own failure: kept whole.
    """
    first = tb
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_RUNTIME):
        tb = tb.tb_next
    return [
        (f.filename, f.lineno, f.name, f.line)
        for f in traceback.extract_tb(tb if tb is not None else first)
    ]


def format_frames(frames: list[tuple[str, int | None, str, str | None]]) -> list[str]:
    """One string per frame, as awslambdaric's `stackTrace` has them (from plain tuples,
    so without the column markers Python 3.11 adds to a FrameSummary's)."""
    return traceback.format_list(frames)  # type: ignore[arg-type]


def stack_of(exc: BaseException) -> list[str]:
    """The traceback as Lambda reports it: one string per user frame."""
    return format_frames(user_frames(exc.__traceback__))


def from_exception(exc: BaseException) -> LambdaError:
    """Wrap what a handler raised: its class name is the error type, as awslambdaric does;
    its user frames make both the `stackTrace` and the X-Ray error cause."""
    if isinstance(exc, LambdaError):
        return exc
    frames = user_frames(exc.__traceback__)
    return LambdaError(
        type(exc).__name__,
        str(exc),
        format_frames(frames),
        [(path, line, name) for path, line, name, _ in frames],
    )


def timed_out(seconds: float) -> LambdaError:
    return LambdaError(TIMED_OUT, f"Task timed out after {seconds:.2f} seconds")


def queue_timed_out(seconds: float) -> LambdaError:
    """A queued invocation whose whole timeout passed before a slot was free."""
    return LambdaError(
        TIMED_OUT, f"Task timed out after {seconds:.2f} seconds waiting for a free slot"
    )


def response_too_large(size: int, limit: int = DEFAULT_MAX_PAYLOAD) -> LambdaError:
    """A result over the synchronous payload limit (the Runtime API's, unless the Invoke
    front was configured with another), in the platform's words."""
    return LambdaError(
        "Function.ResponseSizeTooLarge",
        f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
        f"({limit} bytes).",
    )


#: The error type of shed load: a full lane, a full model queue. Sources answer it 429.
THROTTLED = "TooManyRequestsException"


def too_many_requests(message: str) -> LambdaError:
    return LambdaError(THROTTLED, message)
