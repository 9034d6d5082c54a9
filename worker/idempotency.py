"""`@worker.idempotent`: a handler (or a per-record function) that runs once per key.

    @worker.idempotent(key="order_id", expires=3600, validate="amount")
    async def handler(event, context): ...

The first call for a key writes an in-progress record whose lock ends with that
invocation's deadline, runs the function and stores its result; a call for a completed
key returns the stored result without running it; a concurrent duplicate waits for the
first one's result (up to its own deadline: then `IdempotencyAlreadyInProgressError`)
instead of failing at once as Powertools' does; an exception deletes the record, so a
retry runs. `validate` (a field, a dotted path, fields, or a callable, as `key`) makes a
duplicate whose payload differs there fail with `IdempotencyValidationError`. Records
expire `expires` seconds after the result, and then a call runs again.

Keys and records are Powertools' (`<function name>.<module>.<qualified name>#<md5 of the
key as JSON>`, the same fields and statuses), so a function moving from Powertools'
DynamoDB layer to `dynamodb:TABLE` keeps its records. The store is `store=` or
`WORKER_IDEMPOTENCY_STORE` (`worker.state`); waits for another process's result poll
the store, waits for this process's own are woken by it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import decimal
import enum
import functools
import hashlib
import inspect
import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import PurePath
from typing import Any, TypeVar, cast

import orjson

from worker import marshal, state
from worker.state.base import COMPLETED, INPROGRESS, IdempotencyStore, Record

log = logging.getLogger("worker.idempotency")

F = TypeVar("F", bound=Callable[..., Any])
KeySpec = str | Sequence[str] | Callable[[Any], Any] | None

#: A duplicate stops waiting this long before its own deadline, so that its caller gets
#: `IdempotencyAlreadyInProgressError` rather than a timeout.
DEADLINE_MARGIN = 0.05
#: The first pause between two looks at a record another process holds; it doubles up
#: to the store's `poll_max`.
FIRST_POLL = 0.002


class IdempotencyValidationError(Exception):
    """A duplicate's payload differs from the first call's where `validate` looks."""


class IdempotencyAlreadyInProgressError(Exception):
    """The first call for this key was still running at this call's deadline."""


class _KeyEncoder(json.JSONEncoder):
    """Powertools' key encoder: Decimals as strings, and the types its hash accepts."""

    def default(self, o: Any) -> Any:
        if isinstance(o, decimal.Decimal):
            return math.nan if o.is_nan() else str(o)
        if isinstance(o, enum.Enum):
            return o.value
        if isinstance(o, (datetime.date, datetime.time)):
            return o.isoformat()
        if isinstance(o, (uuid.UUID, PurePath)):
            return str(o)
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return dataclasses.asdict(o)
        return super().default(o)


#: `json.dumps(data, sort_keys=True)` as Powertools hashes it (its separators, its
#: escaping), made once: a fresh encoder per call costs more than the hash.
_encode = _KeyEncoder(sort_keys=True).encode


def _hash(data: Any) -> str:
    return hashlib.md5(_encode(data).encode(), usedforsecurity=False).hexdigest()


def _selector(spec: KeySpec) -> Callable[[Any], Any]:
    """What part of the payload a `key` (or `validate`) spec names."""
    if spec is None:
        return lambda event: event
    if callable(spec):
        return spec
    if isinstance(spec, str):
        path = spec.split(".")
        if len(path) == 1:
            field = path[0]
            return lambda event: event.get(field) if isinstance(event, dict) else None
        return lambda event: _dig(event, path)
    fields = [_selector(part) for part in spec]
    return lambda event: [select(event) for select in fields]


def _dig(value: Any, path: list[str]) -> Any:
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _missing(data: Any) -> bool:
    """Powertools' rule: no key at all (None, empty, or a list/dict of only None)."""
    if isinstance(data, dict):
        return all(v is None for v in data.values())
    if isinstance(data, (list, tuple)):
        return all(v is None for v in data)
    if isinstance(data, (int, float, bool)):
        return False
    return not data


def _deadline(context: Any) -> float | None:
    """The invocation's deadline (epoch s), when the context tells it."""
    deadline = getattr(context, "deadline", None)
    if isinstance(deadline, (int, float)):
        return float(deadline)
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        return time.time() + float(remaining()) / 1000
    return None


def _load(data: str | None) -> Any:
    return orjson.loads(data) if data else None


class _Flight:
    """A call running for a key in this process, that duplicates here can wait on."""

    __slots__ = ("done", "future")

    def __init__(self, future: asyncio.Future[None] | None) -> None:
        self.future = future  # async functions: resolved when the call ends
        # Sync functions: set when the call ends.
        self.done = threading.Event() if future is None else None

    def end(self) -> None:
        if self.future is not None and not self.future.done():
            self.future.set_result(None)
        if self.done is not None:
            self.done.set()


class Idempotent:
    """One function made idempotent (see the module's text)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        key: KeySpec,
        expires: float,
        validate: KeySpec,
        store: str | IdempotencyStore | None,
    ) -> None:
        if expires <= 0:
            raise ValueError(f"expires must be > 0 seconds, got {expires}")
        self.fn = fn
        self.select = _selector(key)
        self.key_spec = key
        self.validation = _selector(validate) if validate is not None else None
        self.expires = math.ceil(expires)
        self._spec = store
        self._store: tuple[int, int, IdempotencyStore] | None = None
        self._prefix: str | None = None
        self._flights: dict[str, _Flight] = {}
        self._flights_lock = threading.Lock()

    @property
    def store(self) -> IdempotencyStore:
        """The store, opened in this process (never one inherited across a fork)."""
        held = self._store
        pid = os.getpid()
        if held is None or held[0] != pid or held[1] != state.generation:
            spec = self._spec
            store = spec if isinstance(spec, IdempotencyStore) else state.idempotency_store(spec)
            held = self._store = (pid, state.generation, store)
        return held[2]

    def record_key(self, event: Any) -> str | None:
        """The record's id for this payload (Powertools' hashed key), or None without a key."""
        data = self.select(event)
        if _missing(data):
            log.warning(
                "no idempotency key in the payload (key=%r): %s ran without idempotency",
                self.key_spec,
                self.fn.__qualname__,
            )
            return None
        prefix = self._prefix
        if prefix is None:
            # Read at the first call: the runtime exports the function's name before then.
            name = os.getenv("AWS_LAMBDA_FUNCTION_NAME", "test-func")
            prefix = self._prefix = f"{name}.{self.fn.__module__}.{self.fn.__qualname__}#"
        return prefix + _hash(data)

    def _claim(self, key: str, event: Any, context: Any, now: float) -> Record:
        deadline = _deadline(context)
        validation = _hash(self.validation(event)) if self.validation is not None else None
        return Record(
            key=key,
            status=INPROGRESS,
            expiration=int(now) + self.expires,
            in_progress_expiration=int(deadline * 1000) if deadline is not None else None,
            validation=validation,
        )

    def _answer(self, held: Record, record: Record) -> tuple[bool, Any]:
        """(True, result) when `held` answers this call; (False, None) while it runs."""
        if self.validation is not None and held.validation != record.validation:
            raise IdempotencyValidationError(
                "Payload does not match stored record for this event key"
            )
        if held.status == COMPLETED:
            return True, _load(held.data)
        return False, None

    def _until(self, context: Any, held: Record) -> float:
        deadline = _deadline(context)
        return (deadline if deadline is not None else float(held.expiration)) - DEADLINE_MARGIN

    def _in_progress(self, key: str) -> IdempotencyAlreadyInProgressError:
        return IdempotencyAlreadyInProgressError(
            f"Execution already in progress with idempotency key: {key}, still at this"
            " invocation's deadline"
        )

    def _completed(self, record: Record, result: Any) -> Record:
        try:
            data = marshal.dumps(result).decode()
        except Exception as exc:
            raise TypeError(f"an idempotent function's result must be JSON: {exc}") from exc
        return dataclasses.replace(
            record, status=COMPLETED, data=data, expiration=int(time.time()) + self.expires
        )

    # -- async functions -------------------------------------------------------------------

    async def call_async(self, event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
        key = self.record_key(event)
        if key is None:
            return await self.fn(event, context, *args, **kwargs)
        store = self.store
        now = time.time()
        record = self._claim(key, event, context, now)
        held = await store.claim(record, now)
        pause = FIRST_POLL
        while held is not None:
            answered, result = self._answer(held, record)
            if answered:
                return result
            until = self._until(context, held)
            left = until - time.time()
            if left <= 0:
                raise self._in_progress(key)
            flight = self._flights.get(key)
            if flight is not None and flight.future is not None:
                # Run by this process: its end wakes this call (no polling).
                await asyncio.wait([flight.future], timeout=left)
            else:
                await asyncio.sleep(min(pause, left))
                pause = min(pause * 2, store.poll_max)
            held = await store.get(key)
            now = time.time()
            if held is None or not held.live(now):
                # Its holder failed (the record is gone) or died (its lock expired).
                record = self._claim(key, event, context, now)
                held = await store.claim(record, now)
        return await self._run_async(store, record, event, context, args, kwargs)

    async def _run_async(
        self,
        store: IdempotencyStore,
        record: Record,
        event: Any,
        context: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        flight = self._flights[record.key] = _Flight(asyncio.get_running_loop().create_future())
        try:
            try:
                result = await self.fn(event, context, *args, **kwargs)
                completed = self._completed(record, result)
            except BaseException:
                # A failure (a timeout's cancellation too) lets a retry run.
                try:
                    await store.delete(record.key)
                except Exception:
                    log.exception("deleting the idempotency record of a failed call failed")
                raise
            await store.complete(completed)
            return result
        finally:
            if self._flights.get(record.key) is flight:
                del self._flights[record.key]
            flight.end()

    # -- sync functions (on a thread, or on the loop's thread where the pool runs them) ----

    def call_sync(self, event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
        key = self.record_key(event)
        if key is None:
            return self.fn(event, context, *args, **kwargs)
        store = self.store
        now = time.time()
        record = self._claim(key, event, context, now)
        held = store.claim_sync(record, now)
        pause = FIRST_POLL
        while held is not None:
            answered, result = self._answer(held, record)
            if answered:
                return result
            left = self._until(context, held) - time.time()
            if left <= 0:
                raise self._in_progress(key)
            with self._flights_lock:
                flight = self._flights.get(key)
            if flight is not None and flight.done is not None:
                flight.done.wait(left)
            else:
                time.sleep(min(pause, left))
                pause = min(pause * 2, store.poll_max)
            held = store.get_sync(key)
            now = time.time()
            if held is None or not held.live(now):
                record = self._claim(key, event, context, now)
                held = store.claim_sync(record, now)
        return self._run_sync(store, record, event, context, args, kwargs)

    def _run_sync(
        self,
        store: IdempotencyStore,
        record: Record,
        event: Any,
        context: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        flight = _Flight(None)
        with self._flights_lock:
            self._flights[record.key] = flight
        try:
            try:
                result = self.fn(event, context, *args, **kwargs)
                completed = self._completed(record, result)
            except BaseException:
                try:
                    store.delete_sync(record.key)
                except Exception:
                    log.exception("deleting the idempotency record of a failed call failed")
                raise
            store.complete_sync(completed)
            return result
        finally:
            with self._flights_lock:
                if self._flights.get(record.key) is flight:
                    del self._flights[record.key]
            flight.end()


def idempotent(
    fn: F | None = None,
    *,
    key: KeySpec = None,
    expires: float = 3600,
    validate: KeySpec = None,
    store: str | IdempotencyStore | None = None,
) -> Any:
    """Make `fn` (a handler or a per-record function, async or sync) run once per key.

    `key`: a field, a dotted path ("order.id"), a list of them, or a callable(event) -> key;
    None: the whole payload. `expires`: seconds a result answers for its key. `validate`:
    as `key`, the part of the payload a duplicate must repeat. `store`: a spec
    ("sqlite:PATH", "dynamodb:TABLE", "memory:") or a store; default
    `WORKER_IDEMPOTENCY_STORE`. Usable bare (`@worker.idempotent`) or called.
    """

    def decorate(target: F) -> F:
        spec = Idempotent(target, key=key, expires=expires, validate=validate, store=store)
        if inspect.iscoroutinefunction(target):

            @functools.wraps(target)
            async def run_async(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
                return await spec.call_async(event, context, *args, **kwargs)

            run_async.idempotent = spec  # type: ignore[attr-defined]
            return cast(F, run_async)

        @functools.wraps(target)
        def run(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
            return spec.call_sync(event, context, *args, **kwargs)

        run.idempotent = spec  # type: ignore[attr-defined]
        return cast(F, run)

    return decorate(fn) if fn is not None else decorate
