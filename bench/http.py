"""HTTP throughput: `worker serve` against a raw ASGI app on uvicorn, in the same run.

Both run 2 processes and call the same no-op async handler (bench/apps.py). wrk drives
64 connections; rounds alternate between the servers so drift on this shared box hits
both alike. Reports medians of the rounds, the ratios, p50/p99 and server CPU per request.

A third case calls a sync no-op handler on the Invoke path: `worker serve` as it runs one
(on the loop, since its calls never block: `worker/placement.py`) against itself with every
sync handler kept on a thread (`WORKER_SYNC_ON_LOOP_MS=0`), the thread pool's cost.

Two reference servers run in the same rounds on the Invoke path, to say what limits the
ratio: `bench/ceiling.c` (a C epoll server that does next to nothing: what this machine
allows with wrk on the same cores) and `bench/minimal_server.py` (our design, a Protocol
with httptools and a queue hop to slot tasks, without any of a runtime's bookkeeping).

    python -m bench.http [--rounds 3] [--seconds 10]
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import shutil
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httptools
import uvicorn

from bench.harness import (
    RESULTS,
    ROOT,
    WrkResult,
    free_port,
    median,
    publish,
    python,
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
PROXY = "/hello?name=bench"
#: The reference servers (Invoke path only), and their labels in the table.
REFERENCES = {
    "minimal": "minimal Protocol + queue hop (reference)",
    "c": "C epoll server (reference)",
}
LABELS = {
    "ours": "worker serve",
    "uvicorn": "raw ASGI on uvicorn",
    **REFERENCES,
    "ours_sync": "worker serve, sync handler",
    "threads": "worker serve, sync handler on threads (`WORKER_SYNC_ON_LOOP_MS=0`)",
}
#: Each case's pair: (ours, its baseline).
PAIRS = {
    "invoke": ("ours", "uvicorn"),
    "proxy": ("ours", "uvicorn"),
    "sync": ("ours_sync", "threads"),
}


def reference_argvs(port_of: dict[str, int], build: Path) -> dict[str, list[str]]:
    """The reference servers' command lines; the C one only where a compiler is found."""
    argvs = {"minimal": [python(), "-m", "bench.minimal_server", str(port_of["minimal"]), "2"]}
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        print("[http] no C compiler: the C reference row is left out", flush=True)
        return argvs
    binary = build / "ceiling"
    subprocess.run([cc, "-O2", "-o", str(binary), str(ROOT / "bench" / "ceiling.c")], check=True)
    argvs["c"] = [str(binary), str(port_of["c"]), "2"]
    return argvs


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    out = results_dir(args.out)
    script = write_script(Path(tempfile.mkdtemp()) / "post.lua", BODY)

    ours_port, base_port, sync_port, threads_port = (free_port() for _ in range(4))

    def serve(handler: str, port: int) -> list[str]:
        return worker_argv("serve", handler, port, "--workers", "2", "--concurrency", "64",
                           # Room for every connection however the kernel spreads them: the
                           # baseline has no admission bound, so neither side may answer 429.
                           "--queue-size", "1024")  # fmt: skip

    base = uvicorn_argv(base_port)
    cases = {
        "invoke": (INVOKE, script),
        "proxy": (PROXY, None),
        "sync": (INVOKE, script),
    }
    ref_ports = {name: free_port() for name in REFERENCES}
    refs = reference_argvs(ref_ports, Path(tempfile.mkdtemp()))
    results: dict[str, dict[str, list[WrkResult]]] = {
        case: {name: [] for name in PAIRS[case]} for case in cases
    }
    results["invoke"].update({name: [] for name in refs})
    with contextlib.ExitStack() as stack:
        quiet = {"WORKER_LOG_LEVEL": "WARNING"}
        p_ours = stack.enter_context(
            server(serve("bench.apps.noop", ours_port), ours_port, "/_worker/ready", env=quiet)
        )
        p_base = stack.enter_context(server(base, base_port, "/"))
        p_sync = stack.enter_context(
            server(serve("bench.apps.noop_sync", sync_port), sync_port, "/_worker/ready", env=quiet)
        )
        p_threads = stack.enter_context(
            server(
                serve("bench.apps.noop_sync", threads_port),
                threads_port,
                "/_worker/ready",
                env={**quiet, "WORKER_SYNC_ON_LOOP_MS": "0"},
            )
        )
        targets = {
            "ours": (ours_port, p_ours.pid),
            "uvicorn": (base_port, p_base.pid),
            "ours_sync": (sync_port, p_sync.pid),
            "threads": (threads_port, p_threads.pid),
        }
        for name, argv in refs.items():
            proc = stack.enter_context(server(argv, ref_ports[name], "/"))
            targets[name] = (ref_ports[name], proc.pid)
        for port, pid in targets.values():  # warm them up
            wrk(f"http://127.0.0.1:{port}{INVOKE}", pid=pid, seconds=1, script=script)
        total = args.rounds * sum(len(results[case]) for case in cases)
        step = 0
        for r in range(args.rounds):
            for case, (path, lua) in cases.items():
                runs = [(n, t) for n, t in targets.items() if n in results[case]]
                order = runs if r % 2 == 0 else runs[::-1]
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
        ours, base = (row[name] for name in PAIRS[case])
        row["ratio_rps"] = ours["rps"] / base["rps"]  # type: ignore[index]
        row["ratio_p99"] = ours["p99_ms"] / base["p99_ms"]  # type: ignore[index]
        row["reference_ratios"] = {
            name: row[name]["rps"] / base["rps"]  # type: ignore[index]
            for name in REFERENCES
            if name in row
        }
        summary[case] = row
    return summary


#: The targets (issue 2), each with the line that says what limits the ratio.
TARGETS = {"invoke": 2.0, "proxy": 1.5}


def headroom(row: dict[str, Any], target: float) -> str:
    """The target against what the reference servers reached in the same rounds."""
    refs = row.get("reference_ratios", {})
    said = [f"target {target:.1f}x, worker serve {row['ratio_rps']:.2f}x"]
    if "c" in refs:
        verdict = "allows" if refs["c"] >= target else "does not allow"
        said.append(
            f"the C server {refs['c']:.2f}x (server {row['c']['cpu_us_per_request']:.1f} µs, "
            f"wrk {row['c']['wrk_cpu_us_per_request']:.1f} µs per request): the machine "
            f"{verdict} it"
        )
    if "minimal" in refs:
        verdict = (
            "the runtime's per-request work, not the design"
            if refs["minimal"] >= target
            else "the design itself"
        )
        said.append(
            f"the minimal Protocol {refs['minimal']:.2f}x "
            f"({row['minimal']['cpu_us_per_request']:.1f} µs per request against our "
            f"{row['ours']['cpu_us_per_request']:.1f}): what stands in the way is {verdict}"
        )
    return "; ".join(said)


def table(summary: dict[str, object]) -> str:
    lines = [
        "| path | server | req/s | p50 ms | p99 ms | CPU µs/req | wrk CPU µs/req | non-2xx "
        "| req/s vs baseline |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case, (ours, base) in PAIRS.items():
        row: dict[str, Any] = summary[case]  # type: ignore[assignment]
        for name, label in LABELS.items():
            if name not in row:
                continue
            s = row[name]
            if name == ours:
                ratio = f"**{row['ratio_rps']:.2f}x**"
            elif name == base:
                ratio = "baseline"
            else:
                ratio = f"{row['reference_ratios'][name]:.2f}x"
            lines.append(
                f"| {case} | {label} | {s['rps']:,.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | "
                f"{s['cpu_us_per_request']:.1f} | {s.get('wrk_cpu_us_per_request', 0):.1f} | "
                f"{s['non_2xx']} | {ratio} |"
            )
    lines.append("")
    for case, target in TARGETS.items():
        lines.append(f"- {case}: {headroom(summary[case], target)}.")  # type: ignore[arg-type]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
