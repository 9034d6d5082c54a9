"""The seasonal model: daily and weekly cycles plus a trend, fitted to invocation history.

The history is averaged into bins (15 minutes by default) and its log, `log1p(count)`,
regressed by ordinary least squares (statsmodels) on statsmodels' calendar terms: a
constant, a linear trend, Fourier terms of the UTC day, a level for each day of the week
and, if asked, Fourier terms of the week. In logs the cycles multiply, as traffic's do: a
weekend scales the whole day down rather than subtracting a constant from it. Fourier
terms keep the parameters few (a 15-minute day has 96 bins; its shape takes a dozen
harmonics) so two weeks of minute data fit in well under a second; the day-of-week
levels follow the step from a Sunday to a Monday that a few weekly harmonics would blur.

The interval is empirical: the quantiles of every history step's log residual around its
bin's fitted value, so bursts and the noise of one minute inside a bin are in it as the
history showed them, not as a normal distribution would have them. The expected count
uses Duan's smearing (the mean of the residuals' exponentials) to undo the log's bias.
What the interval leaves out: uncertainty in the trend's slope far from the data, and
anything the history never showed (a flash crowd).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from worker.forecast.sources import Series

DAY = 86400
WEEK = 7 * DAY

Array = npt.NDArray[np.float64]


class ModelError(ValueError):
    """History the model cannot use; the command prints it and exits 2."""


@dataclasses.dataclass(frozen=True)
class Options:
    """How the model is fitted. Each has a `worker forecast` flag."""

    bin_s: int = 900  # history averaged over bins this long before fitting
    interval: float = 0.95  # the central share of outcomes the interval holds
    daily_harmonics: int = 12  # Fourier pairs of the day's shape
    weekly_harmonics: int = 0  # Fourier pairs of the week's, beyond a level per weekday
    min_history_s: int = 2 * DAY  # less cannot tell a daily cycle from a trend

    def check(self) -> None:
        if not 0.5 <= self.interval < 1:
            raise ModelError("--interval must be in [0.5, 1)")
        if self.bin_s < 60 or DAY % self.bin_s:
            raise ModelError("--bin must be at least a minute and divide a day evenly")
        if not 1 <= self.daily_harmonics <= DAY // self.bin_s // 2:
            raise ModelError("--daily-harmonics must be between 1 and half the bins in a day")
        if not 0 <= self.weekly_harmonics <= 3:
            raise ModelError("--weekly-harmonics must be between 0 and 3")


@dataclasses.dataclass(frozen=True)
class Forecast:
    """Expected requests per second and the interval around them, one value per step."""

    start: float
    step: int
    mean: Array
    lower: Array
    upper: Array
    interval: float

    def times(self) -> Array:
        return self.start + self.step * np.arange(len(self.mean), dtype=np.float64)

    def peaks(self, every_s: int = DAY) -> list[tuple[float, float, float, float]]:
        """(time, expected, lower, upper) at the highest expected rate of each period."""
        per = max(1, every_s // self.step)
        found = []
        for first in range(0, len(self.mean), per):
            i = first + int(np.argmax(self.mean[first : first + per]))
            found.append(
                (self.start + i * self.step, float(self.mean[i]), float(self.lower[i]),
                 float(self.upper[i]))
            )  # fmt: skip
        return found


@dataclasses.dataclass(frozen=True)
class Fitted:
    """A fitted model: forecast any span after the history with `forecast`."""

    history: Series
    options: Options
    process: Any  # statsmodels' DeterministicProcess: the regressors, in and out of sample
    params: Array
    smear: float  # mean of exp(residual): the log's bias undone
    low_q: float  # residual quantiles bounding the interval, in logs
    high_q: float
    weekly: bool  # whether the history was long enough for the weekly cycle

    def regressors(self, bins: npt.NDArray[np.int64]) -> Array:
        """The design rows of the given bin indices (0: the history's first bin)."""
        x = np.asarray(self.process.in_sample(), dtype=np.float64)
        beyond = int(bins.max()) + 1 - len(x)
        if beyond > 0:
            ahead = np.asarray(self.process.out_of_sample(beyond), dtype=np.float64)
            x = np.vstack([x, ahead])
        return x[bins]

    def forecast(self, seconds: float, start: float | None = None) -> Forecast:
        """`seconds` of forecast from `start` (default: the end of the history), per step."""
        step = self.history.step
        begin = self.history.end if start is None else start
        if begin < self.history.start:
            raise ModelError("a forecast cannot start before the history")
        n = max(1, math.ceil(seconds / step))
        times = begin + step * np.arange(n, dtype=np.float64)
        bins = np.floor((times - self.history.start) / self.options.bin_s).astype(np.int64)
        fitted = self.regressors(bins) @ self.params
        mean = np.maximum(np.exp(fitted) * self.smear - 1, 0) / step
        lower = np.maximum(np.expm1(fitted + self.low_q), 0) / step
        upper = np.maximum(np.expm1(fitted + self.high_q), 0) / step
        return Forecast(begin, step, mean, lower, upper, self.options.interval)


def fit(history: Series, options: Options | None = None) -> Fitted:
    """Fit the model to `history` (at least `min_history_s` of it)."""
    import pandas as pd  # statsmodels' own dependency: its calendar terms want an index
    from statsmodels.regression.linear_model import OLS
    from statsmodels.tsa.deterministic import (
        CalendarFourier,
        CalendarSeasonality,
        DeterministicProcess,
    )

    options = options or Options()
    options.check()
    if options.bin_s % history.step:
        raise ModelError(f"--bin must be a multiple of the history's step ({history.step} s)")
    span = history.step * len(history.counts)
    if span < options.min_history_s:
        raise ModelError(
            f"history spans {span / 3600:.1f} h; the model needs at least "
            f"{options.min_history_s / 3600:.0f} h (two daily cycles)"
        )
    per_bin = options.bin_s // history.step
    whole = len(history.counts) // per_bin * per_bin
    counts = history.counts[:whole]
    y = np.log1p(counts.reshape(-1, per_bin).mean(axis=1))
    terms: list[Any] = [CalendarFourier("D", options.daily_harmonics)]
    # A week's cycle needs a week of history to be told apart from the trend.
    weekly = span >= WEEK
    if weekly:
        terms.append(CalendarSeasonality("D", "W"))
        if options.weekly_harmonics:
            terms.append(CalendarFourier("W", options.weekly_harmonics))
    first = pd.Timestamp(history.start, unit="s")  # UTC, without a zone
    index = pd.date_range(first, periods=len(y), freq=f"{options.bin_s}s")
    process = DeterministicProcess(index, constant=True, order=1, additional_terms=terms, drop=True)
    x = np.asarray(process.in_sample(), dtype=np.float64)
    params = np.asarray(OLS(y, x).fit().params, dtype=np.float64)
    # Residuals of every step (not bin) around its bin's fitted value: the interval is
    # about the rate of a step, which is what capacity has to meet.
    residuals = np.log1p(counts) - np.repeat(x @ params, per_bin)
    tail = (1 - options.interval) / 2
    return Fitted(
        history=history,
        options=options,
        process=process,
        params=params,
        weekly=weekly,
        smear=float(np.mean(np.exp(residuals))),
        low_q=float(np.quantile(residuals, tail)),
        high_q=float(np.quantile(residuals, 1 - tail)),
    )
