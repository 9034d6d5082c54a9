"""Durable executions in the embedded SQLite file: a row per execution, a row per operation.

Every write of a lease holder is one transaction that first renews the lease on the
condition that it still holds it (`LeaseLost` otherwise), so a worker that lost its
lease (it stalled past it and another resumed the execution) can never write again.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from worker.state.base import (
    RUNNING,
    TERMINAL,
    Claim,
    DurableStore,
    Execution,
    LeaseLost,
    Op,
    Outcome,
    Start,
    decide,
)
from worker.state.sqlite import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    name TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    version TEXT NOT NULL,
    input TEXT NOT NULL,
    function TEXT NOT NULL DEFAULT '',
    owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    wake_at REAL,
    result TEXT,
    error TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS executions_live ON executions (status)
    WHERE status IN ('RUNNING', 'WAITING');
CREATE TABLE IF NOT EXISTS execution_ops (
    execution TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    value TEXT,
    error TEXT,
    started REAL NOT NULL,
    ended REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (execution, seq)
) WITHOUT ROWID;
"""

_COLUMNS = (
    "name, status, version, input, function, owner, lease_until, wake_at, result, error,"
    " created, updated"
)
_GET = f"SELECT {_COLUMNS} FROM executions WHERE name = ?"
_OPS = (
    "SELECT seq, kind, name, status, value, error, started, ended, attempts, failures"
    " FROM execution_ops WHERE execution = ? ORDER BY seq"
)
_INSERT = f"INSERT INTO executions ({_COLUMNS}) VALUES ({', '.join('?' * 12)})"
_TAKE = (
    "UPDATE executions SET status = 'RUNNING', owner = ?, lease_until = ?, wake_at = NULL,"
    " updated = ? WHERE name = ?"
)
_RENEW = (
    "UPDATE executions SET lease_until = ?, updated = ?"
    " WHERE name = ? AND owner = ? AND status = 'RUNNING'"
)
_SETTLE = (
    "UPDATE executions SET status = ?, result = ?, error = ?, wake_at = ?, owner = NULL,"
    " lease_until = 0, updated = ? WHERE name = ? AND owner = ? AND status = 'RUNNING'"
)
_RELEASE = (
    "UPDATE executions SET lease_until = 0 WHERE name = ? AND owner = ? AND status = 'RUNNING'"
)
_PUT_OP = (
    "INSERT OR REPLACE INTO execution_ops (execution, seq, kind, name, status, value, error,"
    " started, ended, attempts, failures) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_DUE = (
    "SELECT name FROM executions WHERE status IN ('RUNNING', 'WAITING')"
    " AND ((status = 'WAITING' AND wake_at <= ?) OR (status = 'RUNNING' AND lease_until < ?))"
    " LIMIT ?"
)


def _execution(row: Any) -> Execution | None:
    if row is None:
        return None
    return Execution(*row)


def _ops(conn: sqlite3.Connection, name: str) -> list[Op]:
    return [Op(*row) for row in conn.execute(_OPS, (name,))]


def _op_rows(name: str, ops: list[Op]) -> list[tuple[Any, ...]]:
    return [
        (
            name,
            op.seq,
            op.kind,
            op.name,
            op.status,
            op.value,
            op.error,
            op.started,
            op.ended,
            op.attempts,
            op.failures,
        )
        for op in ops
    ]


class SqliteDurable(DurableStore):
    poll = 0.05

    def __init__(self, db: Database) -> None:
        self.db = db
        db.schema(SCHEMA)

    async def claim(self, start: Start) -> Claim:
        def work(conn: sqlite3.Connection) -> Claim:
            conn.execute("BEGIN IMMEDIATE")
            execution = _execution(conn.execute(_GET, (start.name,)).fetchone())
            outcome = decide(execution, start.now, start.version, start.pin, start.create)
            if outcome is Outcome.NEW:
                execution = Execution(
                    start.name,
                    RUNNING,
                    start.version,
                    start.input,
                    start.function,
                    start.owner,
                    start.lease_until,
                    None,
                    None,
                    None,
                    start.now,
                    start.now,
                )
                conn.execute(
                    _INSERT,
                    (
                        execution.name,
                        execution.status,
                        execution.version,
                        execution.input,
                        execution.function,
                        execution.owner,
                        execution.lease_until,
                        None,
                        None,
                        None,
                        start.now,
                        start.now,
                    ),
                )
            elif outcome is Outcome.TAKEOVER:
                assert execution is not None
                conn.execute(_TAKE, (start.owner, start.lease_until, start.now, start.name))
                execution.status = RUNNING
                execution.owner = start.owner
                execution.lease_until = start.lease_until
                execution.ops = _ops(conn, start.name)
            conn.execute("COMMIT")
            if execution is None:  # MISSING: nothing to resume
                execution = Execution(start.name, "", start.version, "")
            return Claim(outcome, execution)

        return await self.db.arun(work, write=True)

    async def get(self, name: str) -> Execution | None:
        def work(conn: sqlite3.Connection) -> Execution | None:
            conn.execute("BEGIN")  # one snapshot for the row and its operations
            execution = _execution(conn.execute(_GET, (name,)).fetchone())
            if execution is not None:
                execution.ops = _ops(conn, name)
            conn.execute("COMMIT")
            return execution

        return await self.db.arun(work)

    async def checkpoint(
        self, name: str, owner: str, lease_until: float, ops: list[Op], now: float
    ) -> None:
        def work(conn: sqlite3.Connection) -> None:
            if ops:
                conn.execute("BEGIN IMMEDIATE")
            if not conn.execute(_RENEW, (lease_until, now, name, owner)).rowcount:
                if ops:
                    conn.execute("ROLLBACK")
                raise LeaseLost(f"execution {name!r}: this worker's lease was taken over")
            if ops:
                conn.executemany(_PUT_OP, _op_rows(name, ops))
                conn.execute("COMMIT")

        await self.db.arun(work, write=True)

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
        def work(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            args = (status, result, error, wake_at, now, name, owner)
            if not conn.execute(_SETTLE, args).rowcount:
                conn.execute("ROLLBACK")
                raise LeaseLost(f"execution {name!r}: this worker's lease was taken over")
            if ops:
                conn.executemany(_PUT_OP, _op_rows(name, ops))
            conn.execute("COMMIT")

        assert status not in TERMINAL or wake_at is None
        await self.db.arun(work, write=True)

    async def release(self, name: str, owner: str) -> None:
        await self.db.arun(lambda conn: conn.execute(_RELEASE, (name, owner)), write=True)

    async def due(self, now: float, waits_before: float, limit: int) -> list[str]:
        def work(conn: sqlite3.Connection) -> list[str]:
            return [row[0] for row in conn.execute(_DUE, (waits_before, now, limit))]

        return await self.db.arun(work)
