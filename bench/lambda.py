"""Lambda mode: `worker lambda` against the official client (awslambdaric), same emulator, same run.

For each concurrency (AWS_LAMBDA_MAX_CONCURRENCY = 1, 8, 64) both runtimes run a no-op
handler behind `worker emulate`; wrk drives the Invoke front. Reported per runtime:
invocations/s, the runtime's CPU per invocation (its whole process tree), the emulator's
CPU per invocation (reported apart: it shares the box), and the runtime tree's total PSS.
A reference runtime runs in the same rounds: `bench/minimal_runtime.py`, our design without
any of a runtime's bookkeeping, to say what limits the ratio. Then a handler that loads a
~100M-parameter torch model at import, at concurrency 16: total PSS of each runtime's tree.

    python -m bench.lambda [--rounds 3] [--seconds 8] [--no-model]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.harness import (
    RESULTS,
    descendants,
    free_port,
    median,
    proc_cpu_seconds,
    publish,
    python,
    results_dir,
    runtime_pid,
    server,
    tree_cpu_seconds,
    tree_pss_mb,
    worker_argv,
    write_script,
    wrk,
)

INVOKE = "/2015-03-31/functions/bench/invocations"
EVENT = b'{"hello":"world"}'
REFERENCE = "minimal runtime (reference)"
RUNTIMES = {
    # name -> (handler, command after `--`, or None for worker lambda)
    "awslambdaric": (
        "bench.apps.noop_sync",
        [python(), "-m", "awslambdaric", "bench.apps.noop_sync"],
    ),
    "worker lambda (sync)": ("bench.apps.noop_sync", None),
    "worker lambda (async)": ("bench.apps.noop", None),
    # What the machine and the emulator allow a Python runtime (bench/minimal_runtime.py).
    REFERENCE: ("bench.apps.noop", [python(), "-m", "bench.minimal_runtime"]),
}


def emulator_argv(
    port: int,
    concurrency: int,
    handler: str,
    command: list[str] | None,
    feed: int = 0,
    event: bytes = EVENT,
) -> list[str]:
    argv = worker_argv(
        "emulate", handler, port, "--concurrency", str(concurrency), "--queue-size", "8192"
    )
    if feed:
        argv += ["--feed", str(feed), "--feed-event", event.decode()]
    return argv + (["--", *command] if command else [])


#: How the emulator is loaded. wrk drives its Invoke front: the front's parsing and writes,
#: and wrk itself, share the box with the runtime. The feed (`worker emulate --feed`) makes
#: the invocations in the emulator: on Lambda the front end runs on other machines, and the
#: environment's cores carry only the runtime and the Runtime API.
LOADS = ("wrk", "feed")


def fed_answers(port: int) -> int:
    """What `worker emulate --feed` has had answered so far (its /_worker/metrics)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_worker/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("worker_emulator_fed_answered_total "):
                return int(line.split()[1])
    raise RuntimeError("the emulator reports no fed answers")


def measure(
    concurrency: int,
    handler: str,
    command: list[str] | None,
    seconds: float,
    script: str,
    load: str = "wrk",
    event: bytes = EVENT,
) -> dict[str, float]:
    port = free_port()
    many = max(8, 2 * concurrency)  # wrk's connections, or the feed's invocations outstanding
    fed = many if load == "feed" else 0
    argv = emulator_argv(port, concurrency, handler, command, fed, event)
    with server(argv, port, "/_worker/ready", env={"AWS_LAMBDA_LOG_LEVEL": "WARNING"}) as emu:
        url = f"http://127.0.0.1:{port}{INVOKE}"
        if load == "wrk":
            wrk(url, pid=emu.pid, seconds=1, connections=many, script=script)  # warm-up
        else:
            time.sleep(1)  # warm-up: the feed runs from the runtime's first /next on
        runtime = runtime_pid(emu.pid)
        emu_cpu0, rt_cpu0 = proc_cpu_seconds(emu.pid), tree_cpu_seconds(runtime)
        extra: dict[str, float] = {}
        if load == "wrk":
            res = wrk(url, pid=emu.pid, seconds=seconds, connections=many, script=script)
            invocations, rate = res.requests, res.rps
            extra = {"wrk_cpu_us": res.client_cpu_us, "non_2xx": res.non_2xx, "p99_ms": res.p99_ms}
        else:
            answered, clock = fed_answers(port), time.monotonic()
            time.sleep(seconds)
            invocations = fed_answers(port) - answered
            rate = invocations / (time.monotonic() - clock)
        emu_cpu, rt_cpu = proc_cpu_seconds(emu.pid) - emu_cpu0, tree_cpu_seconds(runtime) - rt_cpu0
        return {
            "inv_per_s": rate,
            "runtime_cpu_us": rt_cpu / max(1, invocations) * 1e6,
            "emulator_cpu_us": emu_cpu / max(1, invocations) * 1e6,
            "pss_mb": tree_pss_mb(runtime),
            "processes": len(descendants(runtime)),
            **extra,
        }


def model_pss(name: str, command: list[str] | None, concurrency: int = 16) -> dict[str, float]:
    handler = "bench.model_app.handler"
    if command:
        command = [*command[:-1], handler]
    port = free_port()
    argv = emulator_argv(port, concurrency, handler, command)
    with server(argv, port, "/_worker/ready", env={"AWS_LAMBDA_LOG_LEVEL": "WARNING"}) as emu:
        # awslambdaric's processes each import (and load) after the fork: wait until every
        # one of them has answered, by invoking more times than there are processes.
        body = b"{}"
        for _ in range(concurrency * 3):
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}{INVOKE}", data=body, method="POST"
            )
            with urllib.request.urlopen(req, timeout=300) as r:
                r.read()
        runtime = runtime_pid(emu.pid)
        deadline = time.monotonic() + 120
        pss = tree_pss_mb(runtime)
        while time.monotonic() < deadline:  # let late loaders finish their init
            time.sleep(2)
            now = tree_pss_mb(runtime)
            if abs(now - pss) < 5:
                break
            pss = now
        return {"pss_mb": pss, "processes": len(descendants(runtime))}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--levels", default="1,8,64")
    ap.add_argument("--no-model", action="store_true")
    ap.add_argument("--loads", default=",".join(LOADS), help="wrk, feed or both")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    out = results_dir(args.out)
    script = write_script(Path(tempfile.mkdtemp()) / "post.lua", EVENT)
    levels = [int(x) for x in args.levels.split(",")]
    loads = [x for x in args.loads.split(",") if x in LOADS]
    runs: dict[str, dict[str, dict[str, list[dict[str, float]]]]] = {
        load: {str(c): {name: [] for name in RUNTIMES} for c in levels} for load in loads
    }
    total = args.rounds * len(levels) * len(RUNTIMES) * len(loads)
    step = 0
    for r in range(args.rounds):
        for c in levels:
            names = list(RUNTIMES) if r % 2 == 0 else list(RUNTIMES)[::-1]
            for name in names:
                for load in loads:
                    step += 1
                    left = (total - step + 1) * (args.seconds + 3)
                    where = f"round {r + 1}/{args.rounds} concurrency {c:>2} {name:22} {load:4}"
                    print(f"[lambda] {where} (~{left:.0f}s left)", flush=True)
                    handler, command = RUNTIMES[name]
                    sample = measure(c, handler, command, args.seconds, script, load)
                    runs[load][str(c)][name].append(sample)
    summary: dict[str, Any] = {}
    for load, by_level in runs.items():
        levels_out = summary["levels" if load == "wrk" else load] = {}
        for level, by_name in by_level.items():
            row = {}
            for name, samples in by_name.items():
                row[name] = {k: median([s[k] for s in samples]) for k in samples[0]}
            base = row["awslambdaric"]["inv_per_s"]
            for name in row:
                row[name]["ratio"] = row[name]["inv_per_s"] / base
            levels_out[level] = row
    if not args.no_model:
        print("[lambda] model memory: awslambdaric at 16 (16 processes load it)", flush=True)
        theirs = model_pss("awslambdaric", RUNTIMES["awslambdaric"][1])
        print("[lambda] model memory: worker lambda at 16", flush=True)
        ours = model_pss("worker lambda", None)
        summary["model"] = {
            "awslambdaric": theirs,
            "worker lambda": ours,
            "ratio": ours["pss_mb"] / theirs["pss_mb"],
        }
    summary["method"] = {
        "rounds": args.rounds,
        "seconds_per_run": args.seconds,
        "statistic": "median of rounds",
        "load": "wrk, 2 threads, max(8, 2 x concurrency) connections, through worker emulate",
        "feed": "worker emulate --feed max(8, 2 x concurrency): the emulator makes the "
        "invocations, no Invoke front on the path",
    }
    publish(out, "lambda", summary, table(summary))
    return summary


#: The target (issue 3): invocations/s at concurrency 8, as a multiple of awslambdaric's.
TARGET = ("8", "worker lambda (async)", 4.0)

#: Each load's results in the summary, and what its table says of it.
TABLES = (
    ("levels", "Load: wrk through the emulator's Invoke front (the front and wrk share the box)."),
    (
        "feed",
        "Load: the emulator's own (`--feed`): no Invoke front and no load generator on the box, "
        "as on Lambda, whose front end runs on other machines.",
    ),
)


def headroom(levels: dict[str, Any]) -> str:
    """The target against what the reference runtime reached in the same rounds."""
    level, name, target = TARGET
    row = levels.get(level, {})
    if name not in row:
        return ""
    ours, said = row[name], f"At concurrency {level}: target {target:.0f}x, {name} "
    said += f"{ours['ratio']:.2f}x ({ours['runtime_cpu_us']:.1f} µs of runtime CPU per invocation)"
    if REFERENCE in row:
        ref = row[REFERENCE]
        verdict = "allow" if ref["ratio"] >= target else "do not allow"
        said += (
            f"; the minimal runtime {ref['ratio']:.2f}x ({ref['runtime_cpu_us']:.1f} µs, the "
            f"emulator {ref['emulator_cpu_us']:.1f} µs per invocation): the machine and the "
            f"emulator {verdict} {target:.0f}x to a Python runtime of this design"
        )
    return said + ".\n"


def table(summary: dict[str, Any]) -> str:
    lines: list[str] = []
    for key, what in TABLES:
        if key not in summary:
            continue
        fed = key == "feed"
        lines += [
            *([""] if lines else []),
            what,
            "",
            "| concurrency | runtime | inv/s | runtime CPU µs/inv | emulator CPU µs/inv "
            + ("" if fed else "| wrk CPU µs/inv ")
            + "| PSS MB | processes | inv/s vs awslambdaric |",
            "|---:|---|---:|---:|---:|" + ("" if fed else "---:|") + "---:|---:|---:|",
        ]
        for c, row in summary[key].items():
            for name, s in row.items():
                ratio = (
                    "baseline"
                    if name == "awslambdaric"
                    else f"{s['ratio']:.2f}x"
                    if name == REFERENCE
                    else f"**{s['ratio']:.2f}x**"
                )
                wrk_cpu = "" if fed else f"{s.get('wrk_cpu_us', 0):.0f} | "
                lines.append(
                    f"| {c} | {name} | {s['inv_per_s']:,.0f} | {s['runtime_cpu_us']:.0f} | "
                    f"{s['emulator_cpu_us']:.0f} | {wrk_cpu}{s['pss_mb']:.0f} | "
                    f"{s['processes']:.0f} | {ratio} |"
                )
        limit = headroom(summary[key])
        if limit:
            lines += ["", limit.rstrip("\n")]
    if "model" in summary:
        m = summary["model"]
        lines += [
            "",
            "| ~100M-parameter model at import, concurrency 16 | total PSS MB | processes "
            "| PSS vs awslambdaric |",
            "|---|---:|---:|---:|",
            *(
                f"| {name} | {m[name]['pss_mb']:,.0f} | {m[name]['processes']:.0f} | {vs} |"
                for name, vs in (
                    ("awslambdaric", "baseline"),
                    ("worker lambda", f"**{m['ratio']:.2f}**"),
                )
            ),
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
