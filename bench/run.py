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

from bench import classify, http, inference, sqs
from bench.harness import RESULTS, results_dir


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="3 rounds of 2 s: a smoke run")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    out = results_dir(args.out)
    seconds = "2" if args.quick else "10"
    rounds = "1" if args.quick else "3"
    started = time.monotonic()
    print(f"[bench] http: {rounds} rounds x 4 runs x {seconds}s", flush=True)
    summary = http.main(["--rounds", rounds, "--seconds", seconds, "--out", str(out)])
    # `lambda` is a keyword: the module is bench/lambda.py, imported by name.
    lam = importlib.import_module("bench.lambda")
    lam_args = ["--rounds", rounds, "--seconds", "2" if args.quick else "8", "--out", str(out)]
    print("[bench] lambda: worker lambda vs awslambdaric at 1, 8, 64, then model memory")
    lam_summary = lam.main(lam_args + (["--no-model"] if args.quick else []))
    print("[bench] classify: extension, twin and orjson + checks over the corpus")
    cls_args = ["--repeat", "3", "--number", "300"] if args.quick else []
    cls_summary = classify.main([*cls_args, "--out", str(out)])
    print("[bench] inference: MiniLM, ours vs awslambdaric (LMI default) vs ours unbatched")
    inf_args = (
        ["--rounds", "1", "--seconds", "3", "--levels", "1,8", "--memory-level", "4"]
        if args.quick
        else []
    )
    inf_summary = inference.main([*inf_args, "--out", str(out)])
    print("[bench] sqs: worker sqs vs a boto3 loop on one moto server")
    sqs_args = ["--rounds", "1", "--count", "500"] if args.quick else []
    sqs_summary = sqs.main([*sqs_args, "--out", str(out)])
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
        "",
        "## Inference: MiniLM embeddings, ours vs LMI's default Python runtime",
        "",
        f"Method: `handlers.embed` behind `worker emulate` at each concurrency N; (a) ours "
        "(`worker lambda`, the model loaded once, batched), (b) awslambdaric with "
        f"AWS_LAMBDA_MAX_CONCURRENCY=N processes ({inf_summary['method']['lmi_processes']}), "
        "each loading the model at import, (c) ours with max_batch_size=1; "
        f"{inf_summary['method']['load']}; {inf_summary['method']['rounds']} rounds of "
        f"{inf_summary['method']['seconds_per_run']:.0f} s alternating the runtimes, medians; "
        f"device {inf_summary['method']['device']}. PSS summed over the runtime's tree.",
        "",
        inference.table(inf_summary),
        "",
        "## SQS: `worker sqs` vs a plain boto3 consumer loop",
        "",
        f"Method: {sqs_summary['count']} messages per round on one moto server, each consumer "
        "empties a fresh queue (received and deleted); "
        f"{sqs_summary['method']['rounds']} rounds alternating, medians. Moto's CPU is "
        "reported as cores busy while the consumer ran.",
        "",
        sqs.table(sqs_summary),
    ]
    (out / "report.md").write_text("\n".join(report) + "\n")
    print(f"[bench] wrote {out / 'report.md'} in {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
