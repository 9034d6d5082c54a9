"""HTTP throughput: `worker serve` against a raw ASGI app on uvicorn, in the same run.

Both run 2 processes and call the same no-op async handler (bench/apps.py). wrk drives
64 connections; rounds alternate between the servers so drift on this shared box hits
both alike. Reports medians of the rounds, the ratios, p50/p99 and server CPU per request.

    python -m bench.http [--rounds 3] [--seconds 10]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httptools
import uvicorn

from bench.harness import (
    RESULTS,
    WrkResult,
    budget,
    free_port,
    median,
    publish,
    results_dir,
    server,
    uvicorn_argv,
    worker_argv,
    write_script,
    wrk,
)
from worker.config import cores

INVOKE = "/2015-03-31/functions/bench/invocations"
BODY = b'{"hello":"world","items":[1,2,3],"nested":{"k":"v"}}'


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    out = results_dir(args.out)
    script = write_script(Path(tempfile.mkdtemp()) / "post.lua", BODY)

    ours_port, base_port = free_port(), free_port()
    ours = worker_argv("serve", "bench.apps.noop", ours_port, "--workers", "2",
                       "--concurrency", "64",
                       # Room for every connection however the kernel spreads them: the
                       # baseline has no admission bound, so neither side may answer 429.
                       "--queue-size", "1024")  # fmt: skip
    base = uvicorn_argv(base_port)
    cases = {
        "invoke": (INVOKE, script),
        "proxy": ("/hello?name=bench", None),
    }
    results: dict[str, dict[str, list[WrkResult]]] = {
        case: {"ours": [], "uvicorn": []} for case in cases
    }
    with (
        server(ours, ours_port, "/_worker/ready", env={"WORKER_LOG_LEVEL": "WARNING"}) as p_ours,
        server(base, base_port, "/") as p_base,
    ):
        targets = {"ours": (ours_port, p_ours.pid), "uvicorn": (base_port, p_base.pid)}
        for port, pid in targets.values():  # warm both up
            wrk(f"http://127.0.0.1:{port}{INVOKE}", pid=pid, seconds=1, script=script)
        total = args.rounds * len(cases) * len(targets)
        step = 0
        for r in range(args.rounds):
            for case, (path, lua) in cases.items():
                order = list(targets.items()) if r % 2 == 0 else list(targets.items())[::-1]
                for name, (port, pid) in order:
                    step += 1
                    left = (total - step + 1) * args.seconds
                    print(
                        f"[http] round {r + 1}/{args.rounds} {case:6} {name:7} (~{left:.0f}s left)",
                        flush=True,
                    )
                    res = wrk(f"http://127.0.0.1:{port}{path}", pid=pid, seconds=args.seconds,
                              connections=args.connections, script=lua)  # fmt: skip
                    results[case][name].append(res)
    summary = summarise(results)
    summary["method"] = {
        "rounds": args.rounds,
        "seconds_per_run": args.seconds,
        "connections": args.connections,
        "wrk_threads": 2,
        "processes_each": 2,
        "cores": cores(),
        "python": platform.python_version(),
        "uvicorn": uvicorn.__version__,
        "httptools": httptools.__version__,
        "statistic": "median of rounds",
    }
    publish(out, "http", summary, table(summary))
    return summary


def summarise(results: dict[str, dict[str, list[WrkResult]]]) -> dict[str, object]:
    summary: dict[str, object] = {}
    for case, by_server in results.items():
        row: dict[str, object] = {}
        for name, runs in by_server.items():
            row[name] = {
                "rps": median([r.rps for r in runs]),
                "p50_ms": median([r.p50_ms for r in runs]),
                "p99_ms": median([r.p99_ms for r in runs]),
                "cpu_us_per_request": median([r.cpu_us for r in runs]),
                "wrk_cpu_us_per_request": median([r.client_cpu_us for r in runs]),
                "non_2xx": sum(r.non_2xx for r in runs),
                "socket_errors": sum(r.errors for r in runs),
                "runs": [asdict(r) for r in runs],
            }
        ours, base = row["ours"], row["uvicorn"]
        row["ratio_rps"] = ours["rps"] / base["rps"]  # type: ignore[index]
        row["ratio_p99"] = ours["p99_ms"] / base["p99_ms"]  # type: ignore[index]
        summary[case] = row
    return summary


#: The targets (issue 2): the ceiling line says what the box leaves the server at them.
TARGETS = {"invoke": 2.0, "proxy": 1.5}


def ceiling(row: dict[str, Any], target: float) -> str:
    """What a server would have to spend per request to reach `target` x the baseline,
    on this box, with wrk taking its measured share of the cores."""
    rate = target * row["uvicorn"]["rps"]
    wrk_cores, left_us = budget(rate, row["ours"]["wrk_cpu_us_per_request"])
    return (
        f"{target:.1f}x the baseline is {rate:,.0f} req/s: wrk alone would take "
        f"{wrk_cores:.2f} of the {cores()} cores, leaving {left_us:.1f} µs of CPU per request "
        f"for the server (it spends {row['ours']['cpu_us_per_request']:.1f})"
    )


def table(summary: dict[str, object]) -> str:
    lines = [
        "| path | server | req/s | p50 ms | p99 ms | CPU µs/req | wrk CPU µs/req | non-2xx "
        "| req/s vs baseline |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in ("invoke", "proxy"):
        row = summary[case]
        for name in ("ours", "uvicorn"):
            s = row[name]  # type: ignore[index]
            ratio = f"**{row['ratio_rps']:.2f}x**" if name == "ours" else "baseline"  # type: ignore[index]
            label = "worker serve" if name == "ours" else "raw ASGI on uvicorn"
            lines.append(
                f"| {case} | {label} | {s['rps']:,.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | "
                f"{s['cpu_us_per_request']:.1f} | {s.get('wrk_cpu_us_per_request', 0):.1f} | "
                f"{s['non_2xx']} | {ratio} |"
            )
    lines.append("")
    for case, target in TARGETS.items():
        row = summary[case]
        if "wrk_cpu_us_per_request" in row["ours"]:  # type: ignore[index, operator]
            lines.append(f"- {case}: {ceiling(row, target)}.")  # type: ignore[arg-type]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
