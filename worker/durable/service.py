"""A worker process's durable service: resumes, leases, and invocations waiting off their slots.

Started by the worker process (`start`) when its handler has durable functions:

- a wait that suspends an execution arms a timer here, or, with
  `WORKER_DURABLE_QUEUE_URL`, sends a message delayed until the wait ends (at most
  SQS's 900 s at a time; an early one is sent again), so that any environment consuming
  that queue with this handler resumes it. A resume is a job on the pool, like any
  invocation: it takes a slot only when it runs;
- a sweep, every third of `WORKER_DURABLE_LEASE`, renews the leases of the executions
  running here, and resumes executions whose worker died (their lease expired) or
  whose wait ended with no timer left to see it (the environment restarted): a crashed
  execution resumes within the lease and a third;
- invocations parked by their execution (`park`) are answered when it finishes, here
  or in another process (looked at every `PARKED_POLL`), or 202 at their deadline, or
  when the process stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from worker.config import Config
from worker.durable.errors import stored_error
from worker.errors import LambdaError
from worker.jobs import Job
from worker.state import settings as state_settings
from worker.state.base import SUCCEEDED, TERMINAL, DurableStore, Execution, LeaseLost

if TYPE_CHECKING:
    from worker.durable.context import Run

log = logging.getLogger("worker.durable")

#: The event of a resume: what the timers submit, and the body of a queue message.
RESUME = "worker.durable.resume"
#: How often parked invocations look at executions that run in another process.
PARKED_POLL = 0.25
#: Executions a sweep resumes at most (the next sweep takes the rest).
SWEEP_LIMIT = 64
#: SQS's longest message delay.
MAX_DELAY = 900
#: A resume refused by a full lane is offered again after this long.
RESUBMIT = 0.1

#: `settle(status, result, error)`: answer a parked invocation; 200 answers as its slot
#: would have (the result, or the error), 202 says it is accepted (`result` the body).
Settle = Callable[[int, Any, LambdaError | None], None]

#: This process's service, while it runs.
current: Service | None = None


class _Parked:
    __slots__ = ("body", "settle", "timer")

    def __init__(self, settle: Settle, body: dict[str, Any]) -> None:
        self.settle = settle
        self.body = body
        self.timer: asyncio.TimerHandle | None = None


class Service:
    """See the module's text."""

    def __init__(
        self, stores: list[DurableStore], submit: Callable[[Job], bool], config: Config
    ) -> None:
        self.stores = stores
        self.submit = submit
        self.lease = config.durable_lease
        self.queue_url = config.durable_queue_url
        self.every = min(10.0, max(0.05, self.lease / 3))
        self.running: dict[str, Run] = {}
        self.parked: dict[str, list[_Parked]] = {}
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.resuming: set[str] = set()
        self.skipped: dict[str, float] = {}  # name -> until: not ours to resume (version)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.loop = asyncio.get_running_loop()
        self._sweeper: asyncio.Task[None] | None = None
        self._parked_more = asyncio.Event()  # wakes the sweep loop to look sooner

    def start(self, stopping: asyncio.Event | None) -> None:
        self._sweeper = asyncio.ensure_future(self._sweep_loop())
        if stopping is not None:
            self._spawn(self._stop_when(stopping))

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- resuming --------------------------------------------------------------------------

    def schedule(self, name: str, wake_at: float) -> None:
        """Resume `name` when its wait ends: a delayed queue message, or a timer here."""
        if self.queue_url:
            self._spawn(self._send(name, wake_at))
            return
        self._arm(name, wake_at)

    def _arm(self, name: str, wake_at: float) -> None:
        timer = self.timers.pop(name, None)
        if timer is not None:
            timer.cancel()
        delay = max(0.0, wake_at - time.time())
        self.timers[name] = self.loop.call_later(delay, self._fire, name)

    def _fire(self, name: str) -> None:
        self.timers.pop(name, None)
        self.resume(name)

    async def _send(self, name: str, wake_at: float) -> None:
        from worker import aws

        delay = min(MAX_DELAY, max(0, math.ceil(wake_at - time.time())))
        try:
            sqs = await aws.current.get("sqs")
            await sqs.send_message(
                QueueUrl=self.queue_url,
                MessageBody=orjson.dumps({RESUME: name}).decode(),
                DelaySeconds=delay,
            )
        except Exception as exc:
            log.warning("queueing the resume of %s failed (%s): a timer here resumes it", name, exc)
            self._arm(name, wake_at)

    def resume(self, name: str) -> None:
        """Offer the pool a job that resumes `name` (again later if its lane is full)."""
        if name in self.resuming or name in self.running:
            return
        self.resuming.add(name)
        job = Job(
            {RESUME: name},
            lambda result, error: self._resumed(name, error),
            kind="durable",
            route="durable",
        )
        if not self.submit(job):
            self.resuming.discard(name)
            self.timers[name] = self.loop.call_later(RESUBMIT, self._fire, name)

    def _resumed(self, name: str, error: LambdaError | None) -> str | None:
        self.resuming.discard(name)
        if error is not None:
            log.warning("resuming %s failed: %s: %s", name, error.error_type, error.message)
            return error.error_type
        return None

    def skip(self, name: str) -> None:
        """Leave `name` to other code for a while (its version is pinned to it)."""
        self.skipped[name] = time.time() + self.lease

    def release(self, run: Run) -> None:
        """Give up `run`'s lease at once (it was cut off): the next sweep resumes it."""
        self._spawn(self._release(run))

    @staticmethod
    async def _release(run: Run) -> None:
        try:
            await run.store.release(run.name, run.owner)
        except Exception as exc:  # its lease expires anyway
            log.warning("releasing the lease of %s failed: %s", run.name, exc)

    # -- the sweep -----------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        next_sweep = 0.0
        while True:
            # Executions parked on here that no timer or run of this process will finish.
            remote = [
                name
                for name in self.parked
                if name not in self.running
                and name not in self.timers
                and name not in self.resuming
            ]
            if remote:
                await self._look(remote)
            now = time.monotonic()
            if now >= next_sweep:
                next_sweep = now + self.every
                try:
                    await self._sweep()
                except Exception as exc:
                    log.warning("the durable sweep failed: %s", exc)
            pause = PARKED_POLL if self.parked else self.every
            self._parked_more.clear()
            with contextlib.suppress(TimeoutError):
                left = max(0.0, next_sweep - time.monotonic())
                await asyncio.wait_for(self._parked_more.wait(), min(pause, left))

    async def _sweep(self) -> None:
        now = time.time()
        for run in list(self.running.values()):
            if run.lease_until - now < self.lease * 2 / 3:
                try:
                    await run.renew()
                except LeaseLost:
                    log.warning("the lease of %s was taken over", run.name)
        # With the queue, a wait that ended is its message's to resume; the sweep only
        # catches one whose message was lost (sending failed) a lease later.
        waits_before = now - self.lease if self.queue_url else now
        for name in [n for n, until in self.skipped.items() if until < now]:
            del self.skipped[name]
        for store in self.stores:
            for name in await store.due(now, waits_before, SWEEP_LIMIT):
                if name in self.timers or name in self.skipped:
                    continue
                self.resume(name)

    async def _look(self, names: list[str]) -> None:
        """Executions other processes run, that invocations here wait for."""
        for name in names:
            for store in self.stores:
                try:
                    execution = await store.get(name)
                except Exception as exc:
                    log.warning("looking at %s failed: %s", name, exc)
                    continue
                if execution is not None and execution.status in TERMINAL:
                    self.finished(name, execution)
                    break

    # -- parked invocations ----------------------------------------------------------------

    def park(self, name: str, settle: Settle, deadline: float | None, body: dict[str, Any]) -> None:
        """Answer this invocation when `name` finishes, or 202 at its `deadline`."""
        parked = _Parked(settle, body)
        if deadline is not None:
            delay = max(0.0, deadline - time.time())
            parked.timer = self.loop.call_later(delay, self._expire, name, parked)
        self.parked.setdefault(name, []).append(parked)
        self._parked_more.set()

    def _expire(self, name: str, parked: _Parked) -> None:
        waiting = self.parked.get(name)
        if waiting is not None and parked in waiting:
            waiting.remove(parked)
            if not waiting:
                del self.parked[name]
        _settle(parked, 202, parked.body, None)

    def finished(self, name: str, execution: Execution) -> None:
        """`name` finished: every invocation parked on it gets its result or error."""
        for parked in self.parked.pop(name, []):
            if parked.timer is not None:
                parked.timer.cancel()
            if execution.status == SUCCEEDED:
                result = orjson.loads(execution.result) if execution.result else None
                _settle(parked, 200, result, None)
            else:
                _settle(parked, 200, None, stored_error(execution.error))

    # -- stopping --------------------------------------------------------------------------

    async def _stop_when(self, stopping: asyncio.Event) -> None:
        await stopping.wait()
        self.answer_parked()

    def answer_parked(self) -> None:
        """202 to every parked invocation (the process stops: its executions go on)."""
        parked, self.parked = self.parked, {}
        for waiting in parked.values():
            for one in waiting:
                if one.timer is not None:
                    one.timer.cancel()
                _settle(one, 202, one.body, None)

    async def stop(self) -> None:
        self.answer_parked()
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=1.0)


def _settle(parked: _Parked, status: int, result: Any, error: LambdaError | None) -> None:
    try:
        parked.settle(status, result, error)
    except Exception:  # a source's bug must not stop the others' answers
        log.exception("answering a parked invocation failed")


def start(
    config: Config, submit: Callable[[Job], bool], stopping: asyncio.Event | None = None
) -> Service | None:
    """In a worker process, on its loop: the settings of the state stores, and the
    service when the handler has durable functions (None otherwise)."""
    global current
    state_settings.configure(config)
    from worker.durable.engine import FUNCTIONS

    if not FUNCTIONS:
        return None
    stores: list[DurableStore] = []
    for function in FUNCTIONS:
        if all(function.store is not s for s in stores):
            stores.append(function.store)
    service = current = Service(stores, submit, config)
    service.start(stopping)
    return service


async def stop() -> None:
    global current
    service, current = current, None
    if service is not None:
        await service.stop()
