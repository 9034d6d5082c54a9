"""Slots that run handlers: asyncio tasks on the process's loop, sync handlers on threads
(or on the loop, where their calls neither block nor run long: see `worker.placement`)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import signal
import threading
import time
from asyncio.events import _set_running_loop
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import AsyncGeneratorType
from typing import Any

from worker import environment, streaming, syncloop, tracing
from worker.classify import WARMUP
from worker.config import Config
from worker.context import LambdaContext
from worker.errors import LambdaError, from_exception, queue_timed_out, timed_out
from worker.handler import Handler, HandlerFn
from worker.inference import registry
from worker.jobs import Job
from worker.lanes import Lane, Lanes
from worker.placement import Placement, Placements, counts, run_counted, since
from worker.telemetry.logs import request_id
from worker.telemetry.metrics import LaneStats, Metrics
from worker.tracing import trace_id
from worker.warmup import Warmup

log = logging.getLogger("worker.pool")

#: How often deadlines are checked: a timeout is answered at most this late. One watcher
#: per process costs less than a timer armed and cancelled for every invocation.
WATCH_INTERVAL = 0.02

#: Invocations this long or longer always teach their lane and route (observing costs
#: well under 0.1 % of them); shorter ones one in `OBSERVE_EVERY`: for a no-op handler,
#: observing every invocation was 0.7 µs of the 7 the HTTP path spends per request.
OBSERVE_ALL_FROM = 0.001
OBSERVE_EVERY = 8


def shutdown_error() -> LambdaError:
    return LambdaError("Runtime.ExitError", "The worker shut down before the invocation finished")


def _reader(lane: Lane, attr: str) -> Callable[[], float]:
    return lambda: float(getattr(lane, attr))


class _Deadline(BaseException):
    """Raised inside a sync handler running on the loop when its deadline passes (not an
    Exception, so a handler's `except Exception` does not swallow it)."""


class Slot:
    """One unit of concurrency: a task that takes jobs from its lane, one at a time."""

    __slots__ = ("deadline", "expired", "lane", "stats", "task")

    def __init__(self, lane: Lane, stats: LaneStats) -> None:
        self.lane = lane
        self.stats = stats
        self.deadline = 0.0  # epoch seconds of the running invocation; 0 when idle
        self.expired = False
        self.task: asyncio.Task[None] | None = None


class Pool:
    """Runs jobs from the lanes on slots.

    Each lane gets `lane.slots` slot tasks. Async handlers run in the slot; sync ones on a
    thread pool with one thread per slot, so a slot never waits for a thread, or on the
    loop's own thread: always in Lambda mode with a single slot (`inline`), else while the
    function's calls neither block nor run long (`placements`). A deadline watcher cancels
    a slot whose invocation outlives its deadline; SIGALRM interrupts a sync handler on the
    loop at its deadline. One on a thread past its deadline is answered `Sandbox.Timedout`
    at once, but Python cannot stop a thread, so its slot stays busy until it returns.
    """

    def __init__(
        self,
        handler: Handler,
        lanes: Lanes,
        config: Config,
        *,
        worker_tmp: str,
        metrics: Metrics,
    ) -> None:
        self.handler = handler
        self.lanes = lanes
        self.config = config
        self.metrics = metrics
        self.warmup = config.warmup == "on"
        slots = sum(lane.slots for lane in lanes.all)
        # A sync handler's thread that outlives its deadline cannot be stopped: its slot
        # goes on with a spare thread, one per slot at most (`_outlive`).
        self.spare_threads = slots
        self.threads = ThreadPoolExecutor(max_workers=2 * slots, thread_name_prefix="handler")
        self.slots: list[Slot] = []
        # A sync handler may run on the loop's thread only where SIGALRM can stop it at its
        # deadline (a thread could not be stopped), and not with models: context.infer() from
        # a sync handler waits on the loop.
        on_loop = threading.current_thread() is threading.main_thread() and not registry.MODELS
        # Lambda mode with one slot in the process: nothing else needs the loop while a sync
        # handler runs, so it always runs right here, sparing two cross-thread wake-ups per
        # invocation.
        self.inline = (
            on_loop
            and config.mode == "lambda"
            and not handler.is_async
            and sum(lane.slots for lane in lanes.all) == 1
        )
        self.placements = (
            Placements(config.sync_on_loop_ms / 1e3)
            if on_loop and not self.inline and config.sync_on_loop_ms > 0
            else None
        )
        self._on_loop = False  # a sync handler is running on the loop's thread
        self._on_loop_deadline = 0.0  # its deadline (epoch seconds)
        # When the armed SIGALRM timer fires (epoch seconds; 0: not armed). It is armed for
        # the deadline of the call that armed it and left armed after that call: a later
        # call whose deadline is no earlier (each call's deadline is its start plus the
        # timeout) needs no timer of its own, and an early alarm re-arms for the rest. Two
        # system calls fewer per call than arming and disarming around each one.
        self._alarm_at = 0.0
        self._alarm: Any = None  # SIGALRM's handler before ours
        self._loop: asyncio.AbstractEventLoop | None = None
        self._policy: syncloop.SyncCodePolicy | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.finished = 0  # invocations answered by this process
        self._large = config.marathon_bytes
        self._limit = 0
        self._on_limit: Callable[[], None] | None = None
        self._check: Callable[[], None] | None = None
        self._check_every = 1
        self.stuck = 0  # slots waiting on the thread of a timed-out sync handler
        self.hung = 0  # threads of timed-out sync handlers still running, slots gone on
        self._on_stuck: Callable[[str], None] | None = None
        self._stats = {lane.name: metrics.lane(lane.name) for lane in lanes.all}
        self.function = environment.function(config, worker_tmp)
        self.warmups = Warmup(config, self.function, metrics)
        for lane in lanes.all:
            labels = (("lane", lane.name),)
            metrics.gauge("worker_in_flight", labels, _reader(lane, "in_flight"))
            metrics.gauge("worker_queue_depth", labels, _reader(lane, "depth"))

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        # Sync handlers get a loop of their own when they ask for one (`syncloop`), and
        # their invocation's trace id from the environment (`tracing`).
        self._policy = syncloop.install()
        tracing.install()
        if self.inline or self.placements is not None:
            self._alarm = signal.signal(signal.SIGALRM, self._expire)
        for lane in self.lanes.all:
            for _ in range(lane.slots):
                slot = Slot(lane, self._stats[lane.name])
                slot.task = asyncio.ensure_future(self._run_slot(slot))
                self.slots.append(slot)
        self._watcher = asyncio.ensure_future(self._watch())

    def limit(self, invocations: int, reached: Callable[[], None]) -> None:
        """Call `reached` once this process has answered `invocations` invocations."""
        self._limit, self._on_limit = invocations, reached

    def when_stuck(self, stuck: Callable[[str], None]) -> None:
        """Call `stuck(reason)` when the spare threads are all taken by timed-out sync
        handlers (`hung_threads`), or when every slot is held by one (`stuck_threads`)."""
        self._on_stuck = stuck

    def check_every(self, invocations: int, check: Callable[[], None]) -> None:
        """Call `check` after every `invocations` answers (a memory limit's reading)."""
        self._check_every, self._check = max(1, invocations), check

    def submit(self, job: Job) -> bool:
        """Admit a job into its lane, or False when the lane is full (answer 429).

        A warm-up ping (`WARMUP`, while `WORKER_WARMUP` is on) is answered by the runtime
        (`worker.warmup`), in every mode: the environment is warm once it is read, so no
        lane, slot or handler is needed, and no route profile learns from a no-op."""
        if job.kind == WARMUP and self.warmup:
            self.warmups.answer(job)
            return True
        lane = self.lanes.choose(job)
        if lane.offer(job):
            return True
        self.metrics.inc("worker_rejections_total", (("lane", lane.name),))
        return False

    async def drain(self, grace: float) -> bool:
        """Stop admitting; let queued and running jobs finish within `grace` seconds.

        Whatever is still unanswered then gets a shutdown error: nothing accepted goes
        unanswered. True when everything finished in time.
        """
        for lane in self.lanes.all:
            lane.close()
        self.warmups.close()  # pings still held are answered now
        tasks = [slot.task for slot in self.slots if slot.task is not None]
        pending: set[asyncio.Task[None]] = set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
        for lane in self.lanes.all:
            for job in lane.drop_queued():
                job.reply(None, shutdown_error())
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        if self._watcher is not None:
            self._watcher.cancel()
        self.threads.shutdown(wait=False, cancel_futures=True)
        if self._alarm is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self._alarm_at = 0.0
            signal.signal(signal.SIGALRM, self._alarm)
            self._alarm = None
        return not pending

    async def _watch(self) -> None:
        slots, lanes, timeout = self.slots, self.lanes.all, self.config.timeout
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            now = time.time()
            for slot in slots:
                if slot.deadline and now >= slot.deadline and not slot.expired:
                    slot.expired = True
                    if slot.task is not None:
                        slot.task.cancel()
            for lane in lanes:
                for job in lane.expire(timeout):
                    # Its whole timeout spent waiting for a slot: answered now, as a
                    # timeout, rather than run for a caller that gave up long ago.
                    self.metrics.inc("worker_queue_expired_total", (("lane", lane.name),))
                    job.reply(None, queue_timed_out(timeout))

    async def _run_slot(self, slot: Slot) -> None:
        """Run the lane's jobs one at a time until the lane closes.

        One invocation is this loop's body rather than a coroutine it awaits: that would be
        a coroutine object and a frame more per invocation, on every invocation.
        """
        lane = slot.lane
        queued, take, woke = lane.next, lane.take, lane.woke
        function = self.function
        timeout = self.config.timeout
        handler = self.handler  # frozen: what it calls is read once, not per invocation
        resolve = handler.resolve
        placements = self.placements
        streams = AsyncGeneratorType  # a handler's result that streams (`worker.streaming`)
        while True:
            job = queued()
            if job is None:
                waiter = take()
                try:
                    job = await waiter
                except asyncio.CancelledError:
                    # Cancelled (drain out of time) after the lane handed it a job, before
                    # it could start: the job is answered, not lost.
                    handed = waiter.result() if waiter.done() and not waiter.cancelled() else None
                    if handed is not None:
                        handed.reply(None, shutdown_error())  # as drain answers queued jobs
                        woke()  # no longer on its way: the next queued job finds a slot
                    raise
                if job is None:
                    return
                woke()  # before the handler runs: it may suspend, the next job must not wait
            started = time.time()
            deadline = job.deadline or started + timeout
            ctx = LambdaContext(function, job, deadline, job.lane)  # the lane it was admitted to
            # The slot's task has a context of its own: what its logs say is this request's
            # id until the next invocation sets another (no reset: its answer's logs are
            # this request's too).
            request_id.set(job.request_id)
            trace_id.set(job.trace_id)  # what `_X_AMZN_TRACE_ID` reads (`worker.tracing`)
            lane.in_flight += 1
            clock = time.perf_counter()
            slot.deadline = deadline  # `expired` is False: the last timeout reset it
            result: Any = None
            error: LambdaError | None = None
            thread: Future[Any] | None = None
            try:
                fn, is_async = handler.fn, handler.is_async
                if resolve is not None:
                    fn, is_async = resolve(job.event, ctx, job.kind, job.route)
                if is_async:
                    result = await fn(job.event, ctx)
                elif self.inline:
                    result = self._run_inline(fn, job, ctx, deadline, None)
                else:
                    record = None if placements is None else placements.of(fn)
                    if record is not None and record.on_loop:
                        result = self._run_inline(fn, job, ctx, deadline, record)
                    else:
                        # The thread runs in a copy of this slot's context: it logs this
                        # request id.
                        run = contextvars.copy_context().run
                        if record is None:
                            thread = self.threads.submit(run, fn, job.event, ctx)
                        else:
                            thread = self.threads.submit(
                                run, run_counted, fn, job.event, ctx, record.precise
                            )
                        lane.spread()  # this slot now waits on the thread: the queue need not
                        result = await asyncio.wrap_future(thread)
                        if record is not None and placements is not None:
                            result, cost = result
                            placements.judge(record, cost)
                if type(result) is streams:  # the one check every invocation pays
                    result = await streaming.pump(result, job.stream())
            except asyncio.CancelledError:
                if not slot.expired:
                    # Drain ran out of time: answer, then let the cancellation end the slot.
                    slot.deadline = 0.0
                    self._answer(job, slot, ctx, None, shutdown_error(), clock)
                    raise
                error = timed_out(deadline - started)
            except _Deadline:
                error = timed_out(deadline - started)
            except BaseException as exc:  # SystemExit from a handler must not end the slot
                log.error("handler failed", exc_info=exc)
                error = from_exception(exc)
            slot.deadline = 0.0
            if slot.expired:
                # Timed out, whether the cancellation surfaced or the handler swallowed it.
                slot.expired = False
                error = timed_out(deadline - started)
                result = None
                task = slot.task
                while task is not None and task.cancelling():
                    task.uncancel()
            if thread is not None and not thread.done():
                await self._outlive(job, slot, ctx, error, clock, thread)
            else:
                self._answer(job, slot, ctx, result, error, clock)

    async def _outlive(
        self,
        job: Job,
        slot: Slot,
        ctx: LambdaContext,
        error: LambdaError | None,
        clock: float,
        thread: Future[Any],
    ) -> None:
        """A sync handler timed out: answer the caller now. Python cannot stop its thread:
        while a spare thread is left, the slot goes on with it and the hung thread is
        counted until it returns; the last spare taken, the process is recycled (drained,
        then replaced). Past that the slot waits for the thread."""
        self._answer(job, slot, None, None, error, clock)
        if self.hung < self.spare_threads:
            self.hung += 1
            slot.lane.in_flight -= 1
            self.metrics.inc("worker_hung_threads_total")
            log.warning(
                "a sync handler's thread outlived its deadline: its slot goes on",
                extra={"fields": {"requestId": job.request_id, "hung": self.hung}},
            )
            thread.add_done_callback(lambda done: self._from_thread(ctx, done))
            if self.hung >= self.spare_threads and self._on_stuck is not None:
                self._on_stuck("hung_threads")
            return
        self.stuck += 1
        if self.stuck >= len(self.slots) and self._on_stuck is not None:
            # Every slot waits on a hung thread: this process can do nothing more.
            self._on_stuck("stuck_threads")
        try:
            await asyncio.wrap_future(thread)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # answered already: a late failure only logs
            log.warning("a timed-out handler failed after its answer", exc_info=exc)
        finally:
            self.stuck -= 1
            ctx.close()
            slot.lane.in_flight -= 1

    def _from_thread(self, ctx: LambdaContext, done: Future[Any]) -> None:
        """On the hung thread, as it returns: hand its end to the loop, if the loop still
        runs (a process leaving with the thread still out closes it first)."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._returned, ctx, done)

    def _returned(self, ctx: LambdaContext, done: Future[Any]) -> None:
        """A hung thread came back: its scratch goes, its spare is free again."""
        self.hung -= 1
        ctx.close()
        if not done.cancelled() and done.exception() is not None:
            log.warning("a timed-out handler failed after its answer", exc_info=done.exception())

    def _run_inline(
        self, fn: HandlerFn, job: Job, ctx: LambdaContext, deadline: float, record: Placement | None
    ) -> Any:
        """Run a sync handler on the loop's thread, interrupted by SIGALRM at its deadline
        (and, for a `record`, judged by what the call cost).

        Meanwhile the loop is not "running" for the handler: it may run a loop of its own
        (`asyncio.run`, or `get_event_loop().run_until_complete`: see `worker.syncloop`),
        and `context.client` gives it boto3 clients, as on a thread.
        """
        before = counts(record.precise) if record is not None else None
        self._on_loop_deadline = deadline
        if not 0 < self._alarm_at <= deadline:
            # No timer, or one that fires after this deadline: arm one for this call.
            self._arm(deadline)
        # The alarm may come at any call from here on: whatever it interrupts, the finally
        # block puts the loop back, and its first store makes a late alarm harmless (a
        # store is no point where Python runs signal handlers).
        self._on_loop = True
        try:
            _set_running_loop(None)
            return fn(job.event, ctx)
        finally:
            self._on_loop = False
            loop = self._loop
            _set_running_loop(loop)
            policy = self._policy
            if policy is not None and policy.current() is not loop:
                # `asyncio.run()` in the handler cleared this thread's loop when it ended.
                policy.set_event_loop(loop)
            if before is not None and record is not None and self.placements is not None:
                self.placements.judge(record, since(before))

    def _arm(self, deadline: float) -> None:
        self._alarm_at = deadline
        signal.setitimer(signal.ITIMER_REAL, max(deadline - time.time(), 0.001))

    def _expire(self, signum: int, frame: object) -> None:
        """SIGALRM: the timer armed for some call's deadline fired. The sync handler on the
        loop now, if any, is stopped when its own deadline has passed; with time left (the
        timer was armed by an earlier call) the timer is armed again for the rest. With no
        handler on the loop the alarm is ignored and the next call arms a timer."""
        self._alarm_at = 0.0
        if self._on_loop:
            if time.time() < self._on_loop_deadline:
                self._arm(self._on_loop_deadline)
                return
            raise _Deadline

    def _answer(
        self,
        job: Job,
        slot: Slot,
        ctx: LambdaContext | None,
        result: Any,
        error: LambdaError | None,
        clock: float,
    ) -> None:
        """Answer the job and count the invocation. With its context, the invocation ends
        here; without (a sync handler still running), its slot stays busy."""
        if ctx is not None:
            # Scratch goes first: once a caller has its answer, the invocation's files are
            # gone.
            ctx.close()
        try:
            error_type = job.reply(result, error)
        except Exception:  # a source's bug must not take the slot down
            log.exception("reply failed")
            error_type = "Runtime.ReplyError"
        seconds = time.perf_counter() - clock
        slot.stats.record(seconds, error_type)
        finished = self.finished = self.finished + 1
        if seconds >= OBSERVE_ALL_FROM or not finished % OBSERVE_EVERY or job.size > self._large:
            # A large payload is always seen too: it is what makes a fast route a marathon.
            self.lanes.observe(job, seconds)
        if finished == self._limit and self._on_limit is not None:
            self._on_limit()
        if self._check is not None and finished % self._check_every == 0:
            self._check()
        if ctx is not None:
            slot.lane.in_flight -= 1
