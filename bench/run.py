"""`make bench`: run every benchmark with its baseline and write bench/results/latest/report.md.

    python -m bench.run [--quick]
    python -m bench.run --render    (rewrite the report from the results already there)

--quick: short rounds (a smoke test that the benchmarks still run; the numbers are
noisier). Each benchmark prints its progress; the report states the method of each table.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from bench import classify, http, inference, lanes, overload, plots, scenarios, sqs
from bench.harness import RESULTS, results_dir

#: Each benchmark's share of the run, for the progress lines (rough seconds: quick, full).
STEPS = {
    "http": (12, 150),
    "lambda": (45, 840),
    "classify": (6, 60),
    "inference": (32, 780),
    "sqs": (6, 60),
    "overload": (14, 90),
    "lanes": (25, 80),
    "scenarios": (32, 90),
}


def progress(name: str, quick: bool, started: float) -> None:
    names = list(STEPS)
    left = sum(STEPS[n][0 if quick else 1] for n in names[names.index(name) :])
    print(
        f"[bench] {names.index(name) + 1}/{len(names)} {name} "
        f"({time.monotonic() - started:.0f}s so far, about {left}s left)",
        flush=True,
    )


#: The benchmarks' result files, in the report's order (each NAME.json under the results).
PARTS = ("http", "lambda", "classify", "inference", "sqs", "overload", "lanes", "scenarios")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="one short round of each: a smoke run")
    ap.add_argument(
        "--render",
        action="store_true",
        help="run nothing: rewrite report.md and the plots from the results already there",
    )
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    out = results_dir(args.out)
    started = time.monotonic()
    if args.render:
        results = {name: json.loads((out / f"{name}.json").read_text()) for name in PARTS}
        run = json.loads((out / "run.json").read_text())
    else:
        results = run_all(out, args.quick, started)
        run = {"quick": args.quick, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        (out / "run.json").write_text(json.dumps(run))
    write_report(out, results, run["quick"], run["when"])
    print(f"[bench] wrote {out / 'report.md'} in {time.monotonic() - started:.0f}s")


def run_all(out: Path, quick: bool, started: float) -> dict[str, Any]:
    """Every benchmark, with its baseline, in one run: their summaries by name."""
    seconds = "2" if quick else "10"
    rounds = "1" if quick else "3"
    progress("http", quick, started)
    summary = http.main(["--rounds", rounds, "--seconds", seconds, "--out", str(out)])
    # `lambda` is a keyword: the module is bench/lambda.py, imported by name.
    lam = importlib.import_module("bench.lambda")
    lam_args = ["--rounds", rounds, "--seconds", "1" if quick else "8", "--out", str(out)]
    progress("lambda", quick, started)
    lam_summary = lam.main(lam_args + (["--no-model"] if quick else []))
    progress("classify", quick, started)
    cls_args = ["--repeat", "3", "--number", "300"] if quick else []
    cls_summary = classify.main([*cls_args, "--out", str(out)])
    progress("inference", quick, started)
    inf_args = (
        # One level: every model load costs seconds here (LMI's baseline loads one per slot).
        ["--rounds", "1", "--seconds", "1", "--levels", "4", "--memory-level", "2"] if quick else []
    )
    inf_summary = inference.main([*inf_args, "--out", str(out)])
    progress("sqs", quick, started)
    sqs_args = ["--rounds", "1", "--count", "200"] if quick else []
    sqs_summary = sqs.main([*sqs_args, "--out", str(out)])
    progress("overload", quick, started)
    ovl_args = ["--seconds", "2", "--levels", "0.5,3"] if quick else []
    ovl_summary = overload.main([*ovl_args, "--out", str(out)])
    progress("lanes", quick, started)
    lanes_args = ["--rounds", "1", "--seconds", "1"] if quick else []
    lanes_summary = lanes.main([*lanes_args, "--out", str(out)])
    progress("scenarios", quick, started)
    scn_args = ["--seconds", "2", "--users", "10"] if quick else []  # 1 s: no stats
    scn_summary = scenarios.main([*scn_args, "--out", str(out)])
    return dict(
        zip(
            PARTS,
            (summary, lam_summary, cls_summary, inf_summary, sqs_summary, ovl_summary,
             lanes_summary, scn_summary),
            strict=True,
        )
    )  # fmt: skip


def write_report(out: Path, results: dict[str, Any], quick: bool, when: str) -> None:
    """report.md and the plots, from the benchmarks' summaries."""
    summary, lam_summary, cls_summary, inf_summary = (results[n] for n in PARTS[:4])
    sqs_summary, ovl_summary, lanes_summary, scn_summary = (results[n] for n in PARTS[4:])
    lam = importlib.import_module("bench.lambda")
    made = plots.main(["--out", str(out)])
    method = summary["method"]
    report = [
        "# runtime-worker benchmarks",
        "",
        f"Machine: {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}, "
        f"{'quick' if quick else 'full'} run, {when}.",
        "",
        "## HTTP: `worker serve` vs a raw ASGI app on uvicorn",
        "",
        f"Method: both servers run 2 worker processes and call the same no-op async handler; "
        f"wrk (2 threads, {method['connections']} connections, "
        f"{method['seconds_per_run']:.0f} s per run) on the same machine; "
        f"{method['rounds']} rounds alternating the servers, medians reported; "
        f"uvicorn {method['uvicorn']} with uvloop and httptools; server CPU per request from "
        "/proc (user + system, supervisor and workers). Two reference servers run in the same "
        "rounds on the Invoke path to say what limits the ratio: `bench/ceiling.c`, a C epoll "
        "server that does next to nothing (what the machine allows with wrk on it), and "
        "`bench/minimal_server.py`, the design (a Protocol with httptools and a queue hop to "
        "slot tasks) without a runtime's bookkeeping. The `sync` rows call a sync no-op "
        "handler: `worker serve` as it runs one (on the loop, since its calls never block) "
        "against itself with every sync handler on a thread (`WORKER_SYNC_ON_LOOP_MS=0`).",
        "",
        http.table(summary),
        "",
        "## Lambda mode: `worker lambda` vs awslambdaric 4.2.2 under `worker emulate`",
        "",
        f"Method: no-op handler (`bench.apps.noop_sync` for both; `bench.apps.noop`, async, for "
        f"ours too); two loads in the same rounds: {lam_summary['method']['load']}, and "
        f"{lam_summary['method'].get('feed', 'no feed')}; {lam_summary['method']['rounds']} rounds "
        "alternating the runtimes, medians; `bench/minimal_runtime.py`, the design without a "
        "runtime's bookkeeping, runs in the same rounds as a reference. Runtime CPU is the "
        "runtime's whole process tree; the "
        "emulator's CPU is reported apart (it shares the machine). PSS summed over the runtime's "
        "tree from /proc/*/smaps_rollup."
        + (" Model memory is skipped in quick runs." if quick else ""),
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
        f"Method: {sqs_summary['count']} messages per round on one moto server, fed to a "
        f"fresh queue as a steady flow (backlog kept at {sqs_summary['backlog']} to "
        f"{2 * sqs_summary['backlog']} messages, the producer's reads paced by the drain "
        "rate), timed from the first message sent to the queue empty (every message "
        "received and deleted), the consumer started and ready before; "
        f"{sqs_summary['method']['rounds']} rounds alternating, medians. Moto's CPU is "
        "reported as cores busy while the flow ran, and per message: both consumers are "
        "bound by moto (one process, one lock), so the ratio follows what moto charges each "
        "per message: its calls (ours: one receive and one DeleteMessageBatch per 10 at "
        "best; the loop: one receive and ten DeleteMessage), counted in the calls column "
        "(ours from its metrics, the loop's own count), and the queue it leaves behind "
        "(moto's receive scans the whole queue for every message it hands out).",
        "",
        sqs.table(sqs_summary),
        "",
        "## Overload: offered load past capacity",
        "",
        f"Method: {ovl_summary['method']['server']}; capacity from "
        f"{ovl_summary['method']['capacity']}; then an "
        f"{ovl_summary['method']['generator']}, "
        f"{ovl_summary['method']['seconds_per_level']:.0f} s per level; latencies as the client "
        "saw them; RSS of the server's processes sampled every 0.25 s.",
        "",
        overload.table(ovl_summary),
        "",
        "## Lanes: sprinters during a marathon flood",
        "",
        f"Method: {lanes_summary['method']['load']}; {lanes_summary['method']['rounds']} rounds "
        f"of {lanes_summary['method']['seconds_per_run']:.0f} s, medians.",
        "",
        lanes.table(lanes_summary),
        "",
        "## Locust scenarios (user-facing, not a throughput benchmark)",
        "",
        f"Method: {scn_summary['method']['locust']}, {scn_summary['method']['users']} users, "
        f"{scn_summary['method']['seconds']:.0f} s each; 429s counted apart as throttled.",
        "",
        scenarios.table(scn_summary),
        "",
        "## Plots",
        "",
        *(f"![{name}]({name})" for name in made),
    ]
    headline_rows = headline(
        summary, lam_summary, cls_summary, inf_summary, sqs_summary, ovl_summary, lanes_summary
    )
    report[4:4] = ["## Headline: ours vs each baseline, same run", "", headline_rows, ""]
    (out / "report.md").write_text("\n".join(report) + "\n")


def headline(
    http_s: dict[str, Any],
    lam: dict[str, Any],
    cls: dict[str, Any],
    inf: dict[str, Any],
    sq: dict[str, Any],
    ovl: dict[str, Any],
    ln: dict[str, Any],
) -> str:
    """One row per claim: the figure, its baseline, the ratio (ours / baseline: above 1 is
    more for throughput, below 1 is less for time, memory and CPU)."""
    rows = ["| what | ours | baseline | ratio |", "|---|---:|---|---:|"]
    for key, label in (("invoke", "Invoke API req/s"), ("proxy", "proxy mode req/s")):
        row = http_s[key]
        rows.append(
            f"| HTTP {label} (no-op) | {row['ours']['rps']:,.0f} | raw ASGI on uvicorn "
            f"{row['uvicorn']['rps']:,.0f} | **{row['ratio_rps']:.2f}x** |"
        )
        ours_cpu, base_cpu = row["ours"]["cpu_us_per_request"], row["uvicorn"]["cpu_us_per_request"]
        rows.append(
            f"| HTTP {label}: server CPU per request | {ours_cpu:.1f} µs "
            f"| uvicorn {base_cpu:.1f} µs | **{ours_cpu / base_cpu:.2f}x** |"
        )
    sync = http_s["sync"]
    rows.append(
        f"| HTTP Invoke API req/s (sync no-op) | {sync['ours_sync']['rps']:,.0f} | the same, "
        f"sync handlers on threads {sync['threads']['rps']:,.0f} | **{sync['ratio_rps']:.2f}x** |"
    )
    for key, load in (("levels", "wrk"), ("feed", "the emulator's own load")):
        for kind in ("async", "sync"):
            for c, row in lam.get(key, {}).items():
                ours = row.get(f"worker lambda ({kind})")
                if ours:
                    rows.append(
                        f"| Lambda mode inv/s at concurrency {c} ({kind} no-op, {load}) "
                        f"| {ours['inv_per_s']:,.0f} "
                        f"| awslambdaric {row['awslambdaric']['inv_per_s']:,.0f} "
                        f"| **{ours['ratio']:.2f}x** |"
                    )
    levels = inf["levels"]
    for c, row in levels.items():
        ours = row["ours"]
        rows.append(
            f"| MiniLM req/s at concurrency {c} | {ours['rps']:,.1f} | awslambdaric (LMI default) "
            f"{row[inference.BASELINE]['rps']:,.1f} | **{ours['vs_lmi']:.2f}x** |"
        )
    first = min(levels, key=int)
    rows.append(
        f"| MiniLM p99 at concurrency {first} | {levels[first]['ours']['p99_ms']:.1f} ms | ours "
        f"unbatched {levels[first][inference.UNBATCHED]['p99_ms']:.1f} ms | "
        f"**{levels[first]['ours']['p99_vs_unbatched']:.2f}x** |"
    )
    mem = inf["memory"]
    rows.append(
        f"| MiniLM total PSS at concurrency {mem['concurrency']} | {mem['ours']['pss_mb']:,.0f} MB "
        f"| awslambdaric {mem[inference.BASELINE]['pss_mb']:,.0f} MB | **{mem['ratio']:.2f}** |"
    )
    w, b = sq["runtimes"]["worker sqs"], sq["runtimes"]["boto3 loop"]
    rows.append(
        f"| SQS messages/s (moto-bound) | {w['msgs_per_s']:,.0f} | boto3 loop "
        f"{b['msgs_per_s']:,.0f} | **{sq['ratio']:.2f}x** |"
    )
    ours, base = ovl["configs"][overload.OURS], ovl["configs"][overload.BASELINE]
    if "p99_ratio_3x_vs_half" in ours:
        high, low = ours["levels"]["3.0"], ours["levels"]["0.5"]
        rows.append(
            "| accepted p99 at 3x load ÷ at 0.5x (target ≤ 2) "
            f"| {ours['p99_ratio_3x_vs_half']:.2f} "
            f"({high['accepted_p99_ms']:.1f} ÷ {low['accepted_p99_ms']:.1f} ms) "
            f"| {overload.BASELINE} {base['p99_ratio_3x_vs_half']:.2f} "
            f"| **{ours['p99_ratio_3x_vs_half'] / base['p99_ratio_3x_vs_half']:.2f}x** |"
        )
    p99, base_p99 = ours["throttled_p99_max_ms"], base["throttled_p99_max_ms"]
    rows.append(
        f"| 429 p99 at worst (target ≤ 2 ms) | {p99:.2f} ms | {overload.BASELINE} "
        f"{base_p99:.2f} ms | **{p99 / base_p99:.2f}x** |"
    )
    for name, phases in ln["configs"].items():
        alone, flood = phases["alone"]["p99_ms"], phases["with flood"]["p99_ms"]
        refused = phases["with flood"]["non_2xx"]
        note = f" (and {refused:,.0f} sprinters refused with 429)" if refused else ""
        rows.append(
            f"| sprinter p99 under a marathon flood, {name} | {flood:.1f} ms{note} | alone "
            f"{alone:.1f} ms | **{flood / alone:.2f}x** |"
        )
    for form, ns in cls["headline_median_ns"].items():
        base = statistics.median(
            cls["rows"][form][kind]["orjson + checks"] for kind in classify.HEADLINE
        )
        rows.append(
            f"| classify, headline kinds, {form} (median ns/event) | {ns:,.0f} ns "
            f"| orjson.loads + checks {base:,.0f} ns | **{ns / base:.2f}x** |"
        )
    b = cls["sqs_batch"]
    rows.append(
        f"| classify, SQS batch of {b['records']} records | {b['extension_ns']:,.0f} ns "
        f"| orjson.loads + checks {b['orjson_ns']:,.0f} ns "
        f"| **{b['extension_ns'] / b['orjson_ns']:.2f}x** |"
    )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    main()
