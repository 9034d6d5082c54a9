"""Invocation history for `worker forecast`: a CSV, a GetMetricData export, or CloudWatch.

Every source gives a `Series`: counts at a fixed step (a minute for CloudWatch's
`Invocations` at one-minute resolution), oldest first, with the steps that had no data
filled with zero (CloudWatch omits a minute without invocations).

    data.csv                      `timestamp,count` rows (ISO 8601 or epoch seconds)
    export.json                   what `aws cloudwatch get-metric-data` prints (or a list of pages)
    cloudwatch:FUNCTION[:ALIAS]   live: AWS/Lambda Invocations, Sum, through aiobotocore
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import datetime as dt
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

#: CloudWatch keeps one-minute data this long; asking for more returns coarser or nothing.
CLOUDWATCH_RETENTION_S = 15 * 86400
#: GetMetricData's cap on the data points one call returns.
MAX_DATAPOINTS = 100_800
#: The longest dense series a source builds (about a year of minutes): timestamps years
#: apart are a mistake, not history to fill with zeros.
MAX_STEPS = 366 * 1440


class SourceError(ValueError):
    """History that cannot be read; the command prints it and exits 2."""


@dataclasses.dataclass(frozen=True)
class Series:
    """Counts per `step` seconds, the first at `start` (epoch seconds)."""

    start: float
    step: int
    counts: npt.NDArray[np.float64]

    @property
    def end(self) -> float:
        """The epoch second just after the last step."""
        return self.start + self.step * len(self.counts)

    @property
    def rps(self) -> npt.NDArray[np.float64]:
        return self.counts / self.step

    def times(self) -> npt.NDArray[np.float64]:
        return self.start + self.step * np.arange(len(self.counts), dtype=np.float64)


def parse_time(text: str) -> float:
    """Epoch seconds from epoch seconds or ISO 8601 (no zone: UTC)."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SourceError(f"not a time: {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def from_points(points: Iterable[tuple[float, float]], origin: str) -> Series:
    """A dense series from (epoch seconds, count) points in any order: the step is the
    smallest gap between distinct times, repeated times add up, missing steps are zero."""
    pairs = sorted(points)
    if len(pairs) < 2:
        raise SourceError(f"{origin}: fewer than two data points")
    times = np.array([t for t, _ in pairs], dtype=np.float64)
    values = np.array([v for _, v in pairs], dtype=np.float64)
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise SourceError(f"{origin}: counts must be finite and not negative")
    gaps = np.diff(np.unique(times))
    step = round(float(gaps.min()))
    if step < 1 or np.any(np.abs(gaps / step - np.round(gaps / step)) > 1e-6):
        raise SourceError(f"{origin}: timestamps are not on a regular step")
    index = np.round((times - times[0]) / step).astype(np.int64)
    if index[-1] >= MAX_STEPS:
        raise SourceError(f"{origin}: spans more than {MAX_STEPS:,} steps of {step} s")
    counts = np.zeros(int(index[-1]) + 1, dtype=np.float64)
    np.add.at(counts, index, values)
    return Series(float(times[0]), step, counts)


def read_csv(path: str) -> Series:
    """`timestamp,count` rows; a header row and blank lines are skipped."""
    points: list[tuple[float, float]] = []
    with open(path, encoding="utf-8", newline="") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            if not row or not "".join(row).strip():
                continue
            if number == 1 and row[0].strip().lower() in ("timestamp", "time", "date"):
                continue
            if len(row) < 2:
                raise SourceError(f"{path} line {number}: expected `timestamp,count`")
            try:
                when, count = parse_time(row[0]), float(row[1])
            except (SourceError, ValueError) as exc:
                raise SourceError(f"{path} line {number}: {exc}") from None
            if not math.isfinite(count) or count < 0:
                raise SourceError(f"{path} line {number}: count must be a number ≥ 0")
            points.append((when, count))
    return from_points(points, path)


def metric_data_points(
    pages: list[dict[str, Any]], origin: str, metric_id: str | None = None
) -> list[tuple[float, float]]:
    """The points of one GetMetricData result (by id when the export holds several)."""
    results: dict[str, list[tuple[float, float]]] = {}
    for page in pages:
        entries = page.get("MetricDataResults") if isinstance(page, dict) else None
        if not isinstance(entries, list):
            raise SourceError(f"{origin}: no MetricDataResults (not a GetMetricData export)")
        for entry in entries:
            stamps, values = entry.get("Timestamps", []), entry.get("Values", [])
            if len(stamps) != len(values):
                raise SourceError(f"{origin}: Timestamps and Values differ in length")
            key = str(entry.get("Id", ""))
            try:
                results.setdefault(key, []).extend(
                    (stamp.timestamp() if isinstance(stamp, dt.datetime) else parse_time(stamp),
                     float(value))
                    for stamp, value in zip(stamps, values, strict=True)
                )  # fmt: skip
            except (TypeError, ValueError) as exc:
                raise SourceError(f"{origin}: {exc}") from None
    if metric_id is not None:
        if metric_id not in results:
            raise SourceError(f"{origin}: no result with Id {metric_id!r} (has {sorted(results)})")
        return results[metric_id]
    if len(results) != 1:
        raise SourceError(f"{origin}: {len(results)} results ({sorted(results)}): pass --metric-id")
    return next(iter(results.values()))


def read_export(path: str, metric_id: str | None = None) -> Series:
    """A saved `aws cloudwatch get-metric-data` answer: one object, or a list of pages."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}: not JSON ({exc})") from None
    pages = data if isinstance(data, list) else [data]
    return from_points(metric_data_points(pages, path, metric_id), path)


def invocations_query(function: str, period: int) -> dict[str, Any]:
    """The GetMetricData query for a function's (or an alias's) invocations."""
    name, _, qualifier = function.partition(":")
    dimensions = [{"Name": "FunctionName", "Value": name}]
    if qualifier:
        dimensions.append({"Name": "Resource", "Value": function})
    return {
        "Id": "invocations",
        "MetricStat": {
            "Metric": {"Namespace": "AWS/Lambda", "MetricName": "Invocations",
                       "Dimensions": dimensions},
            "Period": period,
            "Stat": "Sum",
        },
        "ReturnData": True,
    }  # fmt: skip


async def fetch_cloudwatch(
    function: str, history_s: float, end: float | None = None, period: int = 60
) -> Series:
    """`function`'s invocations per `period` over the last `history_s` seconds, read with
    GetMetricData through aiobotocore (AWS_ENDPOINT_URL and AWS_REGION honoured)."""
    from aiobotocore.session import get_session

    from worker.aws import endpoint, region

    stop = math.floor((end if end is not None else dt.datetime.now(dt.UTC).timestamp()) / period)
    stop_at = stop * period
    start_at = stop_at - history_s
    pages: list[dict[str, Any]] = []
    session = get_session()
    async with session.create_client(
        "cloudwatch", region_name=region(), endpoint_url=endpoint("cloudwatch")
    ) as client:
        request: dict[str, Any] = {
            "MetricDataQueries": [invocations_query(function, period)],
            "StartTime": dt.datetime.fromtimestamp(start_at, dt.UTC),
            "EndTime": dt.datetime.fromtimestamp(stop_at, dt.UTC),
            "ScanBy": "TimestampAscending",
            "MaxDatapoints": MAX_DATAPOINTS,
        }
        while True:
            page = await client.get_metric_data(**request)
            pages.append(page)
            token = page.get("NextToken")
            if not token:
                break
            request["NextToken"] = token
    points = metric_data_points(pages, f"cloudwatch:{function}")
    if not points:
        raise SourceError(f"cloudwatch:{function}: no Invocations data in the period asked")
    # Pin the ends so the quiet minutes at either end count as zeros, not missing history.
    points += [(start_at, 0.0), (stop_at - period, 0.0)]
    return from_points(points, f"cloudwatch:{function}")


def load(spec: str, *, history_s: float = 14 * 86400, metric_id: str | None = None) -> Series:
    """The series a `--from` names: `cloudwatch:FUNCTION`, a .json export, else a CSV."""
    if spec.startswith("cloudwatch:"):
        function = spec.removeprefix("cloudwatch:")
        if not function:
            raise SourceError("cloudwatch: needs a function name (cloudwatch:FUNCTION)")
        if not 0 < history_s <= CLOUDWATCH_RETENTION_S:
            raise SourceError("--history must be within CloudWatch's 15 days of minute data")
        return asyncio.run(fetch_cloudwatch(function, history_s))
    if not Path(spec).is_file():
        raise SourceError(f"{spec}: no such file")
    if spec.endswith(".json"):
        return read_export(spec, metric_id)
    return read_csv(spec)
