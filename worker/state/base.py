"""What the stores keep and promise: idempotency records and durable executions.

An idempotency record has Powertools' fields (`id`, `expiration` in epoch seconds,
`in_progress_expiration` in epoch milliseconds, `status`, `data`, `validation`), so a
function moving from Powertools keeps its records. A durable execution is one record
with its operations (steps, waits, recorded values) in order.

Every store answers the same questions the same way; which execution a caller may run
is decided here once (`decide`), from what the store read, so that SQLite, DynamoDB and
memory agree by construction.
"""

from __future__ import annotations

import abc
import dataclasses
import enum

#: Powertools' status values (`STATUS_CONSTANTS`): a record is EXPIRED when read after
#: its `expiration`, whatever it holds.
INPROGRESS = "INPROGRESS"
COMPLETED = "COMPLETED"
EXPIRED = "EXPIRED"

#: An execution's states.
RUNNING = "RUNNING"  # a worker holds its lease and runs it
WAITING = "WAITING"  # suspended in `ctx.wait()` until `wake_at`
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
TERMINAL = frozenset((SUCCEEDED, FAILED))

#: An operation's states ("STARTED": a step began and has no outcome yet).
STARTED = "STARTED"


class StoreError(Exception):
    """A store could not do what was asked (unreachable, misconfigured, locked too long)."""


class LeaseLost(StoreError):
    """This worker no longer holds the execution's lease: another one resumed it."""


@dataclasses.dataclass(slots=True)
class Record:
    """One idempotency record, as Powertools' DynamoDB layer stores it."""

    key: str
    status: str
    expiration: int  # epoch seconds
    in_progress_expiration: int | None = None  # epoch milliseconds: the holder's deadline
    data: str | None = None  # the result, JSON
    validation: str | None = None  # hash of the validated part of the payload

    def live(self, now: float) -> bool:
        """Whether it still answers for its key: not expired, and not an in-progress
        record whose holder's deadline has passed (its holder died or timed out)."""
        if self.expiration < int(now):
            return False
        if self.status == INPROGRESS and self.in_progress_expiration is not None:
            return self.in_progress_expiration >= int(now * 1000)
        return True


class IdempotencyStore(abc.ABC):
    """Idempotency records, with an async API for the loop and a sync one for threads."""

    #: The longest pause between two looks at a record another process holds.
    poll_max = 0.05

    @abc.abstractmethod
    async def claim(self, record: Record, now: float) -> Record | None:
        """Write `record` (in progress) unless a live one holds its key: None when written,
        else the live record. Atomic across every process sharing the store."""

    @abc.abstractmethod
    async def get(self, key: str) -> Record | None: ...

    @abc.abstractmethod
    async def complete(self, record: Record) -> None:
        """Store the result: status, data, expiration (and validation) of `record`."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None: ...

    @abc.abstractmethod
    def claim_sync(self, record: Record, now: float) -> Record | None: ...

    @abc.abstractmethod
    def get_sync(self, key: str) -> Record | None: ...

    @abc.abstractmethod
    def complete_sync(self, record: Record) -> None: ...

    @abc.abstractmethod
    def delete_sync(self, key: str) -> None: ...


@dataclasses.dataclass(slots=True)
class Op:
    """One operation of an execution, in the order the handler asked for it.

    `kind` is "step", "wait" or a recorded value ("now", "random", "uuid"); `value` is
    JSON: a step's result, a wait's wake time, the recorded value. `attempts` counts the
    step's starts, `failures` those that raised: a STARTED step found on replay was
    interrupted (a crash, a timeout) `attempts - failures` times.
    """

    seq: int
    kind: str
    name: str
    status: str
    value: str | None = None
    error: str | None = None  # JSON {"errorType", "errorMessage"}
    started: float = 0.0
    ended: float | None = None
    attempts: int = 0
    failures: int = 0


@dataclasses.dataclass(slots=True)
class Execution:
    """One durable execution and, when read whole, its operations."""

    name: str
    status: str
    version: str
    input: str  # the event that started it, JSON
    function: str = ""
    owner: str | None = None  # the lease holder
    lease_until: float = 0.0
    wake_at: float | None = None
    result: str | None = None  # JSON
    error: str | None = None  # JSON {"errorType", "errorMessage"}
    created: float = 0.0
    updated: float = 0.0
    ops: list[Op] = dataclasses.field(default_factory=list)


class Outcome(enum.Enum):
    """What a caller asking to run an execution may do (`decide`)."""

    NEW = "new"  # it did not exist: created, the caller holds its lease
    TAKEOVER = "takeover"  # due (a wait ended, or its holder's lease expired): resumed
    TERMINAL = "terminal"  # finished: its result or error is the answer
    BUSY = "busy"  # another worker holds a live lease on it
    NOT_DUE = "not_due"  # waiting, and its wait has not ended
    VERSION = "version"  # due, but started by other code and the policy pins versions
    MISSING = "missing"  # a resume for an execution that does not exist (nothing created)


def decide(
    execution: Execution | None, now: float, version: str, pin: bool, create: bool = True
) -> Outcome:
    if execution is None:
        return Outcome.NEW if create else Outcome.MISSING
    status = execution.status
    if status in TERMINAL:
        return Outcome.TERMINAL
    if status == RUNNING and execution.lease_until > now:
        return Outcome.BUSY
    if status == WAITING and (execution.wake_at or 0.0) > now:
        return Outcome.NOT_DUE
    if pin and execution.version != version:
        return Outcome.VERSION
    return Outcome.TAKEOVER


@dataclasses.dataclass(slots=True)
class Claim:
    outcome: Outcome
    execution: Execution  # with its operations when the caller now holds the lease


@dataclasses.dataclass(frozen=True, slots=True)
class Start:
    """What a caller brings to `DurableStore.claim`."""

    name: str
    input: str
    version: str
    function: str
    owner: str
    lease_until: float
    now: float
    pin: bool
    create: bool = True  # False: a resume, which must not create what is not there


class DurableStore(abc.ABC):
    """Durable executions. Every write by a lease holder is conditional on holding it
    (`LeaseLost` otherwise) and renews it."""

    #: How often waiters look at an execution another worker runs.
    poll = 0.1

    @abc.abstractmethod
    async def claim(self, start: Start) -> Claim:
        """Create the execution, or take it over when due (`decide`); atomic."""

    @abc.abstractmethod
    async def get(self, name: str) -> Execution | None:
        """The execution with its operations, or None."""

    @abc.abstractmethod
    async def checkpoint(
        self, name: str, owner: str, lease_until: float, ops: list[Op], now: float
    ) -> None:
        """Write `ops` (new or updated) and renew the lease, in one atomic write."""

    @abc.abstractmethod
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
        """End this run: WAITING until `wake_at`, or SUCCEEDED/FAILED with the result or
        error; the lease is released. Atomic with `ops`."""

    @abc.abstractmethod
    async def release(self, name: str, owner: str) -> None:
        """Give the lease up at once (the run was interrupted): due for a resume now."""

    @abc.abstractmethod
    async def due(self, now: float, waits_before: float, limit: int) -> list[str]:
        """Names of executions due for a resume: leases expired before `now`, waits that
        ended before `waits_before`."""
