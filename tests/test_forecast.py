"""`worker forecast`: the model recovers a known cycle, the sources read what they should
(CloudWatch on a moto server), the schedule's templates pass cfn-lint, bad input exits 2."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, Moto
from worker.cost.model import SECONDS_PER_MONTH, Profile, lambda_provisioned, load_prices
from worker.forecast import command
from worker.forecast.model import DAY, WEEK, ModelError, fit
from worker.forecast.schedule import (
    Billing,
    Sizing,
    Target,
    actions,
    plan,
    schedule_cost,
    to_cloudformation,
    to_json,
)
from worker.forecast.sources import (
    Series,
    SourceError,
    fetch_cloudwatch,
    read_csv,
    read_export,
)
from worker.telemetry import forecast_feed

#: Monday 2026-01-05 00:00 UTC.
MONDAY = dt.datetime(2026, 1, 5, tzinfo=dt.UTC).timestamp()
CFN_LINT = Path(sys.executable).parent / "cfn-lint"


def known_rate(minutes: int, start: float = MONDAY) -> np.ndarray:
    """Requests a minute: a daily cycle (busy afternoons), weekends at half, a slow growth."""
    t = start + 60 * np.arange(minutes)
    hours = (t % DAY) / 3600
    daily = 1 + 0.8 * np.sin(2 * np.pi * (hours - 9) / 24) + 0.2 * np.cos(4 * np.pi * hours / 24)
    weekday = ((t // DAY).astype(np.int64) + 3) % 7  # epoch day 0 was a Thursday
    weekly = np.where(weekday >= 5, 0.5, 1.0)
    trend = 1 + 0.03 * (t - start) / WEEK
    return 600 * daily * weekly * trend


def synthetic(weeks: int, seed: int = 7) -> tuple[Series, np.ndarray]:
    """`weeks` of Poisson counts around `known_rate`, and the rate of the week after."""
    minutes = weeks * 7 * 1440
    rate = known_rate(minutes + 7 * 1440)
    counts = np.random.default_rng(seed).poisson(rate[:minutes]).astype(np.float64)
    return Series(MONDAY, 60, counts), rate[minutes:]


def mape(forecast: np.ndarray, truth: np.ndarray, per: int = 15) -> float:
    f, t = forecast.reshape(-1, per).mean(axis=1), truth.reshape(-1, per).mean(axis=1)
    return float(np.mean(np.abs(f - t) / t))


def test_the_forecast_recovers_a_known_daily_and_weekly_cycle() -> None:
    history, ahead = synthetic(weeks=2)
    model = fit(history)
    assert model.weekly
    week = model.forecast(7 * DAY)
    expected = ahead / 60  # requests per second
    # Bound: Poisson noise on a 15-minute bin of ≥ 1,800 requests is ≤ 2.4 %, and the fit
    # averages it over two weeks; the rest is the Fourier terms' rendering of the cycle
    # and the trend carried a week on. Measured: about 1 % on the next day.
    assert mape(week.mean[:1440], expected[:1440]) < 0.04
    assert mape(week.mean, expected) < 0.05
    # The weekly cycle: Saturday (day 6 of the forecast) at half a Friday's level.
    friday, saturday = week.mean[4 * 1440 : 5 * 1440].sum(), week.mean[5 * 1440 : 6 * 1440].sum()
    assert saturday / friday == pytest.approx(0.5, rel=0.05)
    # The interval holds about its share of the next week's minutes.
    counts = np.random.default_rng(8).poisson(ahead) / 60
    inside = np.mean((counts >= week.lower) & (counts <= week.upper))
    assert 0.9 <= inside <= 0.99
    peaks = week.peaks()
    assert len(peaks) == 7
    assert all(low <= mean <= high for _, mean, low, high in peaks)


def test_under_a_week_of_history_fits_the_daily_cycle_only() -> None:
    history, _ = synthetic(weeks=1)
    short = Series(history.start, 60, history.counts[: 3 * 1440])
    model = fit(short)
    assert not model.weekly
    assert model.forecast(DAY).mean.shape == (1440,)
    with pytest.raises(ModelError, match="at least"):
        fit(Series(history.start, 60, history.counts[:1440]))


def test_csv_rows_in_any_order_with_gaps_and_repeats(tmp_path: Path) -> None:
    path = tmp_path / "counts.csv"
    path.write_text(
        "timestamp,count\n"
        "2026-01-05T00:02:00Z,5\n"
        "2026-01-05T00:00:00Z,3\n"
        f"{MONDAY + 60:.0f},1\n"
        "\n"
        "2026-01-05T00:02:00+00:00,2\n"
        "2026-01-05T00:04:00,4\n"
    )
    s = read_csv(str(path))
    assert s.start == MONDAY and s.step == 60
    assert s.counts.tolist() == [3, 1, 7, 0, 4]  # the gap is zero, the repeat adds up


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("timestamp,count\n2026-01-05T00:00:00Z,3\nyesterday,4\n", "line 3: not a time"),
        ("2026-01-05T00:00:00Z,3\n2026-01-05T00:01:00Z,-1\n", "line 2: count"),
        ("2026-01-05T00:00:00Z\n", "line 1: expected"),
        ("2026-01-05T00:00:00Z,3\n", "fewer than two"),
        ("0,1\n60,1\n150,1\n", "regular step"),
    ],
)
def test_bad_csv_names_the_line(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(SourceError, match=message):
        read_csv(str(path))


def test_a_get_metric_data_export_newest_first_and_in_pages(tmp_path: Path) -> None:
    def page(first: int, values: list[float]) -> dict[str, object]:
        stamps = [
            dt.datetime.fromtimestamp(MONDAY + 60 * (first + i), dt.UTC).isoformat()
            for i in range(len(values))
        ]
        return {
            "MetricDataResults": [
                {"Id": "m1", "Label": "Invocations", "Timestamps": stamps[::-1],
                 "Values": values[::-1], "StatusCode": "Complete"}
            ],
            "Messages": [],
        }  # fmt: skip

    path = tmp_path / "export.json"
    path.write_text(json.dumps([page(0, [1, 2]), page(3, [4, 5])]))  # minute 2: no data
    s = read_export(str(path))
    assert s.start == MONDAY and s.counts.tolist() == [1, 2, 0, 4, 5]
    two = {"MetricDataResults": [*page(0, [1, 2])["MetricDataResults"],  # type: ignore[misc]
                                 {"Id": "m2", "Timestamps": [], "Values": []}]}  # fmt: skip
    path.write_text(json.dumps(two))
    with pytest.raises(SourceError, match="--metric-id"):
        read_export(str(path))
    assert read_export(str(path), metric_id="m1").counts.tolist() == [1, 2]
    path.write_text('{"Datapoints": []}')
    with pytest.raises(SourceError, match="MetricDataResults"):
        read_export(str(path))


def put_invocations(moto: Moto, function: str, start: float, counts: list[float]) -> None:
    cloudwatch = moto.client("cloudwatch")
    data = [
        {
            "MetricName": "Invocations",
            "Dimensions": [{"Name": "FunctionName", "Value": function}],
            "Timestamp": dt.datetime.fromtimestamp(start + 60 * i, dt.UTC),
            "Value": value,
            "Unit": "Count",
        }
        for i, value in enumerate(counts)
        if value
    ]
    for first in range(0, len(data), 500):
        cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=data[first : first + 500])


def test_cloudwatch_source_reads_back_what_was_put(
    moto: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in moto.env.items():
        monkeypatch.setenv(name, value)
    start = MONDAY
    counts = [float(5 + i % 7) if i % 11 else 0.0 for i in range(180)]
    put_invocations(moto, "orders", start, counts)
    put_invocations(moto, "other", start, [99.0] * 180)
    series = asyncio.run(fetch_cloudwatch("orders", history_s=180 * 60, end=start + 180 * 60))
    assert series.start == start and series.step == 60
    assert series.counts.tolist() == counts  # quiet minutes (none put) read as zero


def run_forecast(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", "forecast", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_cloudwatch_live_through_the_command(moto: Moto) -> None:
    import os

    now = dt.datetime.now(dt.UTC).timestamp() // 60 * 60
    rate = known_rate(3 * 1440, start=now - 3 * DAY) / 10
    counts = np.random.default_rng(3).poisson(rate).astype(float).tolist()
    put_invocations(moto, "live-fn", now - 3 * DAY, counts)
    env = {**os.environ, **moto.env}
    done = run_forecast(
        "--from", "cloudwatch:live-fn", "--history", "3d", "--emit", "json", env=env
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["RegisterScalableTarget"]["ResourceId"] == "function:live-fn:live"


@pytest.fixture(scope="module")
def two_weeks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    history, _ = synthetic(weeks=2)
    path = tmp_path_factory.mktemp("forecast") / "history.csv"
    rows = [f"{t:.0f},{c:.0f}" for t, c in zip(history.times(), history.counts, strict=True)]
    path.write_text("timestamp,count\n" + "\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("target", ["lambda", "ecs"])
def test_the_cloudformation_passes_cfn_lint(two_weeks: Path, tmp_path: Path, target: str) -> None:
    template = tmp_path / f"{target}.json"
    done = run_forecast(
        "--from", str(two_weeks), "--horizon", "7d", "--target", target, "--emit", "cfn",
        "--out", str(template), "--per-env-rps", "20",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    body = json.loads(template.read_text())
    scalable = body["Resources"]["ForecastScalableTarget"]
    assert scalable["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget"
    assert 1 < len(scalable["Properties"]["ScheduledActions"]) <= 200
    lint = subprocess.run([str(CFN_LINT), str(template)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_json_actions_follow_the_forecast() -> None:
    history, _ = synthetic(weeks=2)
    forecast = fit(history).forecast(DAY)
    sizing = Sizing(duration_ms=250, concurrency=1)
    windows = plan(forecast, sizing, 3600)
    assert len(windows) == 24
    # Little's law plus the jitter, rounded up: the sizing of every window.
    for w in windows:
        in_flight = w.upper_rps * 0.25 + 2 * np.sqrt(w.upper_rps * 0.25)
        assert w.units == max(1, int(np.ceil(in_flight - 1e-9)))
    body = to_json(Target(function="orders", alias="prod"), windows, sizing, lead_s=300)
    register = body["RegisterScalableTarget"]
    assert register == {
        "ServiceNamespace": "lambda",
        "ResourceId": "function:orders:prod",
        "ScalableDimension": "lambda:function:ProvisionedConcurrency",
        "MinCapacity": min(w.units for w in windows),
        "MaxCapacity": max(w.units for w in windows),
    }
    puts = body["PutScheduledAction"]
    assert len(puts) == len(actions(windows, 300))
    first = puts[0]
    assert set(first) == {
        "ServiceNamespace", "ResourceId", "ScalableDimension", "ScheduledActionName",
        "Schedule", "Timezone", "ScalableTargetAction",
    }  # fmt: skip
    # Five minutes ahead of the first window; each a change of capacity.
    when = dt.datetime.fromtimestamp(windows[0].start - 300, dt.UTC)
    assert first["Schedule"] == f"at({when:%Y-%m-%dT%H:%M:%S})"
    mins = [p["ScalableTargetAction"]["MinCapacity"] for p in puts]
    assert all(a != b for a, b in itertools.pairwise(mins))
    ecs = to_cloudformation(Target(kind="ecs"), windows, Sizing(per_env_rps=50), 300)
    props = ecs["Resources"]["ForecastScalableTarget"]["Properties"]
    assert props["ScalableDimension"] == "ecs:service:DesiredCount"


def test_the_schedule_costs_what_the_cost_model_says() -> None:
    history, _ = synthetic(weeks=2)
    windows = plan(fit(history).forecast(DAY), Sizing(duration_ms=100), 3600)
    billing = Billing(duration_ms=100, memory_mb=2048)
    costs = schedule_cost("lambda", windows, billing)
    prices = load_prices()
    expected = 0.0
    for w in windows:  # each window: its units provisioned for its hour, by the model itself
        p = Profile(rps=w.expected_rps, duration_ms=100, memory_mb=2048,
                    peak_to_mean=(w.units - 0.5) * 10 / w.expected_rps)  # fmt: skip
        assert lambda_provisioned(p, prices).units == w.units
        expected += lambda_provisioned(p, prices).monthly * 3600 / SECONDS_PER_MONTH
    assert costs["schedule"] == pytest.approx(expected)
    assert costs["schedule"] < costs["held at the peak"]


def test_the_table(two_weeks: Path) -> None:
    done = run_forecast("--from", str(two_weeks), "--horizon", "2d", "--duration-ms", "150")
    assert done.returncode == 0, done.stderr
    assert "daily and weekly cycles" in done.stdout
    assert "| 2 |" in done.stdout  # a peak per day
    assert "function:my-function:live" in done.stdout
    assert "| schedule |" in done.stdout and "| on demand |" in done.stdout


def test_the_forecast_file_is_what_mission_control_reads(two_weeks: Path, tmp_path: Path) -> None:
    path = tmp_path / "forecast.json"
    done = run_forecast("--from", str(two_weeks), "--horizon", "2d", "--emit", "forecast",
                        "--out", str(path))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and list(tmp_path.iterdir()) == [path]  # nothing half written left
    series = forecast_feed.read(str(path))
    history, ahead = synthetic(weeks=2)
    assert series.start == history.end and series.step == 60
    assert len(series.mean) == 2 * 1440 and series.interval == 0.95
    # The rates are the model's forecast, per second, as the table and the schedule use.
    model = fit(history).forecast(2 * DAY)
    assert series.mean == pytest.approx(model.mean.tolist(), abs=1e-6)
    assert mape(np.array(series.mean[:1440]), ahead[:1440] / 60) < 0.04
    assert all(lo <= hi for lo, hi in zip(series.lower, series.upper, strict=True))
    # Served for a moment inside it: the band at that moment and the hour after.
    view = forecast_feed.view(series, series.start + DAY + 30, before_s=120, rate=0.0)
    assert view["expected"] is not None and view["state"] == "below"
    assert len(view["points"]) == 63  # the two minutes before, the step holding now, an hour


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "/nonexistent.csv"], "no such file"),
        (["--horizon", "9d"], "--horizon"),
        (["--horizon", "30m"], "--horizon"),
        (["--per-env-rps", "0"], "--per-env-rps"),
        (["--interval", "1.5"], "--interval"),
        (["--window", "1m", "--horizon", "7d", "--per-env-rps", "0.01"], "actions"),
        (["--max-capacity", "0"], "--max-capacity"),
        (["--history", "30d", "--from", "cloudwatch:fn"], "--history"),
        (["--from", "cloudwatch:"], "function name"),
        (["--horizon", "soon"], "not a span"),
    ],
)
def test_bad_input_exits_2_with_a_clear_error(
    two_weeks: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    argv = args if "--from" in args else ["--from", str(two_weeks), *args]
    with pytest.raises(SystemExit) as stopped:
        raise SystemExit(command.main(argv))
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_too_little_history_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "day.csv"
    path.write_text("".join(f"{MONDAY + 60 * i:.0f},5\n" for i in range(1440)))
    done = run_forecast("--from", str(path))
    assert done.returncode == 2
    assert "needs at least" in done.stderr
