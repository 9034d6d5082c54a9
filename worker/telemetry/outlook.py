"""Mission Control's look ahead: saturation forecast, utilisation, throttle rate and cost per hour.

Each worker process keeps the samples it takes of its own registry once a second (when it
writes its metrics snapshot), for the last `WORKER_OUTLOOK_WINDOW` seconds (`History`), and
leaves their summary in the snapshot (`History.summary`): per lane its busy slots, slots,
queue depth, queue bound and the least-squares slope of the depth; over the window its
invocations, their seconds, its CPU seconds, arrivals and 429s. The process that answers
`/_worker/stats` adds every process's summary up (`combine`):

- utilisation per lane: busy slots ÷ slots;
- the saturation forecast: per lane and process, the time until the queue reaches its
  bound at the fitted slope (0 once it has; none while the trend is flat or falling),
  a warning when that comes within the window the trend was fitted over;
- the throttle rate: 429s ÷ requests (arrivals) over the window, against the 1 % line;
- cost per hour on each platform: `worker.cost.model` fed the measured rate, mean
  duration, CPU per invocation and memory (its monthly figure over the month's hours).

Everything but `History.sample`'s clock and `/proc` readings is a pure function.
"""

from __future__ import annotations

import functools
import os
import platform
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.cost.model import HOURS_PER_MONTH, Profile, estimate, load_prices

#: The throttle rate CloudWatch alarms and people watch: 1 % of requests refused.
THROTTLE_LINE = 0.01
#: Fewest samples a slope is fitted to: two points are a difference, not a trend.
MIN_POINTS = 3
#: Lambda's smallest memory size: a measured RSS below it is billed as it.
MIN_MEMORY_MB = 128


def slope(points: Sequence[tuple[float, float]]) -> float | None:
    """The least-squares slope of (time, value) points, per second; None with fewer than
    `MIN_POINTS` points or no spread in time."""
    n = len(points)
    if n < MIN_POINTS:
        return None
    mean_t = sum(t for t, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread <= 0:
        return None
    return sum((t - mean_t) * (y - mean_y) for t, y in points) / spread


def seconds_to_bound(depth: float, bound: float, trend: float | None) -> float | None:
    """Seconds until a queue `depth` deep reaches `bound` at `trend` (items a second): 0
    when it already has, None when the trend is unknown, flat or falling."""
    if depth >= bound:
        return 0.0
    if trend is None or trend <= 0:
        return None
    return (bound - depth) / trend


def utilisation(busy: float, slots: float) -> float:
    """Busy slots ÷ slots, in [0, 1] (0 with no slots)."""
    if slots <= 0:
        return 0.0
    return min(1.0, max(0.0, busy / slots))


def throttle_rate(rejections: float, requests: float) -> float | None:
    """429s ÷ requests; None with no request (a rate of nothing is no rate)."""
    if requests <= 0:
        return None
    return max(0.0, rejections) / requests


def cost_per_hour(profile: Profile, prices: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each platform's cost per hour at the profile's rate: `worker cost`'s monthly
    estimate over the month's hours (the same model, the same sizing)."""
    return [
        {
            "platform": e.platform,
            "hourly": e.monthly / HOURS_PER_MONTH,
            "units": e.units,
            "unit": e.unit,
            "utilisation": e.utilisation,
        }
        for e in estimate(profile, dict(prices))
    ]


def _total(values: Mapping[str, float], name: str, lane: str | None = None) -> float:
    """One family's total in a snapshot's counters or gauges (one lane's, when given)."""
    out = 0.0
    for key, value in values.items():
        family, _, labels = key.partition("|")
        if family == name and (lane is None or f"lane={lane}" in labels.split(",")):
            out += value
    return out


@dataclass(frozen=True)
class Sample:
    """One reading of a process's registry."""

    time: float
    depth: dict[str, float]  # queue depth per lane
    busy: dict[str, float]  # busy slots per lane
    invocations: float  # totals since the process started
    duration_s: float
    rejections: float
    expired: float
    cpu_s: float
    rss_mb: float


def read(
    snap: Mapping[str, Any], lanes: Iterable[str], now: float, cpu_s: float, rss_mb: float
) -> Sample:
    """A sample from a registry snapshot (`Metrics.snapshot()`)."""
    counters, gauges = snap.get("counters", {}), snap.get("gauges", {})
    hists = snap.get("hists", {})
    duration = sum(
        h[-2]
        for k, h in hists.items()
        if k.partition("|")[0] == "worker_invocation_duration_seconds"
    )
    names = list(lanes)
    return Sample(
        time=now,
        depth={lane: _total(gauges, "worker_queue_depth", lane) for lane in names},
        busy={lane: _total(gauges, "worker_in_flight", lane) for lane in names},
        invocations=_total(counters, "worker_invocations_total"),
        duration_s=duration,
        rejections=_total(counters, "worker_rejections_total"),
        expired=_total(counters, "worker_queue_expired_total"),
        cpu_s=cpu_s,
        rss_mb=rss_mb,
    )


def summarise(samples: Sequence[Sample], lanes: Mapping[str, tuple[int, int]]) -> dict[str, Any]:
    """One process's outlook over its samples (oldest first): `lanes` gives each lane's
    (slots, queue bound)."""
    if not samples:
        return {}
    first, last = samples[0], samples[-1]
    per_lane = {}
    for lane, (slots, bound) in lanes.items():
        trend = slope([(s.time, s.depth.get(lane, 0.0)) for s in samples])
        depth = last.depth.get(lane, 0.0)
        per_lane[lane] = {
            "busy": last.busy.get(lane, 0.0),
            "slots": slots,
            "depth": depth,
            "bound": bound,
            "slope": trend,
            "seconds_to_bound": seconds_to_bound(depth, bound, trend),
        }
    occupied = sum(last.depth.values()) + sum(last.busy.values())
    occupied_before = sum(first.depth.values()) + sum(first.busy.values())
    invocations = last.invocations - first.invocations
    rejections = last.rejections - first.rejections
    expired = last.expired - first.expired
    return {
        "span_s": last.time - first.time,
        "lanes": per_lane,
        "invocations": invocations,
        "duration_s": last.duration_s - first.duration_s,
        "cpu_s": last.cpu_s - first.cpu_s,
        "rejections": rejections,
        # Every request either finished, expired in the queue, still occupies a slot or a
        # queue place, or was refused: their sum is the arrivals over the window.
        "requests": max(0.0, invocations + expired + occupied - occupied_before) + rejections,
        "rss_mb": last.rss_mb,
    }


def combine(
    parts: Iterable[Mapping[str, Any]],
    window: float,
    memory_mb: float = 0,
    arch: str | None = None,
    prices: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The environment's outlook from every process's summary: `memory_mb` is the
    function's configured memory (0: the largest process's measured RSS)."""
    parts = [p for p in parts if p]
    lanes: dict[str, dict[str, Any]] = {}
    saturation: dict[str, Any] | None = None
    for part in parts:
        for name, lane in part["lanes"].items():
            mine = lanes.setdefault(
                name, {"busy": 0.0, "slots": 0, "depth": 0.0, "bound": 0, "seconds_to_bound": None}
            )
            for key in ("busy", "slots", "depth", "bound"):
                mine[key] += lane[key]
            # A 429 comes from the first process whose lane fills: the soonest counts.
            soon = lane["seconds_to_bound"]
            if soon is not None and (
                mine["seconds_to_bound"] is None or soon < mine["seconds_to_bound"]
            ):
                mine["seconds_to_bound"] = soon
    for name, lane in lanes.items():
        lane["utilisation"] = utilisation(lane["busy"], lane["slots"])
        soon = lane["seconds_to_bound"]
        lane["warning"] = soon is not None and soon <= window
        if lane["warning"] and (saturation is None or soon < saturation["seconds"]):
            saturation = {"lane": name, "seconds": soon, "warning": True}
    rejections = sum(p["rejections"] for p in parts)
    requests = sum(p["requests"] for p in parts)
    return {
        "window_s": window,
        "span_s": max((p["span_s"] for p in parts), default=0.0),
        "rps": served_rate(parts),
        "lanes": lanes,
        "saturation": saturation,
        "throttle": {
            "rate": throttle_rate(rejections, requests),
            "rejections": rejections,
            "requests": requests,
            "line": THROTTLE_LINE,
        },
        "cost": _cost(parts, memory_mb, arch or machine_arch(), prices),
    }


def served_rate(parts: Sequence[Mapping[str, Any]]) -> float | None:
    """Invocations finished per second over the window, on the processes' own clocks (a
    page's poll cadence cannot skew it); None before any process has two samples."""
    timed = [p for p in parts if p["span_s"] > 0]
    if not timed:
        return None
    return float(sum(p["invocations"] / p["span_s"] for p in timed))


def measured_profile(
    parts: Sequence[Mapping[str, Any]], memory_mb: float, arch: str
) -> Profile | None:
    """The cost model's profile from the processes' summaries: None until an invocation
    finished in the window."""
    invocations = sum(p["invocations"] for p in parts)
    if invocations <= 0:
        return None
    rps = served_rate(parts)
    if not rps:
        return None
    duration_ms = sum(p["duration_s"] for p in parts) / invocations * 1000
    cpu_ms = sum(p["cpu_s"] for p in parts) / invocations * 1000
    memory = memory_mb or max(MIN_MEMORY_MB, max(p["rss_mb"] for p in parts))
    return Profile(
        rps=rps,
        duration_ms=duration_ms,
        memory_mb=memory,
        # The process's CPU over the window, the runtime's own work included; none when
        # the clock saw none (a model that divides by it needs more than zero).
        cpu_ms=cpu_ms if cpu_ms > 0 else None,
        arch=arch,
    )


def _cost(
    parts: Sequence[Mapping[str, Any]],
    memory_mb: float,
    arch: str,
    prices: Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    profile = measured_profile(parts, memory_mb, arch)
    if profile is None or profile.cpu_s <= 0:
        return None
    rows = cost_per_hour(profile, prices if prices is not None else bundled_prices())
    return {
        "rps": profile.rps,
        "duration_ms": profile.duration_ms,
        "cpu_ms": profile.cpu_s * 1000,
        "memory_mb": profile.memory_mb,
        "arch": profile.arch,
        "per_hour": rows,
        "cheapest": min(rows, key=lambda r: r["hourly"])["platform"],
    }


@functools.cache
def bundled_prices() -> dict[str, Any]:
    return load_prices()


def machine_arch() -> str:
    """The price file's name for this machine's architecture."""
    return "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
    except OSError:
        return 0.0


@dataclass
class History:
    """One process's samples over the last `window` seconds, and its lanes' (slots, bound)."""

    window: float
    lanes: dict[str, tuple[int, int]]
    samples: deque[Sample] = field(default_factory=deque)

    def sample(self, snap: Mapping[str, Any], now: float | None = None) -> dict[str, Any]:
        """Add a reading of `snap` (this process's registry) and return the summary."""
        now = time.monotonic() if now is None else now
        self.samples.append(read(snap, self.lanes, now, time.process_time(), _rss_mb()))
        while self.samples and self.samples[0].time < now - self.window:
            self.samples.popleft()
        return self.summary()

    def summary(self) -> dict[str, Any]:
        return summarise(self.samples, self.lanes)
