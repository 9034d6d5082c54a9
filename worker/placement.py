"""Where a sync handler runs: on the event loop while its calls neither block nor run long.

A thread costs a sync handler two cross-thread wake-ups per call (the thread pool's queue,
then the loop's): about 45 µs of CPU per invocation at concurrency 8 here, many times what
a handler that computes its answer from the event costs. Under the GIL such a call gains
nothing from a thread. A call that blocks (I/O, a sleep, a lock) does: on a thread, the
other slots go on while it waits.

So each sync handler function is judged by its own calls, as the kernel counts them for the
thread that ran them: a call that blocked (a voluntary context switch) or used more CPU time
than the bound needs a thread. Being preempted is not blocking, and waiting for the GIL
before a threaded call starts is not counted (the counts start once it runs Python).

CPU time is read only when it decides something: a call within the bound in wall time
(`perf_counter`, no system call) is within it in CPU time, and a call over it that never
left its core (no context switch of either kind) spent that time on the CPU. Only a call
over the bound that was preempted is unclear; the function's next call is then measured by
the thread's CPU clock (`thread_time`), which costs a system call each side. After
`TRUST` calls in a row that needed no thread, the function runs on the loop. Its first call
there that needs one sends it back to threads: that one call held the loop, so the streak it
needs to return doubles (up to `TRUST_MAX`), unless it had stayed on the loop for a long
while, which makes that call the exception rather than the rule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from resource import RUSAGE_THREAD, getrusage
from time import perf_counter, thread_time
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

    __slots__ = ("name", "needed", "on_loop", "precise", "streak")

    def __init__(self, name: str) -> None:
        self.name = name
        self.on_loop = False
        self.streak = 0
        self.needed = TRUST
        self.precise = False  # measure the next call's CPU time: the last one was unclear


#: Voluntary and involuntary context switches, wall seconds, CPU seconds (-1.0: not read).
Counts = tuple[int, int, float, float]


def counts(cpu: bool = False) -> Counts:
    """This thread's context switches so far, the wall clock, and with `cpu` its CPU time
    (from the scheduler's clock: getrusage's CPU times move in whole ticks)."""
    usage = getrusage(RUSAGE_THREAD)
    return usage.ru_nvcsw, usage.ru_nivcsw, perf_counter(), thread_time() if cpu else -1.0


def since(before: Counts) -> Counts:
    """What this thread has spent since it read `before` (from `counts()`), measured alike."""
    timed = before[3] >= 0
    now = counts(timed)
    cpu = now[3] - before[3] if timed else -1.0
    return now[0] - before[0], now[1] - before[1], now[2] - before[2], cpu


def run_counted(
    fn: Callable[[Any, Any], Any], event: Any, context: Any, cpu: bool = False
) -> tuple[Any, Counts]:
    """Call a sync handler (on a thread) and return its result with what the call cost."""
    before = counts(cpu)
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
        blocked, preempted, wall, cpu = cost
        if cpu >= 0:
            record.precise = False
        if blocked:
            needs_thread = True
        elif cpu >= 0:
            needs_thread = cpu > self.max_cpu
        elif wall <= self.max_cpu:
            needs_thread = False
        elif not preempted:
            needs_thread = True  # it never left its core: its wall time was CPU time
        else:
            record.precise = True  # how much of that time was its own? Measure the next.
            return
        if not needs_thread:
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
                "%s back on threads: a call blocked %d times, took %.3f ms",
                record.name,
                blocked,
                (cpu if cpu >= 0 else wall) * 1e3,
            )
        record.streak = 0
