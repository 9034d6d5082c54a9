"""The runtime's own utilisation (busy slots ÷ slots, queue depth) as periodic EMF lines.

An ECS service scaled on CPU misreads an I/O-bound handler: its slots can all be waiting on
a database while the CPU idles, and requests queue, then meet 429s. The slots themselves
say how full a task is. Each worker process samples its lanes on every tick and, once per
period (`WORKER_EMF_INTERVAL`), writes the means of its samples as EMF lines on stdout,
which the awslogs driver ships to CloudWatch (and Lambda's log stream, in Lambda mode):

    SlotUtilization  unit None, 0 to 1   busy slots ÷ slots
    QueueDepth       unit Count          invocations waiting for a slot
    Requests         unit Count          invocations finished or refused in the period
    Throttles        unit Count          of those, refused because a lane was full (429)

the first two twice: with the dimension `service` alone (the process's lanes together) and
with `service` and `lane`; the counts with `service` alone, so that an alarm's metric math
(Sum of Throttles ÷ Sum of Requests) is the service's throttle rate. No task or process
dimension: CloudWatch's Average over every process of every task is then the service's
utilisation, one series that `deploy/ecs.yaml`'s target tracking reads (the processes'
slots differ by one at most).

On by default where something reads it: on ECS (`ECS_CONTAINER_METADATA_URI_V4` is set),
every `config.EMF_INTERVAL_ON_ECS` seconds. Elsewhere only when `WORKER_EMF_INTERVAL` is
given: Lambda counts its environments' concurrency itself, and a local `serve` has no log
driver to ship the lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from worker.telemetry.emf import Emf
from worker.telemetry.metrics import Metrics

if TYPE_CHECKING:
    from worker.config import Config
    from worker.lanes import Lane

#: The metric target tracking follows (`deploy/ecs.yaml` names it too; a test checks both).
METRIC = "SlotUtilization"
QUEUE_METRIC = "QueueDepth"
#: The throttle rate's parts (`deploy/ecs.yaml`'s alarm divides one by the other).
REQUESTS_METRIC = "Requests"
THROTTLES_METRIC = "Throttles"


def counts(metrics: Metrics) -> tuple[float, float]:
    """(invocations finished or refused, refused) since the process started."""
    finished = refused = 0.0
    for key, value in metrics.snapshot()["counters"].items():
        name = key.partition("|")[0]
        if name == "worker_invocations_total":
            finished += value
        elif name == "worker_rejections_total":
            refused += value
    return finished + refused, refused


class Utilisation:
    """Samples `lanes` on each `tick()` and writes the period's means through `emf`."""

    def __init__(
        self,
        lanes: Sequence[Lane],
        period: float,
        emf: Emf,
        clock: Callable[[], float] = time.monotonic,
        counted: Callable[[], tuple[float, float]] | None = None,
    ) -> None:
        self.lanes = [lane for lane in lanes if lane.slots]
        self.period = period
        self.emf = emf
        self.clock = clock
        self.counted = counted  # (requests, throttles) so far, read once per period
        self.last = counted() if counted is not None else (0.0, 0.0)
        self._reset()

    def _reset(self) -> None:
        self.since = self.clock()
        self.samples = 0
        self.busy = [0] * len(self.lanes)  # in-flight invocations, summed over the samples
        self.waiting = [0] * len(self.lanes)

    def tick(self) -> None:
        """Sample now; write the period's lines once it has passed."""
        self.sample()
        if self.clock() - self.since >= self.period:
            self.write()

    def sample(self) -> None:
        for i, lane in enumerate(self.lanes):
            # A lane's in-flight count is its own slots' (a lent slot counts for its lane).
            self.busy[i] += lane.in_flight
            self.waiting[i] += lane.depth
        self.samples += 1

    def write(self) -> None:
        """The means since the last write, as EMF lines; nothing when nothing was sampled."""
        n = self.samples
        if n and self.lanes:
            put = self.emf.put
            for lane, busy, waiting in zip(self.lanes, self.busy, self.waiting, strict=True):
                labels = (("lane", lane.name),)
                put(METRIC, "None", labels, round(busy / n / lane.slots, 4))
                put(QUEUE_METRIC, "Count", labels, round(waiting / n, 3))
            slots = sum(lane.slots for lane in self.lanes)
            put(METRIC, "None", (), round(sum(self.busy) / n / slots, 4))
            put(QUEUE_METRIC, "Count", (), round(sum(self.waiting) / n, 3))
            if self.counted is not None:
                now = self.counted()
                put(REQUESTS_METRIC, "Count", (), now[0] - self.last[0])
                put(THROTTLES_METRIC, "Count", (), now[1] - self.last[1])
                self.last = now
            self.emf.flush()
        self._reset()

    def close(self) -> None:
        """Write the last, partial period (a stopping task's final figures): its samples,
        or one taken now when the process stops before its first tick."""
        if not self.samples:
            self.sample()
        self.write()


def start(config: Config, lanes: Sequence[Lane], metrics: Metrics) -> Utilisation | None:
    """The process's utilisation reporter, or None when `WORKER_EMF_INTERVAL` is 0."""
    if config.emf_interval <= 0:
        return None
    emf = Emf.from_env(config.function_name)
    return Utilisation(lanes, config.emf_interval, emf, counted=lambda: counts(metrics))
