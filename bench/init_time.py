"""Init as the platform reports it: runtime process start to its first `/next`, `worker lambda`
against the official client (awslambdaric), same emulator, same run.

Both runtimes run a no-op handler (`handlers.echo.handler`) behind `worker emulate`, which
logs "emulating" just before it starts the runtime process and "runtime is ready" when that
runtime first asks for work (init complete, as Lambda counts it). The time between the two
lines' arrival on the emulator's stdout is the runtime's init; it includes the emulator's
fork and exec of the runtime, the same for both. Each round starts each runtime afresh,
in alternating order; the table gives the medians and their ratio.

    python -m bench.init_time [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from typing import Any

from bench.coldstart import compile_sources
from bench.harness import (
    RESULTS,
    ROOT,
    Lines,
    free_port,
    median,
    publish,
    python,
    pythonpath,
    results_dir,
    stop,
)

HANDLER = "handlers.echo.handler"
RUNTIMES = {
    "awslambdaric": ["-m", "awslambdaric", HANDLER],
    "worker lambda": ["-m", "worker", "lambda", HANDLER],
}
#: What the emulator logs just before it starts the runtime, and at the runtime's first poll.
STARTING, READY = b'"emulating"', b'"runtime is ready"'
#: A runtime not ready by then has failed its init.
READY_WITHIN = 60.0


def emulate_argv(port: int, runtime: list[str]) -> list[str]:
    return [
        *(python(), "-m", "worker", "emulate", HANDLER, "--port", str(port)),
        *("--", python(), *runtime),
    ]


def init_seconds(runtime: list[str]) -> float:
    """One cold start of `runtime` under a fresh emulator: seconds from the emulator's
    "emulating" line to its "runtime is ready" line, by this process's clock."""
    env = dict(os.environ, PYTHONPATH=pythonpath())
    for name in [k for k in env if k.startswith("AWS_LAMBDA_")]:
        del env[name]
    proc = subprocess.Popen(
        emulate_argv(free_port(), runtime),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines = Lines(proc)
    try:
        end = time.monotonic() + READY_WITHIN
        started = lines.wait_for(STARTING, end)
        return lines.wait_for(READY, end) - started
    finally:
        stop(proc)
        proc.stdout.close()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    rounds = max(5, args.rounds)
    compile_sources()  # as the image's install leaves our code: no compile at each start
    samples: dict[str, list[float]] = {name: [] for name in RUNTIMES}
    for r in range(rounds):
        names = list(RUNTIMES) if r % 2 == 0 else list(RUNTIMES)[::-1]
        for name in names:
            samples[name].append(init_seconds(RUNTIMES[name]))
            print(f"[init] round {r + 1}/{rounds} {name:14} {samples[name][-1] * 1e3:6.1f} ms")
    summary: dict[str, Any] = {
        name: {"median_ms": median(s) * 1e3, "samples_ms": [x * 1e3 for x in s]}
        for name, s in samples.items()
    }
    summary["ratio"] = summary["worker lambda"]["median_ms"] / summary["awslambdaric"]["median_ms"]
    summary["method"] = {
        "rounds": rounds,
        "handler": HANDLER,
        "statistic": "median of rounds",
        "measure": "worker emulate's 'emulating' line to its 'runtime is ready' line; "
        "bytecode compiled first",
    }
    publish(results_dir(args.out), "init_time", summary, table(summary))
    return summary


def table(summary: dict[str, Any]) -> str:
    rounds = summary["method"]["rounds"]
    lines = [
        f"Init (runtime process start to its first `/next`, under `worker emulate`), "
        f"{HANDLER}, median of {rounds} rounds:",
        "",
        "| runtime | init ms (median) | min | max | vs awslambdaric |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in RUNTIMES:
        s = summary[name]
        vs = "baseline" if name == "awslambdaric" else f"**{summary['ratio']:.2f}x**"
        lines.append(
            f"| {name} | {s['median_ms']:.1f} | {min(s['samples_ms']):.1f} | "
            f"{max(s['samples_ms']):.1f} | {vs} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
