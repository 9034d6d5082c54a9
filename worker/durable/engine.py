"""Running a durable handler: name the execution, claim it, replay it, settle it.

An invocation names its execution by the Invoke header `X-Amz-Durable-Execution-Name`,
else by its request id (an asynchronous invoke retried by Lambda keeps its request id,
so it finds its execution). Claiming it (`worker.state.base.decide`) says what to do:
run it (new, or due: a wait ended, a crashed worker's lease expired), answer its result
(finished), or wait for it (another worker runs it, or its wait has not ended).

Waiting never holds a slot: an HTTP invocation is parked (`park()` on its job, the HTTP
front's) and answered when the execution finishes here or elsewhere, or `202` with the
execution's name at its deadline, or at once when the wait ends after that deadline.
Other sources get `{"executionName", "status"}` as the result. The service of the
process (`worker.durable.service`) resumes executions: when their wait ends, and when a
worker that held one died.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from worker import state
from worker.durable import service as services
from worker.durable.context import DurableContext, Run, Suspend, dumps, loads
from worker.durable.errors import Durable, stored_error
from worker.durable.service import RESUME
from worker.errors import LambdaError, from_exception
from worker.state.base import (
    FAILED,
    SUCCEEDED,
    WAITING,
    DurableStore,
    Execution,
    LeaseLost,
    Outcome,
    Start,
    StoreError,
)

log = logging.getLogger("worker.durable")

Handler = Callable[[Any, DurableContext], Awaitable[Any]]

#: This process's durable functions (registered at import, in the init phase).
FUNCTIONS: list[DurableFunction] = []


def _version(fn: Callable[..., Any]) -> str:
    """The code that starts an execution: the function's version and a hash of its
    module's source and its name (any edit of the module is other code)."""
    digest = hashlib.sha256(f"{fn.__module__}.{fn.__qualname__}".encode())
    module = sys.modules.get(fn.__module__)
    try:
        path = inspect.getsourcefile(module) if module is not None else None
        with open(path or "", "rb") as f:
            digest.update(f.read())
    except (OSError, TypeError):
        digest.update(fn.__code__.co_code)
    published = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION") or "$LATEST"
    return f"{published}:{digest.hexdigest()[:16]}"


def _owner() -> str:
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:12]}"


def _error_json(error: LambdaError) -> str:
    shown: dict[str, Any] = {
        "errorType": error.error_type,
        "errorMessage": error.message,
        "stackTrace": error.stack,
    }
    if isinstance(error, Durable.StepFailedError):
        shown["stepErrorType"] = error.step_error_type
    return orjson.dumps(shown).decode()


def _job(context: Any) -> Any:
    # The invocation's job: the source's view of the call (the HTTP front's has the
    # execution's name and can be parked). The context keeps it private; durable
    # execution is the one feature of the runtime that needs it.
    return getattr(context, "_job", None)


def execution_name(context: Any) -> str:
    """The Invoke header's name for the execution, else the invocation's request id."""
    name = getattr(_job(context), "execution", None)
    if isinstance(name, str) and name:
        return name
    return str(getattr(context, "aws_request_id", "") or uuid.uuid4())


def resumes(event: Any) -> list[str] | None:
    """The executions an event resumes: a timer's resume, or an SQS batch made only of
    resume messages (WORKER_DURABLE_QUEUE_URL's); None for any other event."""
    if type(event) is not dict:
        return None
    name = event.get(RESUME)
    if isinstance(name, str):
        return [name]
    records = event.get("Records")
    if not isinstance(records, list) or not records:
        return None
    names = []
    for record in records:
        body = record.get("body") if isinstance(record, dict) else None
        if not isinstance(body, str) or RESUME not in body:
            return None
        try:
            name = orjson.loads(body).get(RESUME)
        except (orjson.JSONDecodeError, AttributeError):
            return None
        if not isinstance(name, str):
            return None
        names.append(name)
    return names


class DurableFunction:
    """One durable handler (see the module's text)."""

    def __init__(self, fn: Handler, store: str | DurableStore | None) -> None:
        self.fn = fn
        self.qualname = f"{fn.__module__}.{fn.__qualname__}"
        self.version = _version(fn)
        self._spec = store
        self._store: tuple[int, int, DurableStore] | None = None

    @property
    def store(self) -> DurableStore:
        held = self._store
        pid = os.getpid()
        if held is None or held[0] != pid or held[1] != state.generation:
            spec = self._spec
            store = spec if isinstance(spec, DurableStore) else state.durable_store(spec)
            held = self._store = (pid, state.generation, store)
        return held[2]

    async def __call__(self, event: Any, context: Any) -> Any:
        names = resumes(event)
        if names is None:
            return await self.invoke(execution_name(context), event, context)
        if RESUME in event:
            return await self.resume(names[0], context)
        # A batch of resume messages (WORKER_DURABLE_QUEUE_URL): each resumes its
        # execution; one that could not be settled comes back, as SQS partial failures do.
        outcomes = await asyncio.gather(
            *(self.resume(name, context) for name in names), return_exceptions=True
        )
        failures = []
        for record, outcome in zip(event["Records"], outcomes, strict=True):
            if isinstance(outcome, StoreError):
                log.error("resuming a durable execution failed: %s", outcome)
                failures.append({"itemIdentifier": record.get("messageId", "")})
        return {"batchItemFailures": failures}

    def _start(self, name: str, event: Any, now: float, create: bool) -> Start:
        settings = state.settings.current()
        return Start(
            name=name,
            input=dumps(event) if create else "",
            version=self.version,
            function=self.qualname,
            owner=_owner(),
            lease_until=now + settings.lease,
            now=now,
            pin=settings.pin_versions,
            create=create,
        )

    async def invoke(self, name: str, event: Any, context: Any) -> Any:
        """Run, attach to, or answer the execution `name` for this invocation."""
        claim = await self.store.claim(self._start(name, event, time.time(), True))
        outcome, execution = claim.outcome, claim.execution
        if outcome is Outcome.TERMINAL:
            return self._answer(execution)
        if outcome is Outcome.VERSION:
            raise self._mismatch(execution)
        if outcome is Outcome.BUSY or outcome is Outcome.NOT_DUE:
            return self._pending(name, execution.status, execution.wake_at, context)
        # NEW or TAKEOVER: this worker holds the lease. A takeover replays the event that
        # started the execution, whatever this invocation brought.
        started = event if outcome is Outcome.NEW else loads(execution.input)
        return await self._run(execution, started, context)

    async def resume(self, name: str, context: Any) -> Any:
        """Resume `name` if it is due (a timer, a sweep, a queue message asked)."""
        claim = await self.store.claim(self._start(name, None, time.time(), False))
        outcome, execution = claim.outcome, claim.execution
        service = services.current
        if outcome is Outcome.TAKEOVER:
            # A resume answers nobody: what the execution ends with is stored (and given
            # to the invocations parked on it).
            try:
                await self._run(execution, loads(execution.input), context)
            except StoreError:
                raise
            except Exception as exc:
                log.info("durable execution %s failed: %s", name, exc)
            return None
        if service is not None:
            if outcome is Outcome.TERMINAL:
                service.finished(name, execution)
            elif outcome is Outcome.NOT_DUE and execution.wake_at is not None:
                service.schedule(name, execution.wake_at)
            elif outcome is Outcome.VERSION:
                service.skip(name)
        return None

    def _mismatch(self, execution: Execution) -> Durable.VersionMismatchError:
        return Durable.VersionMismatchError(
            f"execution {execution.name!r} was started by version {execution.version};"
            f" this code is {self.version} and WORKER_DURABLE_VERSION_POLICY=pin"
        )

    def _answer(self, execution: Execution) -> Any:
        if execution.status == SUCCEEDED:
            return loads(execution.result)
        raise stored_error(execution.error)

    async def _run(self, execution: Execution, event: Any, context: Any) -> Any:
        settings = state.settings.current()
        assert execution.owner is not None
        run = Run(
            self.store, execution, execution.owner, settings.lease, settings.max_interruptions
        )
        name = execution.name
        service = services.current
        if service is not None:
            service.running[name] = run
        try:
            result = await self.fn(event, DurableContext(context, run))
            if run.suspended is not None:
                raise Suspend(run.suspended)  # the handler swallowed it: still suspended
            run.check_complete()
            value = dumps(result)
        except Suspend as suspend:
            await run.settle(WAITING, wake_at=suspend.wake_at)
            if service is not None:
                service.schedule(name, suspend.wake_at)
            return self._pending(name, WAITING, suspend.wake_at, context)
        except asyncio.CancelledError:
            # A timeout or a drain: let the next worker resume it now, not at the lease's end.
            if service is not None:
                service.release(run)
            raise
        except LeaseLost as exc:
            raise Durable.LeaseLostError(str(exc)) from exc
        except StoreError:
            # The store failed, not the execution: it resumes once the store answers.
            if service is not None:
                service.release(run)
            raise
        except Exception as exc:
            if run.store_error is not None:  # the handler swallowed it: still the store's
                raise run.store_error from exc
            error = run.broken or from_exception(exc)
            stored = _error_json(error)
            await run.settle(FAILED, error=stored)
            if service is not None:
                service.finished(name, self._settled(execution, FAILED, None, stored))
            if error is exc:
                raise
            raise error from exc
        finally:
            if service is not None and service.running.get(name) is run:
                del service.running[name]
        await run.settle(SUCCEEDED, result=value)
        if service is not None:
            service.finished(name, self._settled(execution, SUCCEEDED, value, None))
        return result

    @staticmethod
    def _settled(
        execution: Execution, status: str, result: str | None, error: str | None
    ) -> Execution:
        execution.status, execution.result, execution.error = status, result, error
        return execution

    def _pending(self, name: str, status: str, wake_at: float | None, context: Any) -> Any:
        """The answer of an invocation whose execution goes on without it."""
        body = {"executionName": name, "status": status}
        service = services.current
        park = getattr(_job(context), "park", None)
        if service is None or park is None:
            return body
        settle = park()
        if settle is None:  # a kind of request that cannot wait off its slot
            return body
        deadline = getattr(context, "deadline", None)
        if wake_at is not None and deadline is not None and wake_at > deadline:
            settle(202, body, None)  # it cannot finish in this invocation's time
        else:
            service.park(name, settle, deadline, body)
        return None


def durable(fn: Handler | None = None, *, store: str | DurableStore | None = None) -> Any:
    """Make an async handler `fn(event, ctx)` a durable execution (see the module's
    text and `worker.durable.context`). `store`: a spec ("sqlite:PATH",
    "dynamodb:TABLE", "memory:") or a store; default `WORKER_DURABLE_STORE`."""

    def decorate(target: Handler) -> Any:
        if not inspect.iscoroutinefunction(target):
            raise TypeError(f"worker.durable needs an async handler; {target!r} is not one")
        function = DurableFunction(target, store)
        FUNCTIONS.append(function)

        async def handler(event: Any, context: Any) -> Any:
            return await function(event, context)

        handler.__module__ = target.__module__
        handler.__qualname__ = target.__qualname__
        handler.__name__ = target.__name__
        handler.__doc__ = target.__doc__
        handler.__wrapped__ = target  # type: ignore[attr-defined]
        handler.durable = function  # type: ignore[attr-defined]
        return handler

    return decorate(fn) if fn is not None else decorate
