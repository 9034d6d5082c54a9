"""`worker forecast`: the next day to week of invocations, and capacity scheduled for it.

    worker forecast --from SOURCE [--horizon 24h|7d] [--per-env-rps R | --duration-ms D
                    --concurrency C] [--target lambda|ecs] [--emit table|cfn|json|forecast]
                    [--out FILE]

SOURCE: a CSV of `timestamp,count` rows, a saved `aws cloudwatch get-metric-data` answer
(.json), or `cloudwatch:FUNCTION[:ALIAS]` to read the last `--history` of the function's
Invocations live (AWS_ENDPOINT_URL and AWS_REGION honoured). Spans take s, m, h or d.
`--emit forecast` writes the forecast itself (requests per second and the interval, per
step) for a running service's Mission Control to draw: `WORKER_FORECAST_FILE`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
from collections.abc import Sequence

from worker.forecast.model import DAY, WEEK, Fitted, Forecast, ModelError, Options, fit
from worker.forecast.schedule import (
    MAX_SCHEDULED_ACTIONS,
    Billing,
    ScheduleError,
    Sizing,
    Target,
    Window,
    actions,
    plan,
    schedule_cost,
    stamp,
    to_cloudformation,
    to_json,
)
from worker.forecast.sources import CLOUDWATCH_RETENTION_S, SourceError, load
from worker.telemetry import forecast_feed

UNITS = {"s": 1, "m": 60, "h": 3600, "d": DAY, "w": WEEK}
#: The forecast's reach: beyond a week the model only repeats its cycles on a trend.
MAX_HORIZON_S = WEEK


def span(text: str) -> int:
    """Seconds from `90s`, `15m`, `24h`, `7d` or `1w`."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a span: {text!r} (e.g. 15m, 24h, 7d)")
    return round(float(m.group(1)) * UNITS[m.group(2)])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="worker forecast", description=__doc__.split("\n\n")[0])
    p.add_argument("--from", dest="source", required=True, help="CSV, export .json, cloudwatch:FN")
    p.add_argument("--horizon", type=span, default=DAY, help="how far ahead (default 24h, ≤ 7d)")
    p.add_argument("--history", type=span, default=14 * DAY, help="cloudwatch: how far back")
    p.add_argument("--metric-id", help="which result of an export holding several")
    g = p.add_argument_group("model")
    g.add_argument("--bin", type=span, default=Options.bin_s, help="fit on bins this long")
    g.add_argument("--interval", type=float, default=Options.interval, help="interval share")
    g.add_argument("--daily-harmonics", type=int, default=Options.daily_harmonics)
    g.add_argument("--weekly-harmonics", type=int, default=Options.weekly_harmonics)
    g = p.add_argument_group("sizing")
    g.add_argument("--per-env-rps", type=float, help="measured requests/s one environment serves")
    g.add_argument("--duration-ms", type=float, default=Sizing.duration_ms, help="mean duration")
    g.add_argument("--concurrency", type=int, default=Sizing.concurrency,
                   help="requests one environment serves at once (1 on Lambda)")  # fmt: skip
    g.add_argument("--sigmas", type=float, default=Sizing.sigmas,
                   help="headroom for the jitter of requests in flight (std devs)")  # fmt: skip
    g.add_argument("--utilisation", type=float, default=Sizing.utilisation,
                   help="share of each unit's capacity to plan on")  # fmt: skip
    g.add_argument("--min-capacity", type=int, default=Sizing.min_capacity)
    g.add_argument("--max-capacity", type=int, help="cap (default: what the peak needs)")
    g.add_argument("--window", type=span, default=3600, help="one capacity per window")
    g.add_argument("--lead", type=span, default=300, help="actions start this early")
    g = p.add_argument_group("target and cost")
    g.add_argument("--target", choices=("lambda", "ecs"), default="lambda")
    g.add_argument("--function", help="Lambda function (default: the cloudwatch source's)")
    g.add_argument("--alias", default=Target.alias)
    g.add_argument("--cluster", default=Target.cluster)
    g.add_argument("--service", default=Target.service)
    g.add_argument("--memory-mb", type=float, default=Billing.memory_mb)
    g.add_argument("--arch", choices=("x86_64", "arm64"), default=Billing.arch)
    g.add_argument("--task-vcpu", type=float, default=Billing.task_vcpu)
    g.add_argument("--task-memory-gb", type=float, default=Billing.task_memory_gb)
    g.add_argument("--prices", help="a price file in the bundled one's shape (worker cost)")
    p.add_argument("--emit", choices=("table", "cfn", "json", "forecast"), default="table",
                   help="forecast: the rates per step, for WORKER_FORECAST_FILE")  # fmt: skip
    p.add_argument("--out", help="write the output here (default: stdout)")
    return p


def fail(message: str) -> int:
    sys.stderr.write(f"worker forecast: {message}\n")
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not 3600 <= args.horizon <= MAX_HORIZON_S:
        return fail("--horizon must be between 1h and 7d")
    if not 0 < args.history <= CLOUDWATCH_RETENTION_S:
        return fail("--history must be within CloudWatch's 15 days of minute data")
    options = Options(
        bin_s=args.bin,
        interval=args.interval,
        daily_harmonics=args.daily_harmonics,
        weekly_harmonics=args.weekly_harmonics,
    )
    sizing = Sizing(
        duration_ms=args.duration_ms,
        concurrency=args.concurrency,
        per_env_rps=args.per_env_rps,
        sigmas=args.sigmas,
        utilisation=args.utilisation,
        min_capacity=args.min_capacity,
        max_capacity=args.max_capacity,
    )
    function = args.function
    if function is None and args.source.startswith("cloudwatch:"):
        function = args.source.removeprefix("cloudwatch:").partition(":")[0]
    target = Target(
        kind=args.target,
        function=function or Target.function,
        alias=args.alias,
        cluster=args.cluster,
        service=args.service,
    )
    try:
        from worker.cost.model import load_prices

        billing = Billing(
            duration_ms=args.duration_ms,
            memory_mb=args.memory_mb,
            arch=args.arch,
            task_vcpu=args.task_vcpu,
            task_memory_gb=args.task_memory_gb,
            prices=load_prices(args.prices) if args.prices else None,
        )
        sizing.check()
        options.check()
        history = load(args.source, history_s=args.history, metric_id=args.metric_id)
        model = fit(history, options)
        forecast = model.forecast(args.horizon)
        if args.emit == "forecast":  # the rates alone: no schedule to plan or price
            return write(json.dumps(to_feed(forecast)), args.out)
        windows = plan(forecast, sizing, args.window)
        if args.emit == "cfn":
            text = json.dumps(to_cloudformation(target, windows, sizing, args.lead), indent=2)
        elif args.emit == "json":
            text = json.dumps(to_json(target, windows, sizing, args.lead), indent=2)
        else:
            text = report(model, forecast, windows, target, billing, args.lead)
    except (SourceError, ModelError, ScheduleError) as exc:
        return fail(str(exc))
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        return fail(f"{type(exc).__name__}: {exc}")
    return write(text, args.out)


def write(text: str, out: str | None) -> int:
    """Print `text`, or put it at `out` whole: a running service re-reads its forecast
    file when it changes, so it must never see one half written."""
    if not out:
        print(text)
        return 0
    partial = f"{out}.{os.getpid()}.partial"
    try:
        with open(partial, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        os.replace(partial, out)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        return fail(f"cannot write {out}: {exc.strerror or exc}")
    return 0


def to_feed(forecast: Forecast) -> dict[str, object]:
    """The forecast as `worker.telemetry.forecast_feed` reads it."""
    return forecast_feed.document(
        forecast.start, forecast.step, forecast.interval,
        forecast.mean.tolist(), forecast.lower.tolist(), forecast.upper.tolist(),
    )  # fmt: skip


def report(
    model: Fitted,
    forecast: Forecast,
    windows: list[Window],
    target: Target,
    billing: Billing,
    lead_s: int,
) -> str:
    """The forecast's peaks, the schedule and its cost, as Markdown tables."""
    h = model.history
    hours = forecast.step * len(forecast.mean) / 3600
    cycles = "daily and weekly cycles" if model.weekly else "a daily cycle (under a week of data)"
    lines = [
        f"history: {stamp(h.start)} to {stamp(h.end)} UTC, {len(h.counts):,} steps of {h.step} s, "
        f"mean {float(h.rps.mean()):,.2f} req/s",
        f"model: log-linear regression on {model.options.bin_s // 60}-minute bins, trend and "
        f"{cycles}; {forecast.interval:.0%} interval from the history's residuals",
        "",
        f"forecast: {hours:g} h from {stamp(forecast.start)} UTC; the peak of each day:",
        "",
        "| day | peak at (UTC) | expected req/s | interval req/s |",
        "|---|---|---:|---:|",
    ]
    for i, (when, mean, low, high) in enumerate(forecast.peaks()):
        lines.append(f"| {i + 1} | {stamp(when)} | {mean:,.2f} | {low:,.2f} to {high:,.2f} |")
    unit = "provisioned concurrency" if target.kind == "lambda" else "desired count"
    lines += [
        "",
        f"schedule for {target.resource_id} ({unit}), actions {lead_s // 60} min ahead of "
        "their windows:",
        "",
        "| from (UTC) | expected req/s | upper req/s | capacity |",
        "|---|---:|---:|---:|",
    ]
    planned = actions(windows, lead_s, limit=MAX_SCHEDULED_ACTIONS)
    by_start = {a.at + lead_s: a for a in planned}
    for w in windows:
        if w.start in by_start:
            lines.append(
                f"| {stamp(w.start)} | {w.expected_rps:,.2f} | {w.upper_rps:,.2f} | {w.units} |"
            )
    costs = schedule_cost(target.kind, windows, billing)
    prices = billing.price_file()
    lines += [
        "",
        f"cost over the horizon ({prices['region']}, {prices['currency']}, prices of "
        f"{prices['as_of']}; worker cost's model):",
        "",
        "| capacity | cost |",
        "|---|---:|",
        *(f"| {name} | {value:,.2f} |" for name, value in costs.items()),
        "",
        f"{len(planned)} scheduled actions (a scalable target takes {MAX_SCHEDULED_ACTIONS}); "
        "`--emit cfn` or `--emit json` writes them.",
    ]
    return "\n".join(lines)
