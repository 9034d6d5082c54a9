"""Per-route profiles learned online, and the lane each route belongs in.

A route's profile keeps an EWMA of its duration, a high quantile of its recent durations
and an EWMA of its payload size. A route whose typical duration (the quantile) or payload
passes its threshold is a marathon; every other route, and every route not seen yet, is
a sprinter. Explicit overrides (`WORKER_ROUTES="route=marathon,…"`) win over what is
learned; `route=offload` names a route whose asynchronous events go to the offload queue
(`worker.offload`), and which runs as a marathon where it runs here. The table is
bounded: routes beyond it are not profiled (they run as sprinters), so an API whose paths
carry ids cannot grow it without end.
"""

from __future__ import annotations

from collections import deque

SPRINTER = "sprinter"
MARATHON = "marathon"
OFFLOAD = "offload"
LANES = (SPRINTER, MARATHON, OFFLOAD)
WINDOW = 32  # durations kept per route for the quantile
QUANTILE = 0.9
ALPHA = 0.2  # EWMA weight of the newest observation


class RouteProfile:
    __slots__ = ("count", "duration", "recent", "size")

    def __init__(self) -> None:
        self.count = 0
        self.duration = 0.0  # EWMA, seconds
        self.size = 0.0  # EWMA, bytes
        self.recent: deque[float] = deque(maxlen=WINDOW)

    def quantile(self) -> float:
        ordered = sorted(self.recent)
        return ordered[min(len(ordered) - 1, int(QUANTILE * len(ordered)))] if ordered else 0.0


def parse_overrides(text: str) -> dict[str, str]:
    """`"GET /report=marathon,sqs:arn:…=sprinter"` → {route: lane} (the last `=` splits)."""
    overrides: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        route, sep, lane = item.rpartition("=")
        if not sep or lane not in LANES:
            raise ValueError(
                f"WORKER_ROUTES entry {item!r}: expected ROUTE=sprinter|marathon|offload"
            )
        overrides[route] = lane
    return overrides


class Profiles:
    """Every profiled route of one process, and the rule that sends a route to a lane."""

    def __init__(
        self,
        *,
        slow_seconds: float = 1.0,
        large_bytes: int = 1024 * 1024,
        overrides: dict[str, str] | None = None,
        max_routes: int = 10_000,
    ) -> None:
        self.slow_seconds = slow_seconds
        self.large_bytes = large_bytes
        self.overrides = dict(overrides or {})
        self.max_routes = max_routes
        self.routes: dict[str, RouteProfile] = {}
        #: Each route's lane: the overrides, then what was decided (cached until the next
        #: decision). Read on every request, so one lookup answers it; never rebound (Lanes
        #: reads it directly).
        self.decided: dict[str, str] = dict(self.overrides)

    def lane_for(self, route: str) -> str:
        return self.decided.get(route, SPRINTER)

    def observe(self, route: str, seconds: float, size: int) -> None:
        profile = self.routes.get(route)
        if profile is None:
            if len(self.routes) >= self.max_routes:
                return
            profile = self.routes[route] = RouteProfile()
        # The profile's update, here rather than in a method: it runs for every invocation.
        count = profile.count = profile.count + 1
        if count == 1:
            profile.duration, profile.size = seconds, float(size)
        else:
            profile.duration += ALPHA * (seconds - profile.duration)
            profile.size += ALPHA * (size - profile.size)
        profile.recent.append(seconds)
        # Deciding sorts the window: do it while the route is new, when this invocation was
        # slow or large (what can make it a marathon: at once), and else every 32nd call (a
        # route that has sped up moves back within 32 invocations, at a fraction of the cost).
        if count > 4 and count % 32 and seconds <= self.slow_seconds and size <= self.large_bytes:
            return
        slow = profile.quantile() > self.slow_seconds
        large = profile.size > self.large_bytes
        if route not in self.overrides:
            self.decided[route] = MARATHON if slow or large else SPRINTER
