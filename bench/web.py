"""Web apps: `worker serve app:app` against uvicorn, Lambda mode against awslambdaric with
Mangum, and a streamed response's time to first byte; each against its baseline, same run.

- serve: the same FastAPI and Starlette route (bench/web_apps.py) served natively by
  `worker serve MODULE:app` and by uvicorn (uvloop, httptools), 2 processes each; wrk with
  32 connections; rounds alternate between the servers.
- lambda: at AWS_LAMBDA_MAX_CONCURRENCY=8 behind `worker emulate`, loaded by the emulator
  itself (`--feed`, an HTTP API v2 event): awslambdaric running Mangum + FastAPI (Lambda
  today), `worker lambda` running the same Mangum handler, and `worker lambda` serving the
  FastAPI app natively through its built-in adapter.
- stream: a 10-chunk response whose every chunk takes CHUNK_WORK to produce; time from
  the request to the first chunk's bytes, as a multiple of CHUNK_WORK (1.0 is the floor),
  through `worker serve` (chunked), uvicorn, and the emulator's front in Lambda mode (the
  Runtime API's streaming mode, as a Function URL with RESPONSE_STREAM).

    python -m bench.web [--rounds 3] [--seconds 8] [--parts serve,lambda,stream]
"""

from __future__ import annotations

import argparse
import importlib
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.harness import (
    RESULTS,
    free_port,
    median,
    publish,
    python,
    results_dir,
    server,
    worker_argv,
    write_script,
    wrk,
)
from bench.web_apps import CHUNK_WORK

PATH = "/items/42?q=bench"
APPS = {
    "FastAPI": "bench.web_apps:fastapi_app",
    "Starlette": "bench.web_apps:starlette_app",
}
#: Each serve case's target: ours over uvicorn's requests per second (issue 25).
SERVE_TARGETS = {"FastAPI": 1.05, "Starlette": 1.15}
LAMBDA_LEVEL = 8
#: Lambda mode's runtimes: (handler, command after `--`, or None for worker lambda).
MANGUM = "bench.web_apps.mangum_handler"
BASELINE = "awslambdaric + Mangum"
RUNTIMES: dict[str, tuple[str, list[str] | None]] = {
    BASELINE: (MANGUM, [python(), "-m", "awslambdaric", MANGUM]),
    "worker lambda + Mangum": (MANGUM, None),
    "worker lambda, native app": ("bench.web_apps:fastapi_app", None),
}
LAMBDA_TARGETS = {"worker lambda + Mangum": 1.3, "worker lambda, native app": 1.8}
STREAM_TARGET = 1.2
PARTS = ("serve", "lambda", "stream")


def uvicorn_app_argv(spec: str, port: int) -> list[str]:
    return [python(), "-m", "uvicorn", spec, "--port", str(port), "--workers", "2",
            "--loop", "uvloop", "--http", "httptools", "--lifespan", "on",
            "--no-access-log", "--log-level", "warning"]  # fmt: skip


def serve_once(name: str, spec: str, seconds: float) -> dict[str, dict[str, float]]:
    """One round: ours and uvicorn on the same app, one after the other."""
    out: dict[str, dict[str, float]] = {}
    for who in ("ours", "uvicorn"):
        port = free_port()
        argv = (
            worker_argv("serve", spec, port, "--workers", "2")
            if who == "ours"
            else uvicorn_app_argv(spec, port)
        )
        with server(argv, port, PATH) as proc:
            url = f"http://127.0.0.1:{port}{PATH}"
            wrk(url, pid=proc.pid, seconds=1, connections=32)  # warm-up
            res = wrk(url, pid=proc.pid, seconds=seconds, connections=32)
        if res.non_2xx or res.errors:
            raise RuntimeError(f"{who} {name}: {res.non_2xx} non-2xx, {res.errors} errors")
        out[who] = {"rps": res.rps, "p50_ms": res.p50_ms, "p99_ms": res.p99_ms,
                    "cpu_us": res.cpu_us}  # fmt: skip
    return out


def v2_event(path: str, query: str) -> bytes:
    """An HTTP API (payload 2.0) GET, as API Gateway sends it."""
    return orjson.dumps(
        {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": query,
            "headers": {"host": "bench.example.com", "user-agent": "bench"},
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "bench",
                "domainName": "bench.example.com",
                "domainPrefix": "bench",
                "http": {
                    "method": "GET",
                    "path": path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "192.0.2.1",
                    "userAgent": "bench",
                },
                "requestId": "bench",
                "routeKey": "$default",
                "stage": "$default",
                "time": "05/Dec/2026:00:00:00 +0000",
                "timeEpoch": 0,
            },
            "isBase64Encoded": False,
        }
    )


def check_answer(port: int, event: bytes) -> None:
    """Every runtime must answer the event right before it is timed."""
    import urllib.request

    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/2015-03-31/functions/bench/invocations", data=event
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        answer = orjson.loads(r.read())
    if answer.get("statusCode") != 200 or b"42" not in answer.get("body", "").encode():
        raise RuntimeError(f"wrong answer to the benchmark's event: {answer}")


def lambda_once(name: str, seconds: float) -> dict[str, float]:
    lam = importlib.import_module("bench.lambda")  # `lambda` is a keyword
    handler, command = RUNTIMES[name]
    event = v2_event("/items/42", "q=bench")
    port = free_port()
    argv = lam.emulator_argv(port, LAMBDA_LEVEL, handler, command)
    with server(argv, port, "/_worker/ready"):
        check_answer(port, event)
    script = write_script(Path(tempfile.mkdtemp()) / "post.lua", event)
    sample: dict[str, float] = lam.measure(
        LAMBDA_LEVEL, handler, command, seconds, script, "feed", event
    )
    return sample


def first_chunk_seconds(port: int, path: str) -> float:
    """Seconds from sending a GET to receiving the first streamed chunk's bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        started = time.perf_counter()
        sock.sendall(f"GET {path} HTTP/1.1\r\nhost: bench\r\n\r\n".encode())
        got = b""
        while b"chunk 0" not in got:
            data = sock.recv(65536)
            if not data:
                raise RuntimeError(f"closed before the first chunk: {got[:300]!r}")
            got += data
        return time.perf_counter() - started


def stream_once(requests: int) -> dict[str, float]:
    spec = "bench.web_apps:stream_app"
    cases = {
        "worker serve": lambda port: worker_argv("serve", spec, port, "--workers", "2"),
        "uvicorn": lambda port: uvicorn_app_argv(spec, port),
        "worker lambda (emulator front)": lambda port: worker_argv(
            "emulate", spec, port, "--concurrency", "4", "--invoke-mode", "RESPONSE_STREAM"
        ),
    }
    out: dict[str, float] = {}
    for name, argv_of in cases.items():
        port = free_port()
        ready = "/_worker/ready" if name != "uvicorn" else "/docs"
        with server(argv_of(port), port, ready):
            first_chunk_seconds(port, "/stream")  # warm-up
            out[name] = median([first_chunk_seconds(port, "/stream") for _ in range(requests)])
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--parts", default=",".join(PARTS))
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    out = results_dir(args.out)
    parts = [p for p in args.parts.split(",") if p in PARTS]
    serve_runs: dict[str, list[dict[str, dict[str, float]]]] = {name: [] for name in APPS}
    lambda_runs: dict[str, list[dict[str, float]]] = {name: [] for name in RUNTIMES}
    stream_runs: list[dict[str, float]] = []
    for r in range(args.rounds):
        if "serve" in parts:
            for name, spec in APPS.items():
                print(f"[web] round {r + 1}/{args.rounds} serve {name}", flush=True)
                serve_runs[name].append(serve_once(name, spec, args.seconds))
        if "lambda" in parts:
            names = list(RUNTIMES) if r % 2 == 0 else list(RUNTIMES)[::-1]
            for name in names:
                print(f"[web] round {r + 1}/{args.rounds} lambda {name}", flush=True)
                lambda_runs[name].append(lambda_once(name, args.seconds))
        if "stream" in parts:
            print(f"[web] round {r + 1}/{args.rounds} stream", flush=True)
            stream_runs.append(stream_once(5))
    summary: dict[str, Any] = {}
    if "serve" in parts:
        summary["serve"] = {}
        for name, samples in serve_runs.items():
            row = {
                who: {k: median([s[who][k] for s in samples]) for k in samples[0][who]}
                for who in ("ours", "uvicorn")
            }
            row["ratio"] = median([s["ours"]["rps"] / s["uvicorn"]["rps"] for s in samples])
            summary["serve"][name] = row
    if "lambda" in parts:
        rows = {
            name: {k: median([s[k] for s in samples]) for k in samples[0]}
            for name, samples in lambda_runs.items()
        }
        for name in rows:
            rows[name]["ratio"] = rows[name]["inv_per_s"] / rows[BASELINE]["inv_per_s"]
        summary["lambda"] = rows
    if "stream" in parts:
        summary["stream"] = {
            name: {
                "first_chunk_ms": median([s[name] for s in stream_runs]) * 1e3,
                "vs_work": median([s[name] for s in stream_runs]) / CHUNK_WORK,
            }
            for name in stream_runs[0]
        }
    summary["method"] = {
        "rounds": args.rounds,
        "seconds_per_run": args.seconds,
        "statistic": "median of rounds (ratios: median of each round's ratio for serve)",
        "serve": "wrk, 2 threads, 32 connections, GET " + PATH + "; 2 processes each",
        "lambda": f"worker emulate --concurrency {LAMBDA_LEVEL} --feed 16 (HTTP API v2 event)",
        "stream": f"median of 5 requests per round; each chunk takes {CHUNK_WORK * 1e3:.0f} ms",
    }
    publish(out, "web", summary, table(summary))
    return summary


def table(summary: dict[str, Any]) -> str:
    lines: list[str] = []
    if "serve" in summary:
        lines += [
            "`worker serve MODULE:app` (native) against uvicorn serving the same app.",
            "",
            "| app | worker serve req/s | uvicorn req/s | ratio | target | p99 ms ours / uvicorn "
            "| CPU µs/req ours / uvicorn |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, row in summary["serve"].items():
            o, u = row["ours"], row["uvicorn"]
            lines.append(
                f"| {name} | {o['rps']:,.0f} | {u['rps']:,.0f} | **{row['ratio']:.2f}x** | "
                f"{SERVE_TARGETS[name]:.2f}x | {o['p99_ms']:.2f} / {u['p99_ms']:.2f} | "
                f"{o['cpu_us']:.0f} / {u['cpu_us']:.0f} |"
            )
    if "lambda" in summary:
        lines += [
            *([""] if lines else []),
            f"Lambda mode, concurrency {LAMBDA_LEVEL}, the emulator's own load (an HTTP API v2 "
            "event for the FastAPI route).",
            "",
            "| runtime | inv/s | runtime CPU µs/inv | PSS MB | vs awslambdaric + Mangum | target |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, row in summary["lambda"].items():
            ratio = "baseline" if name == BASELINE else f"**{row['ratio']:.2f}x**"
            target = f"{LAMBDA_TARGETS[name]:.1f}x" if name in LAMBDA_TARGETS else ""
            lines.append(
                f"| {name} | {row['inv_per_s']:,.0f} | {row['runtime_cpu_us']:.0f} | "
                f"{row['pss_mb']:.0f} | {ratio} | {target} |"
            )
    if "stream" in summary:
        lines += [
            *([""] if lines else []),
            f"Time to the first chunk of a 10-chunk stream (each chunk {CHUNK_WORK * 1e3:.0f} ms "
            f"of work); target ≤ {STREAM_TARGET}x the first chunk's work.",
            "",
            "| server | first chunk ms | vs the chunk's work |",
            "|---|---:|---:|",
        ]
        for name, row in summary["stream"].items():
            lines.append(f"| {name} | {row['first_chunk_ms']:.1f} | {row['vs_work']:.2f}x |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
