"""The locust scenarios, headless, against services started here (127.0.0.1).

ApiUser, InvokeUser and MixedUser run against `worker serve bench.scenario_app.handler`,
EmbedUser against `worker serve handlers.embed.handler`; each for a fixed time with a
fixed number of users, with `--csv`. Reported per scenario and request name: requests,
failures, throttled (429) answers, requests/s, p50/p99. Locust itself tops out near 4k
requests/s per process here: these are user-facing scenarios, not the throughput
benchmark (that is wrk's job in bench/http.py).

    python -m bench.scenarios [--seconds 15] [--users 50]
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from bench.harness import RESULTS, ROOT, free_port, publish, python, results_dir, server

SCENARIOS = {
    # user class -> (handler, extra serve flags)
    "ApiUser": ("bench.scenario_app.handler", []),
    "InvokeUser": ("bench.scenario_app.handler", []),
    "MixedUser": ("bench.scenario_app.handler", []),
    "EmbedUser": ("handlers.embed.handler", ["--concurrency", "64"]),
}


def run(user: str, seconds: float, users: int, out: Path) -> list[dict[str, Any]]:
    handler, flags = SCENARIOS[user]
    port = free_port()
    argv = [
        python(),
        "-m",
        "worker",
        "serve",
        handler,
        "--port",
        str(port),
        "--workers",
        "2",
        *flags,
    ]
    prefix = out / f"locust-{user}"
    with server(
        argv, port, "/_worker/ready", env={"AWS_LAMBDA_LOG_LEVEL": "WARNING"}, ready_within=120
    ):
        subprocess.run(
            [
                python(),
                "-m",
                "locust",
                "-f",
                str(ROOT / "bench" / "locustfile.py"),
                "--host",
                f"http://127.0.0.1:{port}",
                "--headless",
                "-u",
                str(users),
                "-r",
                str(users),
                "-t",
                f"{int(seconds)}s",
                "--csv",
                str(prefix),
                "--only-summary",
                user,
            ],
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_worker/metrics", timeout=5) as r:
            metrics = r.read().decode()
    rows: list[dict[str, Any]] = [{"metrics": batch_sizes(metrics)}] if "model=" in metrics else []
    with open(f"{prefix}_stats.csv") as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated":
                continue
            rows.append(
                {
                    "name": row["Name"],
                    "requests": int(row["Request Count"]),
                    "failures": int(row["Failure Count"]),
                    "rps": float(row["Requests/s"]),
                    "p50_ms": float(row["50%"] or "nan"),
                    "p99_ms": float(row["99%"] or "nan"),
                }
            )
    return rows


def batch_sizes(metrics: str) -> dict[str, dict[str, float]]:
    """Per model: the count of batches in each size bucket (from the cumulative histogram)."""
    out: dict[str, dict[str, float]] = {}
    pattern = r'^worker_batch_size_bucket\{model="([^"]+)",le="([^"]+)"\} (\S+)$'
    for model, le, count in re.findall(pattern, metrics, re.M):
        out.setdefault(model, {})[le] = float(count)
    for cumulative in out.values():
        previous = 0.0
        for le in list(cumulative):
            cumulative[le], previous = cumulative[le] - previous, cumulative[le]
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    out = results_dir(args.out)
    summary: dict[str, Any] = {"scenarios": {}}
    for user in SCENARIOS:
        print(f"[scenarios] {user}: {args.users} users for {args.seconds:.0f}s", flush=True)
        rows = run(user, args.seconds, args.users, out)
        if rows and "metrics" in rows[0]:
            summary["batch_sizes"] = rows.pop(0)["metrics"]
        summary["scenarios"][user] = rows
    summary["method"] = {
        "seconds": args.seconds,
        "users": args.users,
        "locust": "headless, FastHttpUser, spawn rate = users",
    }
    publish(out, "scenarios", summary, table(summary))
    return summary


def table(summary: dict[str, Any]) -> str:
    lines = [
        "| scenario | request | requests | failures | throttled (429) | req/s | p50 ms | p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for user, rows in summary["scenarios"].items():
        throttled = {
            r["name"].removesuffix(" [throttled]"): r["requests"]
            for r in rows
            if r["name"].endswith("[throttled]")
        }
        for r in rows:
            if r["name"].endswith("[throttled]"):
                continue
            lines.append(
                f"| {user} | {r['name']} | {r['requests']:,} | {r['failures']} | "
                f"{throttled.get(r['name'], 0):,} | {r['rps']:,.0f} | {r['p50_ms']:.0f} | "
                f"{r['p99_ms']:.0f} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
