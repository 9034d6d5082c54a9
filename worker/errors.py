"""Errors in Lambda's shape: `{"errorMessage", "errorType", "requestId", "stackTrace"}`."""

from __future__ import annotations

import traceback
from typing import Any


class LambdaError(Exception):
    """An error with a Lambda error type, raised by the runtime itself (not by user code)."""

    def __init__(self, error_type: str, message: str, stack: list[str] | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.stack = stack or []

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        return error_body(self.error_type, self.message, self.stack, request_id)

    def __reduce__(self) -> tuple[type[LambdaError], tuple[str, str, list[str]]]:
        # Pickled across the model host's socket: rebuilt from all three fields.
        return (LambdaError, (self.error_type, self.message, self.stack))


def error_body(
    error_type: str, message: str, stack: list[str], request_id: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"errorMessage": message, "errorType": error_type}
    if request_id is not None:
        body["requestId"] = request_id
    body["stackTrace"] = stack
    return body


def stack_of(exc: BaseException) -> list[str]:
    """The traceback as Lambda reports it: one string per frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    return [f'  File "{f.filename}", line {f.lineno}, in {f.name}\n    {f.line}\n' for f in frames]


def from_exception(exc: BaseException) -> LambdaError:
    """Wrap what a handler raised: its class name is the error type, as awslambdaric does."""
    if isinstance(exc, LambdaError):
        return exc
    return LambdaError(type(exc).__name__, str(exc), stack_of(exc))


def timed_out(seconds: float) -> LambdaError:
    return LambdaError("Sandbox.Timedout", f"Task timed out after {seconds:.2f} seconds")


#: The error type of shed load: a full lane, a full model queue. Sources answer it 429.
THROTTLED = "TooManyRequestsException"


def too_many_requests(message: str) -> LambdaError:
    return LambdaError(THROTTLED, message)
