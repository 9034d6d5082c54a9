"""State that outlives an invocation: the stores behind `worker.idempotent` and `worker.durable`.

A store is chosen by a spec (`worker.state.settings`): `sqlite:` (the embedded default,
one file per environment), `sqlite:PATH`, `dynamodb:TABLE`, `memory:`. Each process
opens its own once, on first use (never across a fork), and keeps it.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any, TypeVar

from worker.state import settings

if TYPE_CHECKING:
    from worker.state.base import DurableStore, IdempotencyStore

# Names, not classes: importing the package (its settings) does not load the stores' base.
S = TypeVar("S", "IdempotencyStore", "DurableStore")

#: The class behind each (kind, scheme), imported only when chosen: a process that keeps
#: state in SQLite never loads boto3.
_CLASSES = {
    ("idempotency", "sqlite"): "worker.state.sqlite_idempotency:SqliteIdempotency",
    ("idempotency", "dynamodb"): "worker.state.dynamodb_idempotency:DynamoIdempotency",
    ("idempotency", "memory"): "worker.state.memory:MemoryIdempotency",
    ("durable", "sqlite"): "worker.state.sqlite_durable:SqliteDurable",
    ("durable", "dynamodb"): "worker.state.dynamodb_durable:DynamoDurable",
    ("durable", "memory"): "worker.state.memory:MemoryDurable",
}
_idempotency: dict[tuple[int, str], IdempotencyStore] = {}
_durable: dict[tuple[int, str], DurableStore] = {}
#: Bumped by `reset`: what callers cached from an older generation is stale.
generation = 0


def idempotency_store(spec: str | None = None) -> IdempotencyStore:
    """The store `spec` names (default: `WORKER_IDEMPOTENCY_STORE`), opened once per process."""
    return _store("idempotency", spec or settings.current().idempotency_store, _idempotency)


def durable_store(spec: str | None = None) -> DurableStore:
    """The store `spec` names (default: `WORKER_DURABLE_STORE`), opened once per process."""
    return _store("durable", spec or settings.current().durable_store, _durable)


def _store(kind: str, spec: str, opened: dict[tuple[int, str], S]) -> S:
    key = (os.getpid(), spec)
    store = opened.get(key)
    if store is None:
        scheme, argument = settings.parse(spec)
        module, name = _CLASSES[kind, scheme].split(":")
        cls: Any = getattr(importlib.import_module(module), name)
        if scheme == "sqlite":
            from worker.state.sqlite import database

            current = settings.current()
            store = cls(database(settings.sqlite_path(argument, current), current.busy_timeout))
        elif scheme == "dynamodb" and kind == "idempotency":
            current = settings.current()
            store = cls(
                argument, write_batch=current.write_batch, write_flights=current.write_flights
            )
        elif scheme == "dynamodb":
            store = cls(argument)
        else:
            store = cls()
        opened[key] = store
    return store


def reset() -> None:
    """Forget every store and setting of this process (tests change them between cases)."""
    from worker.state.sqlite import close_all

    global generation
    generation += 1
    _idempotency.clear()
    _durable.clear()
    close_all()
    settings.reset()
