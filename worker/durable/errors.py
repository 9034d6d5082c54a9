"""The errors of durable executions, by their Lambda error type: `Durable.NonDeterministicError`…

Each is a `LambdaError` whose type is its qualified name, so a caller sees
`"errorType": "Durable.NonDeterministicError"` and code can catch
`worker.Durable.NonDeterministicError`.
"""

from __future__ import annotations

from typing import Any

from worker.errors import LambdaError


class DurableError(LambdaError):
    def __init__(self, message: str) -> None:
        super().__init__(type(self).__qualname__, message)

    def __reduce__(self) -> Any:
        return (type(self), (self.message,))


class Durable:
    """Namespace of the errors (`worker.Durable.NonDeterministicError`)."""

    class NonDeterministicError(DurableError):
        """A replay asked for operations in another order, or with other names, than the
        execution recorded: the code changed, or code outside steps is not deterministic
        (it read the clock, a random number, the environment). The execution fails rather
        than go on from a history that is not its own."""

    class VersionMismatchError(DurableError):
        """The execution was started by other code, and WORKER_DURABLE_VERSION_POLICY=pin
        keeps it for that code."""

    class StepInterruptedError(DurableError):
        """A step was cut off (its worker crashed or timed out) more often than
        WORKER_DURABLE_MAX_INTERRUPTIONS allows."""

    class StepFailedError(DurableError):
        """A step raised, and went on raising through its retries. `error_type` and
        `message` are its last error's; a replay raises it again, identically."""

        def __init__(self, message: str, step_error_type: str = "Exception") -> None:
            super().__init__(message)
            self.step_error_type = step_error_type

        def __reduce__(self) -> Any:
            return (type(self), (self.message, self.step_error_type))

        def to_json(self) -> str:
            import orjson  # here: `import worker` loads this module and need not load orjson

            return orjson.dumps(
                {"errorType": self.step_error_type, "errorMessage": self.message}
            ).decode()

        @classmethod
        def from_json(cls, data: str | None) -> Durable.StepFailedError:
            import orjson

            error = orjson.loads(data) if data else {}
            return cls(str(error.get("errorMessage", "")), str(error.get("errorType", "")))

    class LeaseLostError(DurableError):
        """This worker stalled past its lease and another one resumed the execution; this
        run stops writing (the other one carries on)."""


def stored_error(data: str | None) -> LambdaError:
    """The error an execution ended with, from its stored JSON, as its callers get it:
    one of `Durable`'s again when it was one."""
    import orjson

    error = orjson.loads(data) if data else {}
    error_type = str(error.get("errorType", "Durable.ExecutionFailed"))
    message = str(error.get("errorMessage", ""))
    if error_type == "Durable.StepFailedError":
        return Durable.StepFailedError(message, str(error.get("stepErrorType", "Exception")))
    own: Any = getattr(Durable, error_type.removeprefix("Durable."), None)
    own_error = isinstance(own, type) and issubclass(own, DurableError)
    if error_type.startswith("Durable.") and own_error:
        rebuilt: LambdaError = own(message)
        return rebuilt
    return LambdaError(error_type, message, list(error.get("stackTrace") or []))
