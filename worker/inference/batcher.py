"""The batcher: one model's queue, closing batches by size or wait, K batches in flight.

Requests from every slot of a worker process (async handlers on the loop, sync ones from
their threads) join one queue on the process's loop. A batch closes when it reaches
`max_batch_size` (items, or `size_fn` units such as tokens) or when its oldest request
has waited long enough; it then runs on one of the model's K launch threads while the
next one fills. In a worker process K is 1 (the processes are the concurrency); the
model host runs K batches of one model at once over its one copy (`modelhost.py`), each
launch thread with its share of the cores (or, on a GPU, its own CUDA stream).

Each launch thread does its batch's whole pipeline: the batch function (the model's own
tokenising, the pass, turning outputs into values) and then `encode`, which turns each
output into what is sent back (the model host's wire bytes). So one batch's pre- and
post-processing overlaps another's pass, and the loop only moves finished bytes.

With K > 1, batches are sized to share the work out: a batch takes at most its share
of everything outstanding (waiting and in flight) over the K threads, so a queue of 6
with two idle threads goes as two batches of 3, not one of 6 beside an idle thread. A
launch thread that frees while others run takes its share at once when it is waiting;
when less is waiting (the requests its last batch answered are on their way back), it
waits for them as an idle model waits for company (below), never longer.

How long "long enough" is adapts to load. Batch time is fitted online as `a·n + b` (least
squares over the last 64 batches). While the model is busy nothing needs deciding: the
queue fills during the batch in flight and goes as the next batch the moment it ends.
When the model is idle (nothing in flight), the first request waits only if another is
likely to come soon enough to share the fixed cost: with an arrival rate λ, it waits
`min(max_wait, b)` when `λ·b ≥ 1`, otherwise not at all, so light load pays nothing for
batching.

Bounds: a full queue (`max_queue`), or a queue whose predicted finish (from the cost
model) misses the request's deadline, fails the request at once with
`TooManyRequestsException` (429 in `serve`). A request whose invocation's deadline has
passed by the time its batch closes never reaches the model. An exception from the batch
function fails every request of that batch with it (and no other batch's); an
out-of-memory error splits that batch in halves and retries them on its thread.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import math
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from worker.errors import LambdaError, timed_out, too_many_requests
from worker.inference.registry import BatchFn, ModelSpec, run_batch
from worker.telemetry.metrics import Metrics

log = logging.getLogger("worker.inference")

#: Batches remembered by the cost model.
COST_WINDOW = 64
#: Weight of the newest inter-arrival gap in the arrival-rate estimate.
RATE_ALPHA = 0.2

#: One output -> what its caller gets, run on the launch thread after the batch.
Encoder = Callable[[Any], Any]


class CostModel:
    """Batch time as `a·n + b`, fitted by least squares over recent batches."""

    def __init__(self, window: int = COST_WINDOW) -> None:
        self.samples: collections.deque[tuple[float, float]] = collections.deque(maxlen=window)
        self.a = 0.0  # seconds per item
        self.b = 0.0  # seconds per batch

    @property
    def fitted(self) -> bool:
        return bool(self.samples)

    def add(self, n: float, seconds: float) -> None:
        self.samples.append((n, seconds))
        count = len(self.samples)
        mean_n = sum(x for x, _ in self.samples) / count
        mean_t = sum(t for _, t in self.samples) / count
        var = sum((x - mean_n) ** 2 for x, _ in self.samples)
        if var > 0:
            a = sum((x - mean_n) * (t - mean_t) for x, t in self.samples) / var
            b = mean_t - a * mean_n
        else:  # one batch size seen so far: all of it counts as per-item cost
            a, b = mean_t / max(mean_n, 1.0), 0.0
        if a < 0:  # noise: a flat cost
            a, b = 0.0, mean_t
        elif b < 0:
            a, b = mean_t / max(mean_n, 1.0), 0.0
        self.a, self.b = a, b

    def predict(self, n: float) -> float:
        return self.a * n + self.b


class _Request:
    __slots__ = ("deadline", "enqueued", "future", "item", "size")

    def __init__(
        self,
        item: Any,
        size: int,
        future: asyncio.Future[Any],
        deadline: float | None,
        enqueued: float,
    ) -> None:
        self.item = item
        self.size = size
        self.future = future
        self.deadline = deadline  # epoch seconds, or None
        self.enqueued = enqueued  # loop time


def is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError, or torch's (CUDA) OutOfMemoryError, without importing torch."""
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"


class Batcher:
    """Batches one model's requests on this process's loop (see the module's text).

    `concurrency`: batches in flight at once (K), each on a launch thread of its own.
    `threads`: torch's intra-op threads per launch thread (0: leave torch's setting).
    `encode`: applied to each output on the launch thread (None: outputs as they are).
    """

    def __init__(
        self,
        spec: ModelSpec,
        metrics: Metrics | None = None,
        *,
        concurrency: int = 1,
        threads: int = 0,
        encode: Encoder | None = None,
    ) -> None:
        if spec.fn is None:
            raise ValueError(f"model {spec.name!r} is not loaded")
        self.name = spec.name
        self.fn: BatchFn = spec.fn
        self.max_batch = spec.max_batch_size
        self.max_wait = spec.max_wait_ms / 1000.0
        self.bound = spec.queue_bound
        self.size_fn = spec.size_fn
        self.device = spec.resolved_device
        self.concurrency = max(1, concurrency)
        self.threads = threads
        self.encode = encode
        self.metrics = metrics or Metrics()
        self.labels = (("model", spec.name),)
        self.cost = CostModel()
        self.queue: collections.deque[_Request] = collections.deque()
        self.in_flight = 0
        self.in_flight_items = 0  # size units of the batches in flight
        self.peak = 0  # the most batches in flight at once so far
        self.ends: dict[int, float] = {}  # predicted end of each batch in flight (loop time)
        self.flights: set[asyncio.Future[list[Any]]] = set()
        self.batch_ids = itertools.count()
        self.gap = math.inf  # EWMA of the time between arrivals
        self.last_arrival = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.executor = ThreadPoolExecutor(
            self.concurrency,
            thread_name_prefix=f"model-{spec.name}",
            initializer=self._launch_thread,
        )
        self.closed = False
        self.metrics.gauge("worker_inference_queue_depth", self.labels, lambda: len(self.queue))
        self.metrics.gauge(
            "worker_inference_batches_in_flight", self.labels, lambda: self.in_flight
        )
        self.metrics.gauge(
            "worker_inference_batches_in_flight_peak", self.labels, lambda: self.peak
        )

    @property
    def running(self) -> bool:
        return self.in_flight > 0

    def _launch_thread(self) -> None:
        """Set up a new launch thread: its share of the cores, or its own CUDA stream."""
        torch = sys.modules.get("torch")
        if torch is None:
            return
        try:
            if self.threads:
                # torch sets a thread's OpenMP team size from its global setting on the
                # thread's first parallel op: run that first, so it cannot undo ours.
                torch.get_num_threads()
                torch.set_num_threads(self.threads)
            if self.device.startswith("cuda") and self.concurrency > 1:
                # The current stream is per thread: each launch thread's kernels and
                # copies queue on a stream of their own, so the K batches overlap.
                torch.cuda.set_stream(torch.cuda.Stream(device=self.device))
        except Exception:  # a thread that cannot be tuned still runs batches
            log.exception(
                "could not set up a launch thread", extra={"fields": {"model": self.name}}
            )

    # -- admission ---------------------------------------------------------------------

    async def infer(self, item: Any, deadline: float | None = None) -> Any:
        """The model's output for `item`; `deadline` is the invocation's (epoch seconds)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._arrived(now)
        if self.closed:
            raise LambdaError("Runtime.ExitError", f"Model '{self.name}' is shut down")
        if len(self.queue) >= self.bound:
            self._reject("queue")
            raise too_many_requests(
                f"Model '{self.name}' has {len(self.queue)} requests waiting "
                f"(max_queue {self.bound})"
            )
        if deadline is not None and self.cost.fitted:
            finish = self.predict_finish(now, len(self.queue) + 1)
            if finish - now > deadline - time.time():
                self._reject("deadline")
                raise too_many_requests(
                    f"Model '{self.name}' cannot answer before the invocation's deadline "
                    f"({len(self.queue)} requests ahead, about {finish - now:.3f}s)"
                )
        size = max(1, int(self.size_fn(item))) if self.size_fn is not None else 1
        future: asyncio.Future[Any] = loop.create_future()
        self.queue.append(_Request(item, size, future, deadline, now))
        self._schedule(loop)
        return await future

    def predict_finish(self, now: float, position: int) -> float:
        """When the request at `position` in the queue would be answered (loop time)."""
        busy = 0.0
        if self.in_flight >= self.concurrency and self.ends:  # until a launch thread frees
            busy = max(0.0, min(self.ends.values()) - now)
        full, rest = divmod(position, self.max_batch)
        work = full * self.cost.predict(self.max_batch) + (self.cost.predict(rest) if rest else 0)
        return now + busy + work / self.concurrency

    def wait(self) -> float:
        """How long an idle model lets the oldest request wait for company."""
        if self.max_wait <= 0 or not self.cost.fitted:
            return 0.0
        fixed = self.cost.b
        if fixed <= 0 or fixed / self.gap < 1.0:  # fewer than one more arrival expected
            return 0.0
        return min(self.max_wait, fixed)

    def _arrived(self, now: float) -> None:
        if self.last_arrival:
            gap = now - self.last_arrival
            if not math.isinf(self.gap):
                gap = (1 - RATE_ALPHA) * self.gap + RATE_ALPHA * gap
            self.gap = gap
        self.last_arrival = now

    def _reject(self, reason: str) -> None:
        self.metrics.inc("worker_inference_rejections_total", (*self.labels, ("reason", reason)))

    # -- batching ----------------------------------------------------------------------

    def share(self, pending: int) -> int:
        """The most one batch takes: everything outstanding (`pending` waiting, plus the
        batches in flight) shared out over the K launch threads, within max_batch_size."""
        outstanding = pending + self.in_flight_items
        return min(self.max_batch, max(1, math.ceil(outstanding / self.concurrency)))

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        while self.queue and self.in_flight < self.concurrency:
            pending = sum(r.size for r in self.queue)
            # Idle, a full batch goes at once; with batches in flight, a free launch
            # thread's share does. Less waits for company, up to `wait()`.
            enough = self.max_batch if self.in_flight == 0 else self.share(pending)
            if pending < enough:
                due = self.queue[0].enqueued + self.wait()
                if due > loop.time():
                    if self.timer is None:
                        self.timer = loop.call_at(due, self._on_timer, loop)
                    return
            if not self._dispatch(loop, self.share(pending)):
                return

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self.timer = None
        if self.queue and self.in_flight < self.concurrency:
            pending = sum(r.size for r in self.queue)
            if self._dispatch(loop, self.share(pending)):
                self._schedule(loop)  # what the free launch threads' shares left

    def _dispatch(self, loop: asyncio.AbstractEventLoop, limit: int) -> bool:
        """Launch a batch of up to `limit` on a free launch thread; False when no request
        was left to take."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        queue = self.queue
        batch: list[_Request] = []
        total = 0
        wall = time.time()
        while queue:
            request = queue[0]
            if request.future.done():  # its caller is gone (the invocation timed out)
                queue.popleft()
                continue
            if request.deadline is not None and request.deadline <= wall:
                queue.popleft()
                self.metrics.inc("worker_inference_expired_total", self.labels)
                request.future.set_exception(timed_out(0.0))
                continue
            if batch and total + request.size > limit:
                break
            queue.popleft()
            batch.append(request)
            total += request.size
        if not batch:
            return False
        started = loop.time()
        key = next(self.batch_ids)
        self.in_flight += 1
        self.in_flight_items += total
        self.peak = max(self.peak, self.in_flight)
        if self.in_flight > 1:
            self.metrics.inc("worker_inference_overlapped_batches_total", self.labels)
        self.ends[key] = started + self.cost.predict(total)
        self.metrics.observe("worker_batch_size", self.labels, total)
        self.metrics.observe("worker_batch_wait_seconds", self.labels, started - batch[0].enqueued)
        done = loop.run_in_executor(self.executor, self._run, [r.item for r in batch])
        self.flights.add(done)
        done.add_done_callback(lambda f: self._finished(loop, key, batch, total, started, f))
        return True

    def _run(self, inputs: list[Any]) -> list[Any]:
        """On a launch thread: the batch, then each output encoded for its caller."""
        outputs = self._call(inputs)
        if self.encode is not None:
            outputs = [self.encode(output) for output in outputs]
        return outputs

    def _call(self, inputs: list[Any]) -> list[Any]:
        """The batch function, halving the batch on out-of-memory."""
        try:
            outputs = list(run_batch(self.fn, inputs))
        except BaseException as exc:
            if not is_out_of_memory(exc) or len(inputs) < 2:
                raise
            half = len(inputs) // 2
            log.warning(
                "out of memory on a batch; retrying it in halves",
                extra={"fields": {"model": self.name, "batch": len(inputs)}},
            )
            return self._call(inputs[:half]) + self._call(inputs[half:])
        if len(outputs) != len(inputs):
            raise ValueError(
                f"Model '{self.name}' returned {len(outputs)} outputs for {len(inputs)} inputs"
            )
        return outputs

    def _finished(
        self,
        loop: asyncio.AbstractEventLoop,
        key: int,
        batch: list[_Request],
        total: int,
        started: float,
        done: asyncio.Future[list[Any]],
    ) -> None:
        seconds = loop.time() - started
        self.in_flight -= 1
        self.in_flight_items -= total
        self.ends.pop(key, None)
        self.flights.discard(done)
        self.metrics.observe("worker_batch_seconds", self.labels, seconds)
        error = done.exception() if not done.cancelled() else asyncio.CancelledError()
        if error is None:
            self.cost.add(total, seconds)
            for request, output in zip(batch, done.result(), strict=True):
                if not request.future.done():
                    request.future.set_result(output)
        else:
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(error)
        self._schedule(loop)

    async def drain(self) -> None:
        """Wait until every batch in flight has ended and its requests are answered."""
        while self.flights:
            await asyncio.wait(list(self.flights))
            await asyncio.sleep(0)  # their done callbacks (`_finished`) run first

    def close(self) -> None:
        """Refuse new requests; fail the waiting ones; let the batches in flight end."""
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        while self.queue:
            request = self.queue.popleft()
            if not request.future.done():
                request.future.set_exception(
                    LambdaError("Runtime.ExitError", f"Model '{self.name}' shut down")
                )
        self.executor.shutdown(wait=False)
