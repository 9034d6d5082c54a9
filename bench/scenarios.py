"""The locust scenarios, headless, against services started here (127.0.0.1).

ApiUser, InvokeUser and MixedUser run against `worker serve bench.scenario_app.handler`,
EmbedUser against `worker serve handlers.embed.handler`; each for a fixed time with a
fixed number of users, with `--csv`. Each scenario runs twice, ours and its baseline:
ApiUser and InvokeUser against the raw ASGI app on uvicorn (bench/asgi_baseline.py, no
framework), MixedUser against ours with one lane (WORKER_MARATHON_SHARE=0), EmbedUser
against ours unbatched (EMBED_MAX_BATCH=1). Reported per scenario and request name:
requests, failures, throttled (429) answers, requests/s, p50/p99, and req/s and p99
beside the baseline's. Locust itself tops out near 4k requests/s per process here: these
are user-facing scenarios, not the throughput benchmark (that is wrk's job in
bench/http.py), so where both sides outrun locust the ratio is near 1.

    python -m bench.scenarios [--seconds 15] [--users 50]
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import (
    RESULTS,
    ROOT,
    free_port,
    publish,
    python,
    results_dir,
    server,
    uvicorn_argv,
    worker_argv,
    worker_metrics,
)

#: A server to run a scenario against: its label, its command line for a port, extra
#: environment and the path that answers once it is ready.
Target = tuple[str, Callable[[int], list[str]], dict[str, str], str]


def ours(
    handler: str, *flags: str, env: dict[str, str] | None = None, label: str = "ours"
) -> Target:
    def argv(port: int) -> list[str]:
        return worker_argv("serve", handler, port, "--workers", "2", *flags)

    return label, argv, env or {}, "/_worker/ready"


UVICORN: Target = ("raw ASGI on uvicorn", uvicorn_argv, {}, "/")

SCENARIOS: dict[str, tuple[Target, Target]] = {
    # user class -> (ours, its baseline)
    "ApiUser": (ours("bench.scenario_app.handler"), UVICORN),
    "InvokeUser": (ours("bench.scenario_app.handler"), UVICORN),
    "MixedUser": (
        ours("bench.scenario_app.handler"),
        ours(
            "bench.scenario_app.handler",
            env={"WORKER_MARATHON_SHARE": "0"},
            label="ours, one lane",
        ),
    ),
    "EmbedUser": (
        ours("handlers.embed.handler", "--concurrency", "64"),
        ours(
            "handlers.embed.handler",
            "--concurrency",
            "64",
            env={"EMBED_MAX_BATCH": "1"},
            label="ours, max_batch_size=1",
        ),
    ),
}


def run(user: str, target: Target, seconds: float, users: int, out: Path) -> list[dict[str, Any]]:
    label, argv_for, env, ready = target
    port = free_port()
    argv = argv_for(port)
    prefix = out / f"locust-{user}-{'base' if label != 'ours' else 'ours'}"
    env = {"AWS_LAMBDA_LOG_LEVEL": "WARNING", **env}
    with server(argv, port, ready, env=env, ready_within=120):
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
        metrics = ""
        if ready == "/_worker/ready":
            metrics = worker_metrics(port)
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
    summary: dict[str, Any] = {"scenarios": {}, "baselines": {}}
    for user, (mine, base) in SCENARIOS.items():
        for side, target in (("scenarios", mine), ("baselines", base)):
            print(
                f"[scenarios] {user} against {target[0]}: {args.users} users for "
                f"{args.seconds:.0f}s",
                flush=True,
            )
            rows = run(user, target, args.seconds, args.users, out)
            if rows and "metrics" in rows[0]:
                metrics = rows.pop(0)["metrics"]
                if side == "scenarios":
                    summary["batch_sizes"] = metrics
            summary[side][user] = {"label": target[0], "rows": rows}
    summary["method"] = {
        "seconds": args.seconds,
        "users": args.users,
        "locust": "headless, FastHttpUser, spawn rate = users",
    }
    publish(out, "scenarios", summary, table(summary))
    return summary


def table(summary: dict[str, Any]) -> str:
    """One row per scenario and request: ours, then the baseline's req/s and p99 and the ratios."""
    lines = [
        "| scenario | request | requests | failures | throttled (429) | req/s | p50 ms | p99 ms "
        "| baseline | baseline req/s, p99 ms | req/s vs baseline | p99 vs baseline |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for user, mine in summary["scenarios"].items():
        base = summary["baselines"][user]
        throttled = _throttled(mine["rows"])
        theirs = {r["name"]: r for r in base["rows"]}
        for r in mine["rows"]:
            if r["name"].endswith("[throttled]"):
                continue
            b = theirs.get(r["name"])
            if b is None:
                compared = "none answered | - | -"
            else:
                compared = (
                    f"{b['rps']:,.0f}, {b['p99_ms']:.0f} | **{r['rps'] / b['rps']:.2f}x** "
                    f"| **{r['p99_ms'] / b['p99_ms']:.2f}x**"
                )
            lines.append(
                f"| {user} | {r['name']} | {r['requests']:,} | {r['failures']} | "
                f"{throttled.get(r['name'], 0):,} | {r['rps']:,.0f} | {r['p50_ms']:.0f} | "
                f"{r['p99_ms']:.0f} | {base['label']} | {compared} |"
            )
    return "\n".join(lines) + "\n"


def _throttled(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {
        r["name"].removesuffix(" [throttled]"): r["requests"]
        for r in rows
        if r["name"].endswith("[throttled]")
    }


if __name__ == "__main__":
    main()
