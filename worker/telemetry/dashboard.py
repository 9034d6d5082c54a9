"""Mission Control: the live dashboard page served at `/_worker/dashboard`.

One self-contained HTML file (`dashboard.html`, shipped in the package: no CDN, no chart
library, a few canvases drawn by hand) that polls `/_worker/stats` — every worker
process's registry, by process — once a second and charts throughput, p50/p99 latency,
in-flight per worker, queue depth and 429s per lane, batch size per model and restarts.
It also draws what the server looks ahead with (`outlook`, in the same feed): utilisation
per lane, the throttle rate against the 1 % line, the saturation forecast as a warning
banner, the cost per hour on each platform at the current rate and, with
`WORKER_FORECAST_FILE` set, `worker forecast`'s expected rate and interval with the
arriving rate over them (`worker.telemetry.forecast_feed`), and a note when it leaves them.
"""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def page() -> bytes:
    return resources.files("worker.telemetry").joinpath("dashboard.html").read_bytes()
