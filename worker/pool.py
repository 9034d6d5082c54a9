"""Slots that run handlers: asyncio tasks on the process's loop, sync handlers on threads."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from worker.config import Config
from worker.context import LambdaContext
from worker.errors import LambdaError, from_exception, timed_out
from worker.handler import Handler
from worker.jobs import Job
from worker.lanes import Lane, Lanes
from worker.telemetry.logs import request_id
from worker.telemetry.metrics import Metrics

log = logging.getLogger("worker.pool")


def shutdown_error() -> LambdaError:
    return LambdaError("Runtime.ExitError", "The worker shut down before the invocation finished")


def _reader(lane: Lane, attr: str) -> Callable[[], float]:
    return lambda: float(getattr(lane, attr))


class Pool:
    """Runs jobs from the lanes on slots.

    Each lane gets `lane.slots` slot tasks. Async handlers run in the slot; sync ones on a
    thread pool with one thread per slot, so a slot never waits for a thread. A sync
    handler past its deadline is answered `Sandbox.Timedout` at once, but Python cannot
    stop a thread, so its slot stays busy until the thread returns.
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
        self.worker_tmp = worker_tmp
        self.metrics = metrics
        self.threads = ThreadPoolExecutor(
            max_workers=sum(lane.slots for lane in lanes.all), thread_name_prefix="handler"
        )
        self._slots: list[asyncio.Task[None]] = []
        self._running: set[Job] = set()
        arn_region = config.region
        self._arn = f"arn:aws:lambda:{arn_region}:000000000000:function:{config.function_name}"
        self._log_group = f"/aws/lambda/{config.function_name}"
        self._memory = str(config.memory_mb or 0)
        for lane in lanes.all:
            labels = (("lane", lane.name),)
            metrics.gauge("worker_in_flight", labels, _reader(lane, "in_flight"))
            metrics.gauge("worker_queue_depth", labels, _reader(lane, "depth"))

    def start(self) -> None:
        for lane in self.lanes.all:
            for _ in range(lane.slots):
                self._slots.append(asyncio.ensure_future(self._slot(lane)))

    def submit(self, job: Job) -> bool:
        """Admit a job into its lane, or False when the lane is full (answer 429)."""
        lane = self.lanes.choose(job)
        if lane.offer(job):
            return True
        self.metrics.inc("worker_rejections_total", (("lane", lane.name),))
        return False

    @property
    def busy(self) -> int:
        return sum(lane.in_flight + lane.depth for lane in self.lanes.all)

    async def drain(self, grace: float) -> bool:
        """Stop admitting; let queued and running jobs finish within `grace` seconds.

        Whatever is still unanswered then gets a shutdown error: nothing accepted goes
        unanswered. True when everything finished in time.
        """
        for lane in self.lanes.all:
            lane.close()
        if not self._slots:
            return True
        _, pending = await asyncio.wait(self._slots, timeout=grace)
        for lane in self.lanes.all:
            for job in lane.drop_queued():
                job.reply(None, shutdown_error())
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        self.threads.shutdown(wait=False, cancel_futures=True)
        return not pending

    async def _slot(self, lane: Lane) -> None:
        while True:
            job = await lane.take()
            if job is None:
                return
            await self._invoke(job, lane)

    def _context(self, job: Job, deadline: float, lane: Lane) -> LambdaContext:
        cfg = self.config
        return LambdaContext(
            request_id=job.request_id,
            deadline=deadline,
            function_name=cfg.function_name,
            function_version=cfg.function_version,
            invoked_function_arn=job.invoked_arn or self._arn,
            memory_limit_in_mb=self._memory,
            log_group_name=self._log_group,
            log_stream_name=f"runtime-worker/{cfg.function_version}",
            lane=lane.name,
            worker_tmp=self.worker_tmp,
            identity=job.identity,
            client_context=job.client_context,
            trace_id=job.trace_id,
            tenant_id=job.tenant_id,
        )

    async def _invoke(self, job: Job, lane: Lane) -> None:
        started = time.time()
        deadline = job.deadline or started + self.config.timeout
        ctx = self._context(job, deadline, lane)
        token = request_id.set(job.request_id)
        lane.in_flight += 1
        clock = time.perf_counter()
        result: Any = None
        error: LambdaError | None = None
        stuck: Future[Any] | None = None
        try:
            if self.handler.is_async:
                result, error = await self._run_async(job, ctx, deadline - started)
            else:
                result, error, stuck = await self._run_sync(job, ctx, deadline - started)
        except asyncio.CancelledError:
            # Drain ran out of time: answer, then let the cancellation end the slot.
            self._finish(job, lane, ctx, None, shutdown_error(), clock)
            request_id.reset(token)
            raise
        request_id.reset(token)
        if stuck is not None:
            # Answer the caller now; the slot stays busy until the thread returns.
            self._reply(job, lane, None, error, clock)
            await asyncio.wrap_future(stuck)
            self._done(lane, ctx)
        else:
            self._finish(job, lane, ctx, result, error, clock)

    async def _run_async(
        self, job: Job, ctx: LambdaContext, budget: float
    ) -> tuple[Any, LambdaError | None]:
        timer = asyncio.timeout(budget)
        try:
            async with timer:
                return await self.handler.fn(job.event, ctx), None
        except TimeoutError as exc:
            if not timer.expired():
                return None, from_exception(exc)
            return None, timed_out(budget)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # SystemExit from a handler must not kill the slot
            log.exception("handler failed")
            return None, from_exception(exc)

    async def _run_sync(
        self, job: Job, ctx: LambdaContext, budget: float
    ) -> tuple[Any, LambdaError | None, Future[Any] | None]:
        # The thread runs in a copy of this slot's context, so it logs this request id.
        run = contextvars.copy_context().run
        future = self.threads.submit(run, self.handler.fn, job.event, ctx)
        timer = asyncio.timeout(budget)
        try:
            async with timer:
                return await asyncio.wrap_future(future), None, None
        except TimeoutError as exc:
            if not timer.expired():
                return None, from_exception(exc), None
            return None, timed_out(budget), (None if future.done() else future)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            log.error("handler failed", exc_info=exc)
            return None, from_exception(exc), None

    def _reply(
        self, job: Job, lane: Lane, result: Any, error: LambdaError | None, clock: float
    ) -> None:
        try:
            error_type = job.reply(result, error)
        except Exception:  # a source's bug must not take the slot down
            log.exception("reply failed")
            error_type = "Runtime.ReplyError"
        labels = (("lane", lane.name),)
        self.metrics.inc("worker_invocations_total", labels)
        if error_type is not None:
            self.metrics.inc("worker_errors_total", (*labels, ("type", error_type)))
        self.metrics.observe(
            "worker_invocation_duration_seconds", labels, time.perf_counter() - clock
        )

    def _done(self, lane: Lane, ctx: LambdaContext) -> None:
        ctx.close()
        lane.in_flight -= 1

    def _finish(
        self,
        job: Job,
        lane: Lane,
        ctx: LambdaContext,
        result: Any,
        error: LambdaError | None,
        clock: float,
    ) -> None:
        # Scratch goes first: once a caller has its answer, the invocation's files are gone.
        ctx.close()
        self._reply(job, lane, result, error, clock)
        lane.in_flight -= 1
