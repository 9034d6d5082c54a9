"""Cold starts: time from launch to answers, `worker lambda` against awslambdaric, same emulator.

Each round starts `worker emulate --concurrency 8` afresh around each runtime, in
alternating order, and posts 8 invocations the moment the emulator's Invoke API accepts
connections (they wait in its queue until the runtime polls). From the emulator's
"emulating" line (stamped here as it arrives, just before the emulator starts the runtime
process) to:

- the first answer, for the no-op handler (`handlers.echo.handler`): awslambdaric runs
  8 processes (LMI's model), ours one environment with 8 slots;
- the last of the 8 answers, for MiniLM: ours loads one copy and batches
  (`handlers.embed.handler`); awslambdaric's 8 processes each load their own
  (`bench.embed_lmi`, the same embedding code with a batch of one: LMI's default).

And `import worker` alone, from `python -X importtime` (its cumulative line), median of
the rounds. Every module is compiled to bytecode first, as the image ships it (pip
compiles what it installs), so neither runtime pays for compiling source.

    python -m bench.coldstart [--rounds 5] [--skip-minilm]
"""

from __future__ import annotations

import argparse
import compileall
import concurrent.futures
import os
import socket
import subprocess
import time
import urllib.request
from typing import Any

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

CONCURRENCY = 8
INVOKE = "/2015-03-31/functions/function/invocations"
#: scenario -> runtime -> (handler, the command after `--`, or None for `worker lambda`)
SCENARIOS: dict[str, dict[str, tuple[str, list[str] | None]]] = {
    "no-op": {
        "awslambdaric": ("handlers.echo.handler", ["-m", "awslambdaric", "handlers.echo.handler"]),
        "worker lambda": ("handlers.echo.handler", None),
    },
    "MiniLM": {
        "awslambdaric": (
            "bench.embed_lmi.handler",
            ["-m", "awslambdaric", "bench.embed_lmi.handler"],
        ),
        "worker lambda": ("handlers.embed.handler", None),
    },
}
#: What each scenario's figure is: the first answer, or the last of the 8.
MEASURE = {"no-op": "first", "MiniLM": "last"}
TARGETS = {"no-op": 1.0, "MiniLM": 0.25, "import worker": 25.0}
STARTING = b'"emulating"'
WITHIN = 600.0


def compile_sources() -> None:
    """Bytecode for the repository's code, as the image's install leaves it."""
    for folder in ("worker", "handlers", "bench"):
        compileall.compile_dir(str(ROOT / folder), quiet=1)


def _post(port: int, body: bytes, end: float) -> float:
    """POST an invocation as soon as the port accepts; the time its answer arrived."""
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.001)
    req = urllib.request.Request(f"http://127.0.0.1:{port}{INVOKE}", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=max(1.0, end - time.monotonic())) as r:
        r.read()
        if r.status != 200:
            raise RuntimeError(f"invoke answered {r.status}")
    return time.monotonic()


def one_start(handler: str, command: list[str] | None) -> list[float]:
    """Seconds from "emulating" to each of the 8 answers, in order of arrival."""
    port = free_port()
    argv = [python(), "-m", "worker", "emulate", handler, "--port", str(port)]
    argv += ["--concurrency", str(CONCURRENCY), "--timeout", str(int(WITHIN))]
    if command:
        argv += ["--", python(), *command]
    env = dict(os.environ, PYTHONPATH=pythonpath(), AWS_LAMBDA_LOG_LEVEL="WARNING")
    for name in [k for k in env if k.startswith("AWS_LAMBDA_") and k != "AWS_LAMBDA_LOG_LEVEL"]:
        del env[name]
    end = time.monotonic() + WITHIN
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    lines = Lines(proc)
    try:
        with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
            body = b'{"text": "a cold start answers"}'
            calls = [pool.submit(_post, port, body, end) for _ in range(CONCURRENCY)]
            started = lines.wait_for(STARTING, end)
            answers = sorted(c.result() for c in calls)
        return [t - started for t in answers]
    finally:
        stop(proc)
        proc.stdout.close()


def import_worker_ms() -> float:
    done = subprocess.run(
        [python(), "-X", "importtime", "-c", "import worker"],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=pythonpath()),
        capture_output=True,
        text=True,
        check=True,
    )
    last = [line for line in done.stderr.splitlines() if line.rstrip().endswith("| worker")]
    return int(last[-1].split("|")[1]) / 1000


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--skip-minilm", action="store_true", help="the no-op scenario only")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    rounds = max(5, args.rounds)
    compile_sources()
    scenarios = [s for s in SCENARIOS if not (args.skip_minilm and s == "MiniLM")]
    summary: dict[str, Any] = {"scenarios": {}}
    for scenario in scenarios:
        runtimes = SCENARIOS[scenario]
        samples: dict[str, list[float]] = {name: [] for name in runtimes}
        for r in range(rounds):
            names = list(runtimes) if r % 2 == 0 else list(runtimes)[::-1]
            for name in names:
                handler, command = runtimes[name]
                answers = one_start(handler, command)
                figure = answers[0] if MEASURE[scenario] == "first" else answers[-1]
                samples[name].append(figure * 1000)
                print(f"[coldstart] {scenario} {r + 1}/{rounds} {name:14} {figure * 1e3:8.1f} ms")
        ours, theirs = median(samples["worker lambda"]), median(samples["awslambdaric"])
        summary["scenarios"][scenario] = {
            "measure": MEASURE[scenario],
            "samples_ms": samples,
            "median_ms": {name: median(s) for name, s in samples.items()},
            "ratio": ours / theirs,
            "target": TARGETS[scenario],
        }
    imports = [import_worker_ms() for _ in range(rounds)]
    summary["import_worker_ms"] = {"median": median(imports), "samples": imports}
    summary["method"] = {
        "rounds": rounds,
        "concurrency": CONCURRENCY,
        "statistic": "median of rounds",
        "measure": "worker emulate's 'emulating' line to the first (no-op) or last (MiniLM) "
        "of 8 answers, the invocations posted at launch; bytecode compiled first",
    }
    publish(results_dir(args.out), "coldstart", summary, table(summary))
    return summary


def table(summary: dict[str, Any]) -> str:
    m = summary["method"]
    lines = [
        f"Cold start, {m['concurrency']} invocations posted at launch, median of {m['rounds']} "
        "rounds (bytecode compiled, as the image ships it):",
        "",
        "| handler | answer | awslambdaric ms | worker lambda ms | ratio | target |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for scenario, s in summary["scenarios"].items():
        which = "first of 8" if s["measure"] == "first" else "all 8"
        med = s["median_ms"]
        lines.append(
            f"| {scenario} | {which} | {med['awslambdaric']:.1f} | {med['worker lambda']:.1f} | "
            f"**{s['ratio']:.2f}x** | ≤ {s['target']:.2f}x |"
        )
    imp = summary["import_worker_ms"]
    lines += ["", f"`import worker`: **{imp['median']:.1f} ms** (median; target ≤ 25 ms)."]
    return "\n".join(lines) + "\n"


def headline(summary: dict[str, Any]) -> str:
    """The report headline's rows: each scenario's ratio against awslambdaric."""
    rows = []
    for scenario, s in summary["scenarios"].items():
        which = "first answer of 8" if s["measure"] == "first" else "all 8 answered"
        med = s["median_ms"]
        rows.append(
            f"| cold start, {scenario}, {which} | {med['worker lambda']:,.0f} ms "
            f"| awslambdaric {med['awslambdaric']:,.0f} ms | **{s['ratio']:.2f}x** |"
        )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    main()
