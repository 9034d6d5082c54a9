"""CloudWatch embedded metric format (EMF) lines, in Powertools' shape: Lambda mode's metrics,
and the slot utilisation any mode reports (`worker.telemetry.utilisation`).

In Lambda there is no one to scrape `/_worker/metrics`: metrics go to CloudWatch through
the function's log stream. Each flush writes one JSON line per set of dimensions:

    {"_aws": {"Timestamp": <ms>, "CloudWatchMetrics": [{"Namespace": "…",
      "Dimensions": [["service", "lane"]], "Metrics": [{"Name": "Duration",
      "Unit": "Milliseconds"}, …]}]}, "service": "…", "lane": "sprinter",
     "Duration": [12.5, 3.1, …], "Invocations": [1, 1, …]}

with at most 100 values per metric per line (CloudWatch's limit: more values are split
over more lines). The worker flushes after every batch of invocations its slots have
finished (on its tick), when a metric reaches 100 values, and when it stops. A lane's
invocations come in bulk, when its buffered durations are folded (at the tick, before the
flush), rather than as two observations per invocation.
Namespace and service follow Powertools: POWERTOOLS_METRICS_NAMESPACE and
POWERTOOLS_SERVICE_NAME (default: the function's name).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable

import orjson

from worker.telemetry.metrics import Labels

#: CloudWatch takes at most this many values of one metric in one EMF event.
MAX_VALUES = 100
#: The namespace when POWERTOOLS_METRICS_NAMESPACE is unset (the templates' default too).
DEFAULT_NAMESPACE = "runtime-worker"

#: Registry metric -> (EMF name, unit, scale). Counters become one value per event.
NAMES: dict[str, tuple[str, str, float]] = {
    "worker_invocation_duration_seconds": ("Duration", "Milliseconds", 1000.0),
    "worker_invocations_total": ("Invocations", "Count", 1.0),
    "worker_errors_total": ("Errors", "Count", 1.0),
    "worker_rejections_total": ("Rejections", "Count", 1.0),
    "worker_warmup_total": ("WarmupPings", "Count", 1.0),
    "worker_warmup_fanout_total": ("WarmupFanout", "Count", 1.0),
    "worker_batch_size": ("BatchSize", "Count", 1.0),
    "worker_batch_wait_seconds": ("BatchWait", "Milliseconds", 1000.0),
    "worker_inference_rejections_total": ("InferenceRejections", "Count", 1.0),
    "worker_inference_expired_total": ("InferenceExpired", "Count", 1.0),
}

Key = tuple[Labels, str, str]  # dimensions, EMF name, unit


class Emf:
    """Collects metric values and writes them as EMF lines."""

    def __init__(
        self,
        namespace: str,
        service: str,
        write: Callable[[str], object] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.namespace = namespace
        self.service = service
        self.write = write or _stdout
        self.clock = clock
        self.values: dict[Key, list[float]] = {}
        self.lock = threading.Lock()  # sync handlers' threads may record too

    @classmethod
    def from_env(cls, service: str) -> Emf:
        """Powertools' namespace and service (POWERTOOLS_METRICS_NAMESPACE,
        POWERTOOLS_SERVICE_NAME), `service` when the latter is unset."""
        return cls(
            os.environ.get("POWERTOOLS_METRICS_NAMESPACE", DEFAULT_NAMESPACE),
            os.environ.get("POWERTOOLS_SERVICE_NAME", service),
        )

    def record(self, name: str, labels: Labels, value: float) -> None:
        """A registry observation (the `Metrics` listener): mapped, then kept."""
        mapped = NAMES.get(name)
        if mapped is None:
            return
        emf_name, unit, scale = mapped
        self.put(emf_name, unit, labels, round(value * scale, 3))

    def put(self, name: str, unit: str, labels: Labels, value: float) -> None:
        """One value of an EMF metric as it is named in CloudWatch, kept for the next
        `flush` (sooner when the metric reaches MAX_VALUES)."""
        with self.lock:
            values = self.values.setdefault((labels, name, unit), [])
            values.append(value)
            full = len(values) >= MAX_VALUES
        if full:
            self.flush()

    def record_invocations(self, labels: Labels, durations: list[float]) -> None:
        """A lane's invocations in bulk (the `Metrics` bulk listener): one Duration value
        (milliseconds, to the microsecond) and one Invocations value each, as Powertools
        would have added them one by one. Written at the next `flush`."""
        duration, d_unit, scale = NAMES["worker_invocation_duration_seconds"]
        count, c_unit, _ = NAMES["worker_invocations_total"]
        # round(v * scale, 3) for every value, at half round()'s cost.
        scaled = [int(seconds * scale * 1000 + 0.5) / 1000 for seconds in durations]
        with self.lock:
            values = self.values
            values.setdefault((labels, duration, d_unit), []).extend(scaled)
            values.setdefault((labels, count, c_unit), []).extend([1.0] * len(scaled))

    def flush(self) -> None:
        with self.lock:
            taken, self.values = self.values, {}
        by_dims: dict[Labels, list[tuple[str, str, list[float]]]] = {}
        for (labels, name, unit), values in taken.items():
            by_dims.setdefault(labels, []).append((name, unit, values))
        now = int(self.clock() * 1000)
        for labels, metrics in by_dims.items():
            longest = max(len(values) for _, _, values in metrics)
            for start in range(0, longest, MAX_VALUES):
                part = [(n, u, v[start : start + MAX_VALUES]) for n, u, v in metrics]
                part = [(n, u, v) for n, u, v in part if v]
                self.write(self._line(now, labels, part))

    def _line(self, now: int, labels: Labels, metrics: list[tuple[str, str, list[float]]]) -> str:
        dims = ["service", *(k for k, _ in labels)]
        event: dict[str, object] = {
            "_aws": {
                "Timestamp": now,
                "CloudWatchMetrics": [
                    {
                        "Namespace": self.namespace,
                        "Dimensions": [dims],
                        "Metrics": [{"Name": n, "Unit": u} for n, u, _ in metrics],
                    }
                ],
            },
            "service": self.service,
        }
        event.update(dict(labels))
        for name, _, values in metrics:
            event[name] = values
        return orjson.dumps(event).decode() + "\n"


def _stdout(line: str) -> None:
    sys.stdout.write(line)
    sys.stdout.flush()
