"""Mission Control's forecast: the file `worker forecast --emit forecast` writes, read by the
running service and set beside the live request rate.

The file is plain JSON (no model, no numpy: the runtime only reads numbers), one value per
step from `start` (epoch seconds) on:

    {"format": "worker-forecast/1", "start": 1767571200.0, "step": 60, "interval": 0.95,
     "mean": [...], "lower": [...], "upper": [...]}        # requests per second

With `WORKER_FORECAST_FILE` set, the process that answers `/_worker/stats` puts the steps
around now (the outlook window back, `AHEAD_S` on) under `outlook.forecast`, with the band
at now and where the live rate stands against it. The live rate is the arrivals over the
outlook window (refused requests included: they are demand the forecast was for).

`Feed` holds the file: it is stat'ed on each read and parsed again when it changed; a file
that cannot be used is one log line (per change) and an `error` in the feed, never an
exception. Everything else here is a pure function.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger("worker.forecast")

#: The file's `format`: the writer (`worker.forecast.command`) stamps it, the reader checks it.
FORMAT = "worker-forecast/1"
#: How far ahead of now the feed serves the forecast.
AHEAD_S = 3600.0

State = Literal["above", "below", "within"]


class ForecastError(ValueError):
    """A forecast file that cannot be used; the message says why."""


@dataclass(frozen=True)
class Series:
    """Expected requests per second and the interval around them, per `step` from `start`."""

    start: float
    step: float
    interval: float
    mean: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]

    @property
    def end(self) -> float:
        """The epoch second just after the last step."""
        return self.start + self.step * len(self.mean)

    def index(self, when: float) -> int | None:
        """The step holding `when`; None outside the forecast."""
        if not self.start <= when < self.end:
            return None
        return min(len(self.mean) - 1, int((when - self.start) // self.step))


def _rates(body: Mapping[str, Any], name: str) -> tuple[float, ...]:
    values = body.get(name)
    if not isinstance(values, list) or not values:
        raise ForecastError(f"{name!r} must be a non-empty list of requests per second")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise ForecastError(f"{name}[{i}] is {v!r}, not a rate (a finite number ≥ 0)")
        out.append(float(v))
    return tuple(out)


def _number(body: Mapping[str, Any], name: str) -> float:
    v = body.get(name)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ForecastError(f"{name!r} must be a number, got {v!r}")
    return float(v)


def parse(text: str | bytes) -> Series:
    """A `Series` from the file's text; ForecastError says what is wrong with it."""
    try:
        body = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ForecastError(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ForecastError("not a forecast: the file holds no JSON object")
    if body.get("format") != FORMAT:
        raise ForecastError(
            f"format is {body.get('format')!r}, not {FORMAT!r}: write the file with "
            "`worker forecast --emit forecast` (--emit json holds scaling actions, not rates)"
        )
    start, step = _number(body, "start"), _number(body, "step")
    if step <= 0:
        raise ForecastError(f"'step' must be > 0 seconds, got {step:g}")
    interval = _number(body, "interval")
    if not 0 < interval < 1:
        raise ForecastError(f"'interval' must be a share in (0, 1), got {interval:g}")
    mean, lower, upper = (_rates(body, name) for name in ("mean", "lower", "upper"))
    if not len(mean) == len(lower) == len(upper):
        raise ForecastError(
            f"mean, lower and upper differ in length ({len(mean)}, {len(lower)}, {len(upper)})"
        )
    for i, (low, high) in enumerate(zip(lower, upper, strict=True)):
        if low > high:
            raise ForecastError(f"step {i}: lower {low:g} is above upper {high:g}")
    return Series(start, step, interval, mean, lower, upper)


def read(path: str) -> Series:
    """Parse the file at `path`; ForecastError (an unreadable file included)."""
    try:
        with open(path, "rb") as f:
            return parse(f.read())
    except OSError as exc:
        raise ForecastError(exc.strerror or str(exc)) from None


def around(series: Series, now: float, before_s: float, after_s: float) -> list[list[float]]:
    """[time, mean, lower, upper] of each step that overlaps [now - before_s, now + after_s]."""
    first = max(0, math.floor((now - before_s - series.start) / series.step))
    last = min(len(series.mean), math.ceil((now + after_s - series.start) / series.step))
    return [
        [series.start + i * series.step, series.mean[i], series.lower[i], series.upper[i]]
        for i in range(first, last)
    ]


def compare(rate: float, lower: float, upper: float) -> State:
    """Where a live rate stands against the interval."""
    if rate > upper:
        return "above"
    if rate < lower:
        return "below"
    return "within"


def live_rate(outlook: Mapping[str, Any]) -> float | None:
    """Requests arriving per second over the outlook's window (`outlook.combine`'s answer);
    None before two samples span any time."""
    span = float(outlook.get("span_s") or 0.0)
    if span <= 0:
        return None
    return float(outlook.get("throttle", {}).get("requests", 0.0)) / span


def view(
    series: Series, now: float, before_s: float, rate: float | None, after_s: float = AHEAD_S
) -> dict[str, Any]:
    """The feed's figures: the steps around now, the band at now and the live rate's place."""
    i = series.index(now)
    expected = None
    state: State | None = None
    if i is not None:
        expected = {"mean": series.mean[i], "lower": series.lower[i], "upper": series.upper[i]}
        if rate is not None:
            state = compare(rate, series.lower[i], series.upper[i])
    return {
        "error": None,
        "start": series.start,
        "end": series.end,
        "step": series.step,
        "interval": series.interval,
        "before_s": before_s,
        "after_s": after_s,
        "points": around(series, now, before_s, after_s),
        "expected": expected,
        "live_rps": rate,
        "state": state,
    }


class Feed:
    """The forecast file at `path`, parsed again whenever it changes (or comes back)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | str | None = None  # the stat (or error) last read
        self._series: Series | None = None
        self._error: str | None = None

    def current(self) -> tuple[Series | None, str | None]:
        """The file's series, or None and why not."""
        try:
            st = os.stat(self.path)
            seen: tuple[int, int, int] | str = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError as exc:
            seen = f"cannot read it: {exc.strerror or exc}"
        if seen == self._seen:
            return self._series, self._error
        self._seen = seen
        try:
            if isinstance(seen, str):
                raise ForecastError(seen)
            self._series, self._error = read(self.path), None
            log.info("WORKER_FORECAST_FILE %s: read %d steps", self.path, len(self._series.mean))
        except ForecastError as exc:
            self._series, self._error = None, str(exc)
            # Once per change of the file: a poll a second must not repeat it.
            log.warning("WORKER_FORECAST_FILE %s: %s; Mission Control shows no forecast",
                        self.path, exc)  # fmt: skip
        return self._series, self._error

    def outlook(self, now: float, before_s: float, ahead: Mapping[str, Any]) -> dict[str, Any]:
        """`outlook.forecast` in `/_worker/stats`, `ahead` being the rest of the outlook."""
        series, error = self.current()
        rate = live_rate(ahead)
        if series is None:
            return {"file": self.path, "error": error, "before_s": before_s, "after_s": AHEAD_S,
                    "points": [], "expected": None, "live_rps": rate, "state": None}  # fmt: skip
        return {"file": self.path, **view(series, now, before_s, rate)}


@functools.cache
def feed(path: str) -> Feed:
    """This process's one `Feed` of `path`."""
    return Feed(path)


def document(
    start: float,
    step: float,
    interval: float,
    mean: Sequence[float],
    lower: Sequence[float],
    upper: Sequence[float],
) -> dict[str, Any]:
    """The file's JSON object (what `worker forecast --emit forecast` writes). Rates are
    rounded: a millionth of a request per second is below anything a band is read for."""
    return {
        "format": FORMAT,
        "start": float(start),
        "step": step,
        "interval": interval,
        **{
            name: [round(float(v), 6) for v in values]
            for name, values in (("mean", mean), ("lower", lower), ("upper", upper))
        },
    }
