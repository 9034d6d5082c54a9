"""Cost: three measured profiles on `worker serve`, priced on each platform by `worker cost`.

Each profile is one handler on `worker serve --workers 2` (every other setting its
default) under a steady, moderate load: wrk, 8 connections, each pausing 1 ms between an
answer and its next request (so a cheap handler is not pushed to all the cores allow),
after a warm-up, `--rounds` runs of `--seconds`, medians. Measured per run, on the
runtime's own figures:

- the request rate reached;
- the mean duration: the deltas of `worker_invocation_duration_seconds` sum and count on
  the admin listener (`/_worker/metrics`) across the run;
- CPU per invocation: the server's process tree's CPU (user + system, from /proc) across
  the run ÷ the invocations counted there;
- memory: the tree's PSS after the runs; the memory priced per environment is that PSS
  rounded up to Lambda's 128 MB steps, at least 512 MB (`priced_memory`).

The profiles: the no-op (`handlers.echo.handler`), MiniLM (`handlers.embed.handler`, one
sentence of 6-48 words per request, as `bench/inference.py` sends them) and 50 ms of I/O
(`bench.apps.io_wait_50ms`). Each is then run through `worker.cost.model` at the stated
request rates (peak-to-mean 3) and at its measured rate: a table per profile, the
crossovers, the model's assumptions and a plot of cost vs request rate. cost.json holds the
measured profiles and, for every table, the `worker cost …` command that prints it;
`worker cost --from bench/results/latest --profile NAME` prints the measured rate's.

    python -m bench.cost [--rounds 3] [--seconds 5] [--warmup 2] [--connections 8]
                         [--pause-ms 1] [--profiles no-op,minilm,io-50ms]
                         [--rates 1,10,100,1000] [--peak-to-mean 3]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shlex
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import inference
from bench.harness import (
    RESULTS,
    free_port,
    median,
    publish,
    results_dir,
    server,
    tree_cpu_seconds,
    tree_pss_mb,
    worker_argv,
    worker_metrics,
    write_script,
    wrk,
)
from worker.cost.command import argv_for, plot, report
from worker.cost.model import Profile, crossovers, estimate, load_prices
from worker.telemetry.metrics import total

INVOKE = "/2015-03-31/functions/cost/invocations"
BODY = b'{"hello":"world","items":[1,2,3]}'
#: name -> (handler, what it does)
PROFILES = {
    "no-op": ("handlers.echo.handler", "returns its event"),
    "minilm": ("handlers.embed.handler", "MiniLM embedding of one sentence, batched"),
    "io-50ms": ("bench.apps.io_wait_50ms", "awaits 50 ms of I/O"),
}
RATES = (1.0, 10.0, 100.0, 1000.0)
PEAK_TO_MEAN = 3.0
#: Lambda's memory comes in these steps; below the floor a Python function with its
#: libraries gets too small a share of a vCPU (1,769 MB is one) to run as measured.
LAMBDA_STEP_MB = 128
MEMORY_FLOOR_MB = 512
MEMORY_RULE = (
    f"the tree's PSS rounded up to Lambda's {LAMBDA_STEP_MB} MB steps, at least "
    f"{MEMORY_FLOOR_MB} MB"
)


def priced_memory(pss_mb: float) -> int:
    """The memory one environment is priced at: `MEMORY_RULE`."""
    return max(MEMORY_FLOOR_MB, math.ceil(pss_mb / LAMBDA_STEP_MB) * LAMBDA_STEP_MB)


def load_script(name: str, folder: Path, pause_ms: int) -> str:
    """wrk's script: real sentences for MiniLM (bench/inference.py's), a small event else;
    each connection pauses `pause_ms` between an answer and its next request, so that a
    cheap handler sees a moderate load rather than all that 2 cores allow."""
    if name == "minilm":
        path = inference.lua_script(folder / "embed.lua", inference.sentences())
    else:
        path = write_script(folder / "post.lua", BODY)
    if pause_ms:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"function delay() return {pause_ms} end\n")
    return path


def one_run(port: int, pid: int, seconds: float, connections: int, script: str) -> dict[str, float]:
    """One run of wrk: its rate, and the runtime's duration and CPU per invocation."""
    before, cpu = worker_metrics(port), tree_cpu_seconds(pid)
    res = wrk(f"http://127.0.0.1:{port}{INVOKE}", pid=pid, seconds=seconds,
              connections=connections, threads=2, script=script)  # fmt: skip
    cpu, after = tree_cpu_seconds(pid) - cpu, worker_metrics(port)
    name = "worker_invocation_duration_seconds"
    calls = total(after, f"{name}_count") - total(before, f"{name}_count")
    spent = total(after, f"{name}_sum") - total(before, f"{name}_sum")
    return {
        "rps": res.rps,
        "duration_ms": spent / calls * 1000 if calls else math.nan,
        "cpu_ms": cpu / calls * 1000 if calls else math.nan,
        "invocations": calls,
        "errors": float(res.errors + res.non_2xx + res.function_errors),
    }


def measure(
    name: str, rounds: int, seconds: float, warmup: float, connections: int, pause_ms: int
) -> dict[str, Any]:
    """One profile on `worker serve --workers 2`: the medians of its runs, its memory."""
    handler = PROFILES[name][0]
    port = free_port()
    argv = worker_argv("serve", handler, port, "--workers", "2")
    env = {"WORKER_LOG_LEVEL": "WARNING", "EMBED_DEVICE": "cpu"}
    script = load_script(name, Path(tempfile.mkdtemp(prefix="cost-bench-")), pause_ms)
    runs = []
    with server(argv, port, "/_worker/ready", env=env, ready_within=900) as srv:
        wrk(f"http://127.0.0.1:{port}{INVOKE}", pid=srv.pid, seconds=warmup,
            connections=connections, threads=2, script=script)  # fmt: skip
        for r in range(rounds):
            print(f"[cost] {name} round {r + 1}/{rounds}", flush=True)
            runs.append(one_run(port, srv.pid, seconds, connections, script))
        pss = tree_pss_mb(srv.pid)
    row = {key: median([run[key] for run in runs]) for key in runs[0]}
    # Four significant figures: the command lines carry these exact values.
    return {
        "handler": handler,
        "rps": float(f"{row['rps']:.4g}"),
        "duration_ms": float(f"{row['duration_ms']:.4g}"),
        "cpu_ms": float(f"{row['cpu_ms']:.4g}"),
        "pss_mb": round(pss, 1),
        "memory_mb": float(priced_memory(pss)),
        "errors": row["errors"],
    }


def to_profile(measured: dict[str, Any], model: dict[str, Any]) -> Profile:
    return Profile(
        rps=measured["rps"],
        duration_ms=measured["duration_ms"],
        memory_mb=measured["memory_mb"],
        cpu_ms=measured["cpu_ms"],
        peak_to_mean=model["peak_to_mean"],
        arch=model["arch"],
        utilisation=model["utilisation"],
    )


def command_line(profile: Profile) -> str:
    return shlex.join(["worker", "cost", *argv_for(profile)])


def write(
    out: Path,
    profiles: dict[str, dict[str, Any]],
    *,
    rates: tuple[float, ...] = RATES,
    peak_to_mean: float = PEAK_TO_MEAN,
    method: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Price each measured profile at `rates` and at its own rate; write cost.json, cost.md
    and a plot per profile under `out`; return the summary (cost.json's content)."""
    prices = load_prices()
    model = {"peak_to_mean": peak_to_mean, "arch": "x86_64", "utilisation": 0.7}
    summary: dict[str, Any] = {
        "profiles": {},
        "model": model,
        "rates": list(rates),
        "prices": {"region": prices["region"], "as_of": prices["as_of"]},
        "tables": {},
        "crossovers": {},
        "plots": {},
        "method": method or {},
    }
    for name, measured in profiles.items():
        profile = to_profile(measured, model)
        summary["profiles"][name] = {**measured, "command": command_line(profile)}
        tables = []
        for i, rate in enumerate([*rates, profile.rps]):
            at = profile.at(rate)
            rows = estimate(at, prices)
            tables.append(
                {
                    "rps": rate,
                    "measured": i == len(rates),
                    "command": command_line(at),
                    "output": report(at, prices),
                    "estimates": [vars(e) for e in rows],
                    "cheapest": min(rows, key=lambda e: e.monthly).platform,
                }
            )
        summary["tables"][name] = tables
        summary["crossovers"][name] = [list(c) for c in crossovers(profile, prices)]
        image = f"cost_{name}.png"
        plot(profile, prices, str(out / image), title=name)
        summary["plots"][name] = image
    text = table(summary)
    publish(out, "cost", summary, f"{method_line(summary)}\n\n{text}" if method else text)
    return summary


def _cell(e: dict[str, Any], cheapest: str) -> str:
    text = f"${e['monthly']:,.2f} ({e['units']:,}, {e['utilisation']:.0%})"
    return f"**{text}**" if e["platform"] == cheapest else text


def method_line(summary: dict[str, Any]) -> str:
    """The report's method line: when, where, how measured and how priced."""
    m, model, prices = summary["method"], summary["model"], summary["prices"]
    rates = ", ".join(f"{r:,g}" for r in summary["rates"])
    return (
        f"Method: {m['when']}, {m['machine']}; {m['load']}; {m['measure']}. Priced by "
        f"`worker cost` (`worker/cost/model.py`, {prices['region']} prices as of "
        f"{prices['as_of']}) at {rates} req/s and at each profile's measured rate, "
        f"peak-to-mean {model['peak_to_mean']:g}, {model['arch']}. Durations are this "
        "machine's, with `worker serve` batching MiniLM across requests: Lambda gives an "
        "environment of the priced memory a share of a vCPU (1,769 MB is one) and one request "
        "at a time, so a CPU-bound handler's duration there would be longer. cost.json holds "
        "the measured profiles and each column's `worker cost` command."
    )


def cheapest_by_rate(summary: dict[str, Any], name: str) -> str:
    """The crossovers in words: which platform is cheapest from which rate."""
    crossing = summary["crossovers"][name]
    if not crossing:
        only = summary["tables"][name][0]["cheapest"]
        return f"{only} at every rate from 0.01 to 100,000 req/s."
    shifts = "; ".join(f"from {r:,.2f} req/s {after}" for r, _, after in crossing)
    return f"{crossing[0][1]} at first; {shifts}."


def table(summary: dict[str, Any]) -> str:
    """The measured profiles, then per profile its costs by rate, crossovers, assumptions,
    plot and the commands that print each column."""
    lines = [
        "| profile | handler | req/s reached | mean duration ms | CPU ms/inv | PSS MB "
        "| priced memory MB | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in summary["profiles"].items():
        lines.append(
            f"| {name} | `{m['handler']}` | {m['rps']:,.1f} | {m['duration_ms']:.4g} "
            f"| {m['cpu_ms']:.4g} | {m['pss_mb']:,.0f} | {m['memory_mb']:,.0f} "
            f"| {m['errors']:.0f} |"
        )
    for name, tables in summary["tables"].items():
        heads = [
            f"measured {t['rps']:,.1f} req/s" if t["measured"] else f"{t['rps']:,g} req/s"
            for t in tables
        ]
        lines += [
            "",
            f"### {name}",
            "",
            "| platform | " + " | ".join(heads) + " |",
            "|---|" + "---:|" * len(tables),
        ]
        for i, first in enumerate(tables[0]["estimates"]):
            cells = [_cell(t["estimates"][i], t["cheapest"]) for t in tables]
            lines.append(f"| {first['platform']} ({first['unit']}) | " + " | ".join(cells) + " |")
        lines.append("| cheapest | " + " | ".join(t["cheapest"] for t in tables) + " |")
        lines += [
            "",
            "Cells: $/month (environments, instances or tasks needed; their share busy at the "
            f"mean rate). Cheapest by request rate: {cheapest_by_rate(summary, name)}",
            "",
            f"![cost vs request rate: {name}]({summary['plots'][name]})",
            "",
            "Each column, by hand (`worker cost --from <results> --profile "
            f"{name}` prints the measured one):",
            "",
            "```",
            *(t["command"] for t in tables),
            "```",
            "",
            "Assumptions (as `worker cost` prints them at the measured rate):",
            "",
            *(
                line.replace("  - ", "- ", 1)
                for line in tables[-1]["output"].split("\n")
                if line.startswith("  - ")
            ),
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--pause-ms", type=int, default=1, help="each connection's wait, ms")
    ap.add_argument("--profiles", default=",".join(PROFILES), help="of " + ",".join(PROFILES))
    ap.add_argument("--rates", default=",".join(f"{r:g}" for r in RATES))
    ap.add_argument("--peak-to-mean", type=float, default=PEAK_TO_MEAN)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    names = args.profiles.split(",")
    if unknown := [n for n in names if n not in PROFILES]:
        ap.error(f"unknown profile {', '.join(unknown)}; choose from {','.join(PROFILES)}")
    out = results_dir(args.out)
    measured = {
        n: measure(n, args.rounds, args.seconds, args.warmup, args.connections, args.pause_ms)
        for n in names
    }
    method = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{len(os.sched_getaffinity(0))} cores, {platform.machine()}, "
        f"Python {platform.python_version()}",
        "load": f"`worker serve --workers 2` (defaults otherwise), wrk closed loop, 2 threads, "
        f"{args.connections} connections each pausing {args.pause_ms} ms between an answer "
        f"and its next request, {args.warmup:g} s warm-up, {args.rounds} "
        f"run{'s' if args.rounds != 1 else ''} of "
        f"{args.seconds:g} s, medians",
        "measure": "duration from the runtime's worker_invocation_duration_seconds sum/count "
        "deltas; CPU per invocation: the server tree's CPU delta ÷ those invocations; "
        f"memory priced: {MEMORY_RULE}",
        "rounds": args.rounds,
        "seconds_per_run": args.seconds,
    }
    rates = tuple(float(r) for r in args.rates.split(","))
    return write(out, measured, rates=rates, peak_to_mean=args.peak_to_mean, method=method)


if __name__ == "__main__":
    main()
