"""What a durable handler gets as `ctx`: steps, waits and recorded values, replayed.

Every operation has a place in the execution's history, in the order the handler asks
for it. On a first run an operation runs and is recorded; on a replay (after a wait, a
crash, a timeout) each recorded one returns what it recorded, without running, and the
first unrecorded one runs: the handler's code outside steps runs again on every replay,
so it must ask for the same operations in the same order. One that asks otherwise gets
`Durable.NonDeterministicError` naming the operation, and the execution fails.

A step is checkpointed when it starts (its attempt counted) and when it ends (its
result or its final error): the next line runs only after the result is stored. A step
cut off between the two (its worker died) runs again on the resume: at least once
inside a step, exactly once for what follows it. `ctx.now()`, `ctx.random()` and
`ctx.uuid()` are recorded at the next checkpoint, before anything could depend on them.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from worker import marshal
from worker.durable.errors import Durable
from worker.state.base import (
    FAILED,
    STARTED,
    SUCCEEDED,
    DurableStore,
    Execution,
    Op,
    StoreError,
)

#: A failed step's retries wait this long, doubling, up to `RETRY_PAUSE_CAP` (in its slot).
RETRY_PAUSE = 0.1
RETRY_PAUSE_CAP = 5.0


class Suspend(BaseException):
    """Unwinds the handler at a wait that has not ended (a BaseException: a handler's
    `except Exception` does not stop it)."""

    def __init__(self, wake_at: float) -> None:
        super().__init__(wake_at)
        self.wake_at = wake_at


def dumps(value: Any) -> str:
    """A step's or an execution's result as stored JSON."""
    try:
        return marshal.dumps(value).decode()
    except Exception as exc:
        raise TypeError(f"a durable result must be JSON: {exc}") from exc


def loads(data: str | None) -> Any:
    return orjson.loads(data) if data else None


class Run:
    """One run of an execution in this worker: its replay cursor and its checkpoints."""

    def __init__(
        self,
        store: DurableStore,
        execution: Execution,
        owner: str,
        lease: float,
        max_interruptions: int,
    ) -> None:
        self.store = store
        self.name = execution.name
        self.owner = owner
        self.lease = lease
        self.lease_until = execution.lease_until
        self.max_interruptions = max_interruptions
        self.history = execution.ops
        self.recorded = len(execution.ops)  # what this run found: the replay's extent
        self.cursor = 0
        self.pending: list[Op] = []  # recorded values and ended waits, not yet written
        self.broken: Durable.NonDeterministicError | None = None
        self.store_error: StoreError | None = None  # a checkpoint failed: nothing more runs
        self.suspended: float | None = None  # the wake time of the wait that suspended it

    @property
    def replaying(self) -> bool:
        return self.cursor < self.recorded

    def _next(self, kind: str, name: str) -> tuple[int, Op | None]:
        """The next place in the history, and what is recorded there (None: nothing)."""
        if self.broken is not None:
            raise self.broken
        if self.store_error is not None:
            raise self.store_error
        if self.suspended is not None:
            raise Suspend(self.suspended)  # a handler that swallowed a Suspend goes no further
        seq = self.cursor
        self.cursor += 1
        if seq < len(self.history):
            op = self.history[seq]
            if op.kind != kind or op.name != name:
                self.broken = Durable.NonDeterministicError(
                    f"operation {seq} of execution {self.name!r}: the code asks for {kind}"
                    f" {name!r} where the execution recorded {op.kind} {op.name!r}"
                )
                raise self.broken
            return seq, op
        return seq, None

    def check_complete(self) -> None:
        """The handler returned: it must have asked for every operation recorded."""
        if self.broken is not None:
            raise self.broken
        if self.store_error is not None:
            raise self.store_error
        if self.cursor < len(self.history):
            op = self.history[self.cursor]
            self.broken = Durable.NonDeterministicError(
                f"execution {self.name!r} returned after {self.cursor} operations; it recorded"
                f" {len(self.history)}, the next being {op.kind} {op.name!r}"
            )
            raise self.broken

    async def write(self, ops: list[Op]) -> None:
        """Checkpoint `ops` with what is pending, renewing the lease."""
        now = time.time()
        # Taken now: steps run concurrently (gather) may record more while this awaits.
        pending, self.pending = self.pending, []
        lease_until = now + self.lease
        try:
            await self.store.checkpoint(self.name, self.owner, lease_until, [*pending, *ops], now)
        except StoreError as exc:
            self.store_error = exc
            raise
        self.lease_until = lease_until

    async def renew(self) -> None:
        now = time.time()
        lease_until = now + self.lease
        await self.store.checkpoint(self.name, self.owner, lease_until, [], now)
        self.lease_until = lease_until

    async def settle(
        self,
        status: str,
        *,
        result: str | None = None,
        error: str | None = None,
        wake_at: float | None = None,
    ) -> None:
        ops, self.pending = self.pending, []
        await self.store.settle(
            self.name,
            self.owner,
            status,
            ops,
            time.time(),
            result=result,
            error=error,
            wake_at=wake_at,
        )

    # -- operations --------------------------------------------------------------------

    def record(self, kind: str, make: Callable[[], Any]) -> Any:
        seq, op = self._next(kind, kind)
        if op is not None:
            return loads(op.value)
        value = make()
        now = time.time()
        op = Op(seq, kind, kind, SUCCEEDED, dumps(value), started=now, ended=now)
        self.history.append(op)
        self.pending.append(op)
        return value

    async def step(
        self,
        name: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        retries: int,
    ) -> Any:
        seq, op = self._next("step", name)
        if op is not None:
            if op.status == SUCCEEDED:
                return loads(op.value)
            if op.status == FAILED:
                raise _stored_error(op)
            # STARTED: its worker was cut off while it ran (never for a failure: those
            # are counted and retried, or recorded as the step's end).
            if op.attempts - op.failures > self.max_interruptions:
                op.status, op.ended = FAILED, time.time()
                error = Durable.StepInterruptedError(
                    f"step {name!r} was cut off {op.attempts - op.failures} times"
                    f" (WORKER_DURABLE_MAX_INTERRUPTIONS={self.max_interruptions})"
                )
                op.error = orjson.dumps(
                    {"errorType": error.error_type, "errorMessage": error.message}
                ).decode()
                await self.write([op])
                raise error
        else:
            op = Op(seq, "step", name, STARTED, started=time.time())
            self.history.append(op)
        while True:
            op.attempts += 1
            op.status = STARTED
            await self.write([op])
            try:
                result = await _call(fn, args, kwargs)
                value = dumps(result)
            except Exception as exc:
                op.failures += 1
                if op.failures <= retries:
                    await asyncio.sleep(min(RETRY_PAUSE_CAP, RETRY_PAUSE * 2 ** (op.failures - 1)))
                    continue
                failed = Durable.StepFailedError(str(exc), type(exc).__name__)
                op.status, op.error, op.ended = FAILED, failed.to_json(), time.time()
                await self.write([op])
                raise failed from exc
            op.status, op.value, op.ended = SUCCEEDED, value, time.time()
            await self.write([op])
            return loads(value)

    def wait(self, name: str, seconds: float) -> None:
        """Record the wait; raise `Suspend` unless it has ended."""
        seq, op = self._next("wait", name)
        now = time.time()
        if op is None:
            wake_at = now + max(0.0, float(seconds))
            op = Op(seq, "wait", name, STARTED, orjson.dumps(wake_at).decode(), started=now)
            self.history.append(op)
        elif op.status == SUCCEEDED:
            return
        wake_at = float(loads(op.value))
        if wake_at <= now:
            op.status, op.ended = SUCCEEDED, now
            self.pending.append(op)
            return
        self.pending.append(op)
        self.suspended = wake_at
        raise Suspend(wake_at)


def _stored_error(op: Op) -> Durable.StepFailedError | Durable.StepInterruptedError:
    error = orjson.loads(op.error) if op.error else {}
    if error.get("errorType") == "Durable.StepInterruptedError":
        return Durable.StepInterruptedError(str(error.get("errorMessage", "")))
    return Durable.StepFailedError.from_json(op.error)


async def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A step's callable: awaited when async; a sync one on a thread (it may block), in
    this invocation's context (its logs keep the request id)."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args, **kwargs)
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    result = await loop.run_in_executor(None, call)
    if inspect.isawaitable(result):
        return await result
    return result


class DurableContext:
    """`ctx` of a durable handler: the invocation's context (its attributes read
    through: `aws_request_id`, `get_remaining_time_in_millis()`, `client()`…) and the
    durable operations (see the module's text)."""

    __slots__ = ("_run", "execution_name", "lambda_context")

    def __init__(self, lambda_context: Any, run: Run) -> None:
        self.lambda_context = lambda_context
        self.execution_name = run.name
        self._run = run

    def __getattr__(self, name: str) -> Any:
        return getattr(self.lambda_context, name)

    @property
    def replaying(self) -> bool:
        """Whether the handler is replaying recorded operations (to skip logs, say)."""
        return self._run.replaying

    async def step(
        self, name: str, fn: Callable[..., Any], *args: Any, retries: int = 0, **kwargs: Any
    ) -> Any:
        """Run `fn(*args, **kwargs)` (sync or async) once for this execution and return
        its result, stored as JSON (a replay returns the stored one). A raise is retried
        `retries` times, then stored and raised as `Durable.StepFailedError`."""
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        return await self._run.step(name, fn, args, kwargs, retries)

    async def wait(self, seconds: float, name: str = "wait") -> None:
        """Suspend the execution for `seconds`: its slot is released, and a timer (or a
        delayed message on WORKER_DURABLE_QUEUE_URL) resumes it by replaying."""
        self._run.wait(name, seconds)

    def now(self) -> float:
        """The time (epoch seconds), the same on every replay."""
        return float(self._run.record("now", time.time))

    def random(self) -> float:
        """random.random(), the same on every replay."""
        return float(self._run.record("random", random.random))

    def uuid(self) -> str:
        """A UUID4 string, the same on every replay."""
        return str(self._run.record("uuid", lambda: str(uuid.uuid4())))
