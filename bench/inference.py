"""Shared inference: MiniLM embeddings through `worker lambda` vs LMI's default runtime.

Three runtimes behind the same `worker emulate` (Runtime API + Invoke API), at
AWS_LAMBDA_MAX_CONCURRENCY = N for N in the levels:

  (a) ours     `worker lambda handlers.embed.handler`: the model loaded once in the init
               phase, requests batched across every slot;
  (b) LMI      awslambdaric (`bench.embed_lmi`): N processes, each loading the model at
               import, one request at a time each (LMI's Python default);
  (c) ours, unbatched: as (a) with EMBED_MAX_BATCH=1;
  (d) ours, model host: as (a) with WORKER_MODEL_HOST=process: the model in one process
               that the workers reach over a Unix socket (what a GPU gets), measured on the
               CPU against (a)'s copy-on-write sharing to choose between them; it runs
               K batches at once (by device, `max_concurrent_batches`);
  (e) ours, model host, K=1: as (d) with WORKER_MODEL_CONCURRENT_BATCHES=1, one batch in
               flight (the host before K), to compare K in the same run.

Load: wrk with N connections, each request one realistic sentence (8-64 tokens) drawn at
random from a fixed set. Reported per level and runtime (medians of the rounds, runtimes
alternating within each round): requests/s, p50 and p99 latency, total PSS of the
runtime's process tree. Then total PSS at N=16 for (a) and (b).

    python -m bench.inference [--rounds 3] [--seconds 10] [--levels 1,8,32,64] [--device cpu]
                              [--runtimes ours,lmi,unbatched,hosted,hosted1]
                              [--memory-level 16]

`--device cuda` is the GPU run: there every runtime's model is on the GPU (ours in the
model host), and `--runtimes ours,unbatched --memory-level 0` measures the GPU line of
the issue (batched vs unbatched at 64) without 64 CUDA contexts of awslambdaric.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import math
import random
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.harness import (
    RESULTS,
    descendants,
    free_port,
    median,
    publish,
    python,
    results_dir,
    runtime_pid,
    server,
    tree_pss_mb,
    worker_argv,
    wrk,
)
from worker.config import cores

INVOKE = "/2015-03-31/functions/embed/invocations"
WORDS = [
    "the",
    "model",
    "service",
    "request",
    "batch",
    "latency",
    "throughput",
    "user",
    "order",
    "payment",
    "queue",
    "event",
    "image",
    "text",
    "search",
    "result",
    "cache",
    "memory",
    "worker",
    "process",
    "lambda",
    "container",
    "cluster",
    "region",
    "customer",
    "product",
    "price",
    "shipping",
    "delivery",
    "report",
    "invoice",
    "account",
    "balance",
    "transfer",
    "weather",
    "forecast",
    "river",
    "mountain",
    "city",
    "travel",
    "flight",
    "hotel",
    "booking",
    "review",
    "rating",
    "quickly",
    "slowly",
    "carefully",
    "often",
    "never",
    "always",
    "sometimes",
    "today",
    "tomorrow",
    "yesterday",
    "runs",
    "waits",
    "returns",
    "sends",
    "reads",
    "writes",
    "builds",
    "ships",
    "learns",
    "answers",
    "fails",
    "retries",
]
RUNTIMES = {
    # name -> (handler, extra env, command after `--` or None for worker lambda)
    "ours": ("handlers.embed.handler", {}, None),
    "awslambdaric (LMI default)": (
        "bench.embed_lmi.handler",
        {},
        [python(), "-m", "awslambdaric", "bench.embed_lmi.handler"],
    ),
    "ours, max_batch_size=1": ("handlers.embed.handler", {"EMBED_MAX_BATCH": "1"}, None),
    "ours, model host process": ("handlers.embed.handler", {"WORKER_MODEL_HOST": "process"}, None),
    "ours, model host process, K=1": (
        "handlers.embed.handler",
        {"WORKER_MODEL_HOST": "process", "WORKER_MODEL_CONCURRENT_BATCHES": "1"},
        None,
    ),
}
BASELINE = "awslambdaric (LMI default)"
LMI_PER_VCPU = 16
UNBATCHED = "ours, max_batch_size=1"
HOSTED = "ours, model host process"
HOSTED_ONE = "ours, model host process, K=1"
#: `--runtimes` names them short; the default leaves out `hosted1` (a comparison for K).
CHOICES = {
    "ours": "ours",
    "lmi": BASELINE,
    "unbatched": UNBATCHED,
    "hosted": HOSTED,
    "hosted1": HOSTED_ONE,
}
DEFAULT_RUNTIMES = "ours,lmi,unbatched,hosted"


def sentences(count: int = 200, seed: int = 7) -> list[str]:
    """Realistic lengths: 6-48 words, about 8-64 MiniLM tokens."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        words = rng.choices(WORDS, k=rng.randint(6, 48))
        out.append(" ".join(words).capitalize() + ".")
    return out


def lua_script(path: Path, texts: list[str]) -> str:
    bodies = ",\n".join("[[" + json.dumps({"text": t}) + "]]" for t in texts)
    path.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"local bodies = {{\n{bodies}\n}}\n"
        "request = function()\n"
        "  return wrk.format(nil, nil, nil, bodies[math.random(#bodies)])\n"
        "end\n"
        # A function error is still a 200 for the Invoke API: count them apart.
        "errors = 0\n"
        "response = function(status, headers, body)\n"
        '  if headers["X-Amz-Function-Error"] or headers["x-amz-function-error"] then\n'
        "    errors = errors + 1\n"
        "  end\n"
        "end\n"
        "local threads = {}\n"
        "function setup(thread) table.insert(threads, thread) end\n"
        "function done(summary, latency, requests)\n"
        "  local total = 0\n"
        '  for _, t in ipairs(threads) do total = total + t:get("errors") end\n'
        '  io.write(string.format("function errors: %d\\n", total))\n'
        "end\n"
    )
    return str(path)


def invoke(port: int, text: str) -> dict[str, Any]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{INVOKE}",
        data=json.dumps({"text": text}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=600) as r:
        answer: dict[str, Any] = json.loads(r.read())
        return answer


@contextlib.contextmanager
def environment(name: str, concurrency: int, device: str) -> Iterator[tuple[int, int]]:
    """A warm runtime behind `worker emulate`: yields (port, emulator pid)."""
    handler, extra, command = RUNTIMES[name]
    if command:
        # LMI runs at most 16 processes per vCPU: beyond that the platform queues, as the
        # emulator does here (64 copies of the model would not fit this machine anyway).
        concurrency = min(concurrency, LMI_PER_VCPU * cores())
    port = free_port()
    argv = worker_argv(
        "emulate", handler, port, "--concurrency", str(concurrency), "--queue-size", "8192",
        "--timeout", "600",
    )  # fmt: skip
    if command:
        argv += ["--", *command]
    env = {"AWS_LAMBDA_LOG_LEVEL": "WARNING", "EMBED_DEVICE": device, **extra}
    with server(argv, port, "/_worker/ready", env=env, ready_within=900) as emu:
        if command:
            # awslambdaric's N processes each load the model after the fork: warm until
            # every one of them has answered.
            seen: set[int] = set()
            end = time.monotonic() + 900
            with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
                while len(seen) < concurrency and time.monotonic() < end:
                    calls = [pool.submit(invoke, port, "warm up") for _ in range(concurrency)]
                    seen |= {c.result()["pid"] for c in calls}
        else:
            invoke(port, "warm up")
        yield port, emu.pid


def measure(port: int, emu: int, concurrency: int, seconds: float, script: str) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}{INVOKE}"
    res = wrk(
        url,
        pid=emu,
        seconds=seconds,
        connections=concurrency,
        threads=min(2, concurrency),
        script=script,
    )
    return {
        "rps": res.rps,
        "p50_ms": res.p50_ms,
        "p99_ms": res.p99_ms,
        "errors": float(res.errors + res.non_2xx + res.function_errors),
        "pss_mb": tree_pss_mb(runtime_pid(emu)),
        "processes": float(len(descendants(runtime_pid(emu))) + 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--levels", default="1,8,32,64")
    ap.add_argument("--memory-level", type=int, default=16, help="0: no memory run")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--runtimes", default=DEFAULT_RUNTIMES, help="of " + ",".join(CHOICES))
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    try:
        chosen = [CHOICES[k] for k in args.runtimes.split(",")]
    except KeyError as exc:
        ap.error(f"unknown runtime {exc}; choose from {','.join(CHOICES)}")
    out = results_dir(args.out)
    script = lua_script(Path(tempfile.mkdtemp()) / "embed.lua", sentences())
    levels = [int(x) for x in args.levels.split(",")]
    summary: dict[str, Any] = {"levels": {}}
    started = time.monotonic()
    for li, c in enumerate(levels):
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in chosen}
        with contextlib.ExitStack() as stack:
            envs = {}
            for name in chosen:
                print(f"[inference] concurrency {c}: starting {name}", flush=True)
                envs[name] = stack.enter_context(environment(name, c, args.device))
            for r in range(args.rounds):
                names = chosen if r % 2 == 0 else chosen[::-1]
                for name in names:
                    left = ((len(levels) - li) * args.rounds - r) * len(chosen) * args.seconds
                    print(
                        f"[inference] concurrency {c} round {r + 1}/{args.rounds} {name} "
                        f"(>{left:.0f}s left, {time.monotonic() - started:.0f}s so far)",
                        flush=True,
                    )
                    port, emu = envs[name]
                    runs[name].append(measure(port, emu, c, args.seconds, script))
        row = {n: {k: median([s[k] for s in v]) for k in v[0]} for n, v in runs.items()}
        for name in row:
            # A ratio whose baseline was not run is NaN (the table prints a dash).
            lmi, unbatched = row.get(BASELINE), row.get(UNBATCHED)
            row[name]["vs_lmi"] = row[name]["rps"] / lmi["rps"] if lmi else math.nan
            row[name]["vs_unbatched"] = (
                row[name]["rps"] / unbatched["rps"] if unbatched else math.nan
            )
            ours = row.get("ours")
            row[name]["vs_ours"] = row[name]["rps"] / ours["rps"] if ours else math.nan
            row[name]["p99_vs_unbatched"] = (
                row[name]["p99_ms"] / unbatched["p99_ms"] if unbatched else math.nan
            )
        summary["levels"][str(c)] = row
    n = args.memory_level
    wanted = [name for name in ("ours", HOSTED, BASELINE) if name in chosen]
    if n and "ours" in wanted and BASELINE in wanted:
        memory = {}
        for name in wanted:
            print(f"[inference] memory at concurrency {n}: {name}", flush=True)
            with environment(name, n, args.device) as (_, emu):
                memory[name] = {
                    "pss_mb": tree_pss_mb(runtime_pid(emu)),
                    "processes": float(len(descendants(runtime_pid(emu))) + 1),
                }
        summary["memory"] = {
            "concurrency": n,
            **memory,
            "ratio": memory["ours"]["pss_mb"] / memory[BASELINE]["pss_mb"],
            **(
                {"hosted_ratio": memory[HOSTED]["pss_mb"] / memory[BASELINE]["pss_mb"]}
                if HOSTED in memory
                else {}
            ),
        }
    summary["method"] = {
        "rounds": args.rounds,
        "seconds_per_run": args.seconds,
        "statistic": "median of rounds",
        "device": args.device,
        "load": "wrk, N connections (N = concurrency), random sentences of 6-48 words, "
        "through worker emulate",
        "lmi_processes": f"min(N, {LMI_PER_VCPU} x {cores()} cores)",
    }
    publish(out, "inference", summary, table(summary))
    return summary


def _ratio(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}x"


def table(summary: dict[str, Any]) -> str:
    lines = [
        "| concurrency | runtime | req/s | p50 ms | p99 ms | errors | PSS MB | processes "
        "| req/s vs LMI default | req/s vs unbatched | p99 vs unbatched | req/s vs ours |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c, row in summary["levels"].items():
        for name, s in row.items():
            lines.append(
                f"| {c} | {name} | {s['rps']:,.1f} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | "
                f"{s['errors']:.0f} | "
                f"{s['pss_mb']:,.0f} | {s['processes']:.0f} | {_ratio(s['vs_lmi'])} | "
                f"{_ratio(s['vs_unbatched'])} | {_ratio(s['p99_vs_unbatched'])} | "
                f"{_ratio(s.get('vs_ours', math.nan))} |"
            )
    m = summary.get("memory")
    if m is None:
        return "\n".join(lines) + "\n"
    lines += [
        "",
        f"| MiniLM at concurrency {m['concurrency']} | total PSS MB | processes "
        "| PSS vs LMI default |",
        "|---|---:|---:|---:|",
        *(
            f"| {name} | {m[name]['pss_mb']:,.0f} | {m[name]['processes']:.0f} | {vs} |"
            for name, vs in (
                (BASELINE, "baseline"),
                ("ours", f"**{m['ratio']:.2f}**"),
                (HOSTED, f"{m.get('hosted_ratio', math.nan):.2f}"),
            )
            if name in m
        ),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
