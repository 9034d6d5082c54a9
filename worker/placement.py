"""Where a sync handler runs: on the event loop while its calls neither block nor run long.

A thread costs a sync handler two cross-thread wake-ups per call (the thread pool's queue,
then the loop's): about 45 µs of CPU per invocation at concurrency 8 here, many times what
a handler that computes its answer from the event costs. Under the GIL such a call gains
nothing from a thread. A call that blocks (I/O, a sleep, a lock) does: on a thread, the
other slots go on while it waits.

So each sync handler function is judged by its own calls, as the kernel counts them for the
thread that ran them: a call that blocked (a voluntary context switch) or used more CPU time
than the bound needs a thread. Being preempted is not blocking, and waiting for the GIL
before a threaded call starts is not counted (the counts start once it runs Python). After
`TRUST` calls in a row that needed no thread, the function runs on the loop. Its first call
there that needs one sends it back to threads: that one call held the loop, so the streak it
needs to return doubles (up to `TRUST_MAX`), unless it had stayed on the loop for a long
while, which makes that call the exception rather than the rule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from resource import RUSAGE_THREAD, getrusage
from time import thread_time
from typing import Any

log = logging.getLogger("worker.placement")

#: Calls in a row that needed no thread before a function runs on the loop.
TRUST = 64
#: The longest streak ever asked of a function that keeps going back to threads.
TRUST_MAX = 65536
#: Functions judged per process; calls to others run on threads, unjudged.
MAX_FUNCTIONS = 1024


class Placement:
    """One sync handler function's record: where it runs, and its streak of calls that
    needed no thread."""

    __slots__ = ("name", "needed", "on_loop", "streak")

    def __init__(self, name: str) -> None:
        self.name = name
        self.on_loop = False
        self.streak = 0
        self.needed = TRUST


Counts = tuple[int, float]  # voluntary context switches, CPU seconds (user + system)


def counts() -> Counts:
    """This thread's voluntary context switches and CPU time so far (from the scheduler's
    clock: getrusage's CPU times move in whole ticks)."""
    return getrusage(RUSAGE_THREAD).ru_nvcsw, thread_time()


def since(before: Counts) -> Counts:
    """What this thread has spent since it read `before` (from `counts()`)."""
    switches, cpu = counts()
    return switches - before[0], cpu - before[1]


def run_counted(fn: Callable[[Any, Any], Any], event: Any, context: Any) -> tuple[Any, Counts]:
    """Call a sync handler (on a thread) and return its result with what the call cost."""
    before = counts()
    result = fn(event, context)
    return result, since(before)


class Placements:
    """The records of one process's sync handler functions, and the rule that moves them."""

    def __init__(self, max_cpu_seconds: float) -> None:
        self.max_cpu = max_cpu_seconds
        self.records: dict[Any, Placement] = {}

    def of(self, fn: Callable[..., Any]) -> Placement | None:
        # Keyed by code: a router's fallbacks are new closures of one function per call.
        key = getattr(fn, "__code__", fn)
        record = self.records.get(key)
        if record is None and len(self.records) < MAX_FUNCTIONS:
            name = getattr(fn, "__qualname__", repr(fn))
            record = self.records[key] = Placement(name)
        return record

    def judge(self, record: Placement, cost: Counts) -> None:
        """One call of `record`'s function cost `cost`: move it if that calls for it."""
        if not cost[0] and cost[1] <= self.max_cpu:
            streak = record.streak = record.streak + 1
            if streak == record.needed and not record.on_loop:
                record.on_loop = True
                log.debug(
                    "%s runs on the loop: %d calls in a row never blocked", record.name, streak
                )
            return
        if record.on_loop:
            record.on_loop = False
            # A long stay on the loop makes this call the exception; a short one, the rule.
            long_stay = record.streak >= 4 * record.needed
            record.needed = TRUST if long_stay else min(2 * record.needed, TRUST_MAX)
            log.debug(
                "%s back on threads: a call blocked %d times, used %.3f ms of CPU",
                record.name,
                cost[0],
                cost[1] * 1e3,
            )
        record.streak = 0
