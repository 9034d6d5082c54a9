"""Idempotency records in the embedded SQLite file, with Powertools' columns and rules.

A claim is one statement: insert the in-progress record, or overwrite the one there
when it no longer answers for its key (expired, or in progress past its holder's
deadline): Powertools' DynamoDB condition, as an upsert's WHERE clause.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from worker.state.base import COMPLETED, IdempotencyStore, Record
from worker.state.sqlite import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    id TEXT PRIMARY KEY,
    expiration INTEGER NOT NULL,
    in_progress_expiration INTEGER,
    status TEXT NOT NULL,
    data TEXT,
    validation TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_expiration ON idempotency (expiration);
"""

_CLAIM = """
INSERT INTO idempotency (id, expiration, in_progress_expiration, status, data, validation)
VALUES (:id, :expiration, :in_progress_expiration, :status, NULL, :validation)
ON CONFLICT (id) DO UPDATE SET
    expiration = excluded.expiration,
    in_progress_expiration = excluded.in_progress_expiration,
    status = excluded.status,
    data = NULL,
    validation = excluded.validation
WHERE idempotency.expiration < :now
   OR (idempotency.status = 'INPROGRESS'
       AND idempotency.in_progress_expiration IS NOT NULL
       AND idempotency.in_progress_expiration < :now_ms)
RETURNING 1
"""
_GET = (
    "SELECT id, status, expiration, in_progress_expiration, data, validation"
    " FROM idempotency WHERE id = ?"
)
_COMPLETE = (
    "UPDATE idempotency SET data = :data, expiration = :expiration, status = :status WHERE id = :id"
)
_COMPLETE_VALIDATED = (
    "UPDATE idempotency SET data = :data, expiration = :expiration, status = :status,"
    " validation = :validation WHERE id = :id"
)
_DELETE = "DELETE FROM idempotency WHERE id = ?"


def _record(row: Any) -> Record | None:
    if row is None:
        return None
    return Record(row[0], row[1], row[2], row[3], row[4], row[5])


class SqliteIdempotency(IdempotencyStore):
    poll_max = 0.05

    def __init__(self, db: Database) -> None:
        self.db = db
        db.schema(SCHEMA)
        db.sweeps(_sweep)

    # Each piece of work is one statement, or a claim whose select follows an upsert that
    # did nothing: safe to run again on the file's thread after SQLITE_BUSY.

    @staticmethod
    def _claim(record: Record, now: float) -> Any:
        params = {
            "id": record.key,
            "expiration": record.expiration,
            "in_progress_expiration": record.in_progress_expiration,
            "status": record.status,
            "validation": record.validation,
            "now": int(now),
            "now_ms": int(now * 1000),
        }

        def work(conn: sqlite3.Connection) -> Record | None:
            for _ in range(3):
                if conn.execute(_CLAIM, params).fetchall():
                    return None
                held = _record(conn.execute(_GET, (record.key,)).fetchone())
                if held is not None:
                    return held
                # Deleted between the two statements (its holder failed): claim again.
            return _record(conn.execute(_GET, (record.key,)).fetchone())

        return work

    @staticmethod
    def _complete(record: Record) -> Any:
        params = {
            "id": record.key,
            "data": record.data,
            "expiration": record.expiration,
            "status": COMPLETED,
        }
        sql = _COMPLETE
        if record.validation is not None:
            params["validation"] = record.validation
            sql = _COMPLETE_VALIDATED
        return lambda conn: conn.execute(sql, params)

    async def claim(self, record: Record, now: float) -> Record | None:
        held: Record | None = await self.db.arun(self._claim(record, now), write=True)
        return held

    async def get(self, key: str) -> Record | None:
        return await self.db.arun(lambda conn: _record(conn.execute(_GET, (key,)).fetchone()))

    async def complete(self, record: Record) -> None:
        await self.db.arun(self._complete(record), write=True)

    async def delete(self, key: str) -> None:
        await self.db.arun(lambda conn: conn.execute(_DELETE, (key,)), write=True)

    def claim_sync(self, record: Record, now: float) -> Record | None:
        held: Record | None = self.db.run(self._claim(record, now), write=True)
        return held

    def get_sync(self, key: str) -> Record | None:
        return self.db.run(lambda conn: _record(conn.execute(_GET, (key,)).fetchone()))

    def complete_sync(self, record: Record) -> None:
        self.db.run(self._complete(record), write=True)

    def delete_sync(self, key: str) -> None:
        self.db.run(lambda conn: conn.execute(_DELETE, (key,)), write=True)


def _sweep(conn: sqlite3.Connection, now: float) -> None:
    conn.execute("DELETE FROM idempotency WHERE expiration < ?", (int(now),))
