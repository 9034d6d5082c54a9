"""Stores in this process's memory (`memory:`): for tests, never shared, gone at exit."""

from __future__ import annotations

import copy
import threading

from worker.state.base import (
    COMPLETED,
    RUNNING,
    Claim,
    DurableStore,
    Execution,
    IdempotencyStore,
    LeaseLost,
    Op,
    Outcome,
    Record,
    Start,
    decide,
)


class MemoryIdempotency(IdempotencyStore):
    poll_max = 0.01

    def __init__(self) -> None:
        self.records: dict[str, Record] = {}
        self._lock = threading.Lock()

    def claim_sync(self, record: Record, now: float) -> Record | None:
        with self._lock:
            held = self.records.get(record.key)
            if held is not None and held.live(now):
                return copy.copy(held)
            self.records[record.key] = copy.copy(record)
            return None

    def get_sync(self, key: str) -> Record | None:
        with self._lock:
            held = self.records.get(key)
            return copy.copy(held) if held is not None else None

    def complete_sync(self, record: Record) -> None:
        with self._lock:
            held = self.records.get(record.key)
            if held is not None:
                held.status = COMPLETED
                held.data = record.data
                held.expiration = record.expiration
                if record.validation is not None:
                    held.validation = record.validation

    def delete_sync(self, key: str) -> None:
        with self._lock:
            self.records.pop(key, None)

    async def claim(self, record: Record, now: float) -> Record | None:
        return self.claim_sync(record, now)

    async def get(self, key: str) -> Record | None:
        return self.get_sync(key)

    async def complete(self, record: Record) -> None:
        self.complete_sync(record)

    async def delete(self, key: str) -> None:
        self.delete_sync(key)


class MemoryDurable(DurableStore):
    poll = 0.01

    def __init__(self) -> None:
        self.executions: dict[str, Execution] = {}

    async def claim(self, start: Start) -> Claim:
        execution = self.executions.get(start.name)
        outcome = decide(execution, start.now, start.version, start.pin, start.create)
        if outcome is Outcome.NEW:
            execution = self.executions[start.name] = Execution(
                start.name,
                RUNNING,
                start.version,
                start.input,
                start.function,
                start.owner,
                start.lease_until,
                created=start.now,
                updated=start.now,
            )
        elif outcome is Outcome.TAKEOVER:
            assert execution is not None
            execution.status = RUNNING
            execution.owner = start.owner
            execution.lease_until = start.lease_until
            execution.wake_at = None
            execution.updated = start.now
        if execution is None:  # MISSING: nothing to resume
            return Claim(outcome, Execution(start.name, "", start.version, ""))
        return Claim(outcome, copy.deepcopy(execution))

    async def get(self, name: str) -> Execution | None:
        execution = self.executions.get(name)
        return copy.deepcopy(execution) if execution is not None else None

    def _held(self, name: str, owner: str) -> Execution:
        execution = self.executions.get(name)
        if execution is None or execution.owner != owner or execution.status != RUNNING:
            raise LeaseLost(f"execution {name!r}: this worker's lease was taken over")
        return execution

    @staticmethod
    def _write(execution: Execution, ops: list[Op]) -> None:
        by_seq = {op.seq: op for op in execution.ops}
        for op in ops:
            by_seq[op.seq] = copy.copy(op)
        execution.ops = [by_seq[seq] for seq in sorted(by_seq)]

    async def checkpoint(
        self, name: str, owner: str, lease_until: float, ops: list[Op], now: float
    ) -> None:
        execution = self._held(name, owner)
        execution.lease_until = lease_until
        execution.updated = now
        self._write(execution, ops)

    async def settle(
        self,
        name: str,
        owner: str,
        status: str,
        ops: list[Op],
        now: float,
        *,
        result: str | None = None,
        error: str | None = None,
        wake_at: float | None = None,
    ) -> None:
        execution = self._held(name, owner)
        execution.status = status
        execution.result = result
        execution.error = error
        execution.wake_at = wake_at
        execution.owner = None
        execution.lease_until = 0.0
        execution.updated = now
        self._write(execution, ops)

    async def release(self, name: str, owner: str) -> None:
        execution = self.executions.get(name)
        if execution is not None and execution.owner == owner and execution.status == RUNNING:
            execution.lease_until = 0.0

    async def due(self, now: float, waits_before: float, limit: int) -> list[str]:
        names = []
        for execution in self.executions.values():
            if (execution.status == "WAITING" and (execution.wake_at or 0.0) <= waits_before) or (
                execution.status == RUNNING and execution.lease_until < now
            ):
                names.append(execution.name)
                if len(names) >= limit:
                    break
        return names
