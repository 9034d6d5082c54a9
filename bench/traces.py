"""Seeded synthetic invocation traces for the cold-start simulator: per-minute counts, weeks
long, starting on a Monday at midnight UTC.

Every trace is the same function's traffic: a daily cycle (quiet nights, a morning ramp, a
lunch bump, an evening tail), a weekly one (weekends lower), a slow growth, day-to-day
level changes and slowly wandering noise (a log AR(1) process), then Poisson counts
around that rate. On top:

- `daily_weekly`: nothing more.
- `bursts`: random bursts every few hours, minutes long, a few times the rate (in every
  week, so history shows them, but never where they fall).
- `flash_crowd`: the bursts, and in the last week one flash crowd (many times the rate
  for half an hour, out of nowhere) that no history shows.

`expected` is the rate the generator drew the counts around, without noise or bursts:
what a forecast should recover.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
MINUTES_PER_DAY = 1440
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
#: Monday 2026-01-05 00:00 UTC.
START = dt.datetime(2026, 1, 5, tzinfo=dt.UTC).timestamp()
#: The weekday factors, Monday first.
WEEK = (1.0, 1.02, 1.0, 0.98, 0.92, 0.55, 0.45)


@dataclasses.dataclass(frozen=True)
class Trace:
    name: str
    start: float  # epoch seconds of the first minute
    counts: Array  # invocations per minute
    expected: Array  # the generator's rate per minute before noise and bursts

    def week(self, index: int) -> Trace:
        """Week `index` (0 first; negative from the end) of the trace."""
        weeks = len(self.counts) // MINUTES_PER_WEEK
        i = index % weeks
        cut = slice(i * MINUTES_PER_WEEK, (i + 1) * MINUTES_PER_WEEK)
        start = self.start + i * MINUTES_PER_WEEK * 60
        return Trace(self.name, start, self.counts[cut], self.expected[cut])

    def before(self, index: int) -> Trace:
        """Every week before week `index` (the history a forecast of that week may use)."""
        weeks = len(self.counts) // MINUTES_PER_WEEK
        cut = slice(0, (index % weeks) * MINUTES_PER_WEEK)
        return Trace(self.name, self.start, self.counts[cut], self.expected[cut])


def daily_shape(hours: Array) -> Array:
    """0 at night, 1 at the day's height: a morning ramp, a lunch bump, an evening tail."""
    day = np.clip(np.sin(np.pi * (hours - 6.5) / 16.5), 0, None) ** 1.4
    lunch = 0.18 * np.exp(-(((hours - 12.75) / 0.9) ** 2))
    return np.clip(day + lunch, 0, 1.2)


def expected_rate(minutes: int, peak_rpm: float, night_rpm: float, growth: float) -> Array:
    """Per-minute rate of the cycles and the trend (growth: the share added per week)."""
    t = np.arange(minutes, dtype=np.float64)
    hours = (t % MINUTES_PER_DAY) / 60
    weekday = np.asarray(WEEK)[(t // MINUTES_PER_DAY).astype(np.int64) % 7]
    trend = 1 + growth * t / MINUTES_PER_WEEK
    return (night_rpm + (peak_rpm - night_rpm) * daily_shape(hours)) * weekday * trend


def wander(rng: np.random.Generator, minutes: int, sigma: float, minutes_kept: float) -> Array:
    """A multiplicative noise of mean about 1 that drifts over `minutes_kept`: log AR(1)."""
    phi = float(np.exp(-1 / minutes_kept))
    shocks = rng.normal(0, sigma * np.sqrt(1 - phi**2), minutes)
    out = np.empty(minutes)
    level = 0.0
    for i, shock in enumerate(shocks):
        level = phi * level + shock
        out[i] = level
    return np.exp(out - sigma**2 / 2)


def burst_factor(rng: np.random.Generator, minutes: int, per_day: float) -> Array:
    """Bursts at random minutes: a quick rise to 1.5-3x, held 5-30 minutes, a quick fall."""
    factor = np.ones(minutes)
    count = rng.poisson(per_day * minutes / MINUTES_PER_DAY)
    for _ in range(count):
        at = int(rng.integers(0, minutes))
        length = int(rng.integers(5, 31))
        height = float(rng.uniform(1.5, 3.0))
        shape = np.concatenate([np.linspace(1, height, 3), np.full(length, height),
                                np.linspace(height, 1, 4)])  # fmt: skip
        end = min(minutes, at + len(shape))
        factor[at:end] = np.maximum(factor[at:end], shape[: end - at])
    return factor


def flash(rng: np.random.Generator, minutes: int, first: int, height: float) -> Array:
    """One flash crowd in minutes [first, minutes): a weekday afternoon, `height` x the
    rate within two minutes, held half an hour, gone within the next half hour."""
    factor = np.ones(minutes)
    day = int(rng.integers(0, 5))  # a weekday of that week
    at = first + day * MINUTES_PER_DAY + int(rng.integers(13 * 60, 17 * 60))
    shape = np.concatenate([np.linspace(1, height, 3), np.full(30, height),
                            np.linspace(height, 1, 30)])  # fmt: skip
    factor[at : at + len(shape)] = shape[: minutes - at]
    return factor


def make(
    kind: str,
    *,
    weeks: int = 3,
    seed: int = 1,
    peak_rpm: float = 6000.0,
    night_rpm: float = 300.0,
    growth: float = 0.02,
) -> Trace:
    """A trace of `kind` (`daily_weekly`, `bursts`, `flash_crowd`), `weeks` long."""
    if kind not in KINDS:
        raise ValueError(f"no trace kind {kind!r} (have {', '.join(KINDS)})")
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    minutes = weeks * MINUTES_PER_WEEK
    expected = expected_rate(minutes, peak_rpm, night_rpm, growth)
    days = np.exp(rng.normal(0, 0.04, weeks * 7))  # one day busier than another
    rate = expected * np.repeat(days, MINUTES_PER_DAY) * wander(rng, minutes, 0.08, 30)
    if kind in ("bursts", "flash_crowd"):
        rate = rate * burst_factor(rng, minutes, per_day=4)
    if kind == "flash_crowd":
        rate = rate * flash(rng, minutes, (weeks - 1) * MINUTES_PER_WEEK, height=8.0)
    counts = rng.poisson(rate).astype(np.float64)
    return Trace(kind, START, counts, expected)


KINDS = ("daily_weekly", "bursts", "flash_crowd")
