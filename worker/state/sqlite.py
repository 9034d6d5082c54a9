"""The embedded store's file: one SQLite database shared by every worker process.

WAL mode lets readers run beside the one writer; each write is a short transaction, and
a writer that finds another process's lock waits up to `WORKER_STATE_BUSY_TIMEOUT`
(then fails with an error that names the setting). Commits are not fsynced
(`synchronous=NORMAL`): a killed process loses nothing, a power cut may lose the last
commits, which on Lambda's `/tmp` or a container's disk would be gone anyway.

The loop never waits on a lock: its own connection has no busy timeout, so a statement
either runs at once (tens of microseconds) or fails with SQLITE_BUSY, and then runs
again on the file's thread, whose connection waits. Threads (sync handlers) use that
connection too, one at a time. The WAL is checkpointed, and expired rows deleted, on the
file's thread every `MAINTAIN_EVERY` writes, never in a write the loop makes.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from worker.state.base import StoreError

T = TypeVar("T")

#: Writes between two checkpoints of the WAL (SQLite's own default is 1000 pages).
MAINTAIN_EVERY = 500
#: The least time between two sweeps of expired rows.
SWEEP_EVERY = 60.0
#: SQLite's result codes for a lock held by another connection.
_BUSY_CODES = frozenset((5, 6))  # SQLITE_BUSY, SQLITE_LOCKED

Work = Callable[[sqlite3.Connection], T]


def _busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _BUSY_CODES
    return "locked" in str(exc) or "busy" in str(exc)


class Database:
    """One SQLite file, as seen by this process (see the module's text)."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.pid = os.getpid()
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._lock = threading.Lock()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="state")
        self._blocking = self._connect(busy_timeout)
        self._retry(lambda: _wal(self._blocking))  # the file's mode, from then on
        self._inline: sqlite3.Connection | None = None
        self._writes = 0
        self._swept = 0.0
        self._sweepers: list[Callable[[sqlite3.Connection, float], None]] = []

    def _connect(self, timeout: float) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _inline_connection(self) -> sqlite3.Connection:
        conn = self._inline
        if conn is None:
            conn = self._inline = self._connect(0.0)
            # Checkpoints run on the file's thread (`maintain`), never in the loop's writes.
            conn.execute("PRAGMA wal_autocheckpoint=0")
        return conn

    def _retry(self, work: Callable[[], T]) -> T:
        """`work` again while another process's lock refuses it at once, up to the busy
        timeout: SQLite does not wait on its own for a schema or journal-mode change
        racing another process's first open of the file."""
        end = time.monotonic() + self.busy_timeout
        pause = 0.001
        while True:
            try:
                return work()
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or time.monotonic() >= end:
                    raise self._error(exc) from exc
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def schema(self, statements: str) -> None:
        """Create tables and indexes (idempotent: every process runs it at its start)."""

        def create() -> None:
            with self._lock:
                _transact(self._blocking, lambda conn: conn.executescript(statements))

        self._retry(create)

    def sweeps(self, sweep: Callable[[sqlite3.Connection, float], None]) -> None:
        """Have `sweep(conn, now)` delete expired rows, every `SWEEP_EVERY` at most."""
        self._sweepers.append(sweep)

    def run(self, work: Work[T], write: bool = False) -> T:
        """`work` on the waiting connection (a thread's call: it may block)."""
        with self._lock:
            try:
                result = _transact(self._blocking, work)
            except sqlite3.OperationalError as exc:
                raise self._error(exc) from exc
        if write:
            self._wrote()
        return result

    async def arun(self, work: Work[T], write: bool = False) -> T:
        """`work` on the loop's connection, or on the file's thread when a lock is held."""
        conn = self._inline_connection()
        try:
            result = _transact(conn, work)
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                raise self._error(exc) from exc
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._thread, self.run, work)
        if write:
            self._wrote()
        return result

    def _wrote(self) -> None:
        self._writes += 1
        if self._writes % MAINTAIN_EVERY == 0:
            self._thread.submit(self.maintain)

    def maintain(self) -> None:
        """Checkpoint the WAL and, now and then, delete expired rows."""
        now = time.time()
        try:
            with self._lock:
                self._blocking.execute("PRAGMA wal_checkpoint(PASSIVE)")
                if now - self._swept >= SWEEP_EVERY:
                    self._swept = now
                    for sweep in self._sweepers:
                        sweep(self._blocking, now)
        except sqlite3.Error:
            pass  # the next round tries again; nothing depends on it now

    def _error(self, exc: sqlite3.OperationalError) -> StoreError:
        if _busy(exc):
            return StoreError(
                f"the state store {self.path} stayed locked by another process for longer"
                f" than WORKER_STATE_BUSY_TIMEOUT ({self.busy_timeout:g} s)"
            )
        return StoreError(f"the state store {self.path} failed: {exc}")

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        with self._lock:
            self._blocking.close()
            if self._inline is not None:
                self._inline.close()
                self._inline = None


def _wal(conn: sqlite3.Connection) -> None:
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode=WAL")


def _transact(conn: sqlite3.Connection, work: Work[T]) -> T:
    """Run `work`; a transaction it left open is rolled back when it fails."""
    try:
        return work(conn)
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise


_open: dict[tuple[int, str], Database] = {}
_open_lock = threading.Lock()


def database(path: str, busy_timeout: float) -> Database:
    """This process's `Database` for `path` (a forked child opens its own: SQLite
    connections must not cross a fork)."""
    key = (os.getpid(), path)
    db = _open.get(key)
    if db is None:
        with _open_lock:
            db = _open.get(key)
            if db is None:
                db = _open[key] = Database(path, busy_timeout)
    return db


def close_all() -> None:
    """Close this process's databases (tests, and a process that ends)."""
    pid = os.getpid()
    for key in [k for k in _open if k[0] == pid]:
        _open.pop(key).close()
    for key in list(_open):  # a parent's, inherited across a fork: not ours to close
        _open.pop(key)
