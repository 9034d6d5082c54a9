"""`make bench`: run every benchmark with its baseline and write bench/results/latest/report.md.

    python -m bench.run [--quick]

--quick: short rounds (a smoke test that the benchmarks still run; the numbers are
noisier). Each benchmark prints its progress; the report states the method of each table.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import time

from bench import classify, http
from bench.harness import RESULTS, results_dir


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="3 rounds of 2 s: a smoke run")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    out = results_dir(args.out)
    seconds = "2" if args.quick else "10"
    started = time.monotonic()
    print(f"[bench] http: 3 rounds x 4 runs x {seconds}s", flush=True)
    summary = http.main(["--rounds", "3", "--seconds", seconds, "--out", str(out)])
    # `lambda` is a keyword: the module is bench/lambda.py, imported by name.
    lam = importlib.import_module("bench.lambda")
    lam_args = ["--rounds", "3", "--seconds", "2" if args.quick else "8", "--out", str(out)]
    print("[bench] lambda: worker lambda vs awslambdaric at 1, 8, 64, then model memory")
    lam_summary = lam.main(lam_args + (["--no-model"] if args.quick else []))
    print("[bench] classify: extension, twin and orjson + checks over the corpus")
    cls_args = ["--repeat", "3", "--number", "300"] if args.quick else []
    cls_summary = classify.main([*cls_args, "--out", str(out)])
    method = summary["method"]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    report = [
        "# runtime-worker benchmarks",
        "",
        f"Machine: {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}, "
        f"{'quick' if args.quick else 'full'} run, {when}.",
        "",
        "## HTTP: `worker serve` vs a raw ASGI app on uvicorn",
        "",
        f"Method: both servers run 2 worker processes and call the same no-op async handler; "
        f"wrk (2 threads, {method['connections']} connections, "  # type: ignore[index]
        f"{method['seconds_per_run']:.0f} s per run) on the same machine; "  # type: ignore[index]
        f"{method['rounds']} rounds alternating the servers, medians reported; "  # type: ignore[index]
        f"uvicorn {method['uvicorn']} with uvloop and httptools; server CPU per request from "  # type: ignore[index]
        "/proc (user + system, supervisor and workers).",
        "",
        http.table(summary),
        "",
        "## Lambda mode: `worker lambda` vs awslambdaric 4.2.2 under `worker emulate`",
        "",
        f"Method: no-op handler (`bench.apps.noop_sync` for both; `bench.apps.noop`, async, for "
        f"ours too); {lam_summary['method']['load']}; {lam_summary['method']['rounds']} rounds "
        "alternating the runtimes, medians. Runtime CPU is the runtime's whole process tree; the "
        "emulator's CPU is reported apart (it shares the machine). PSS summed over the runtime's "
        "tree from /proc/*/smaps_rollup."
        + (" Model memory is skipped in quick runs." if args.quick else ""),
        "",
        lam.table(lam_summary),
        "",
        "## Classification: compiled scanner vs pure-Python twin vs `orjson.loads` + key checks",
        "",
        f"Method: the test corpus (3 samples per kind), ns per event, median of "
        f"{cls_summary['method']['repeat']} timed repeats of {cls_summary['method']['number']} "
        "calls per sample, then the median per kind.",
        "",
        classify.table(cls_summary),
    ]
    (out / "report.md").write_text("\n".join(report) + "\n")
    print(f"[bench] wrote {out / 'report.md'} in {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
