"""Overload: offered load at 0.5x, 1x, 2x and 3x of measured capacity, open loop.

`worker serve bench.apps.io_wait` (a handler that waits 20 ms, as one calling a database
would) with 2 worker processes and 16 slots, twice: with the default bounds (2 x slots
queued, and no wait past half a typical invocation) and, as the baseline, with the count
bound alone (`--queue-wait 0`, a plain bounded queue). First its
capacity is measured (wrk, closed loop, 256 connections: accepted requests/s). Then an
open-loop generator sends at fixed rates regardless of answers (so slow answers cannot
slow the load down and hide queueing), each rate for a while, and records every answer's
latency and status. Reported per rate: accepted p50/p99, the share and p99 latency of 429
answers, and the server tree's RSS sampled over the run (first, last, max).

    python -m bench.overload [--seconds 8] [--levels 0.5,1,2,3]
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import uvloop

from bench.harness import (
    RESULTS,
    free_port,
    publish,
    ratio,
    results_dir,
    server,
    tree_rss_mb,
    worker_argv,
    wrk,
)

PATH = "/2015-03-31/functions/io/invocations"
BODY = b'{"action":"io"}'
REQUEST = (
    b"POST " + PATH.encode() + b" HTTP/1.1\r\nhost: 127.0.0.1\r\n"
    b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(BODY), BODY)
)


class Conn(asyncio.Protocol):
    """A keep-alive connection that times one request at a time (status + content-length)."""

    def __init__(self, done: Any) -> None:
        self.done = done
        self.buf = b""
        self.started = 0.0
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def send(self) -> None:
        assert self.transport is not None
        self.started = time.perf_counter()
        self.transport.write(REQUEST)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self.buf[:head_end].lower()
        length_at = head.find(b"content-length:")
        length = int(head[length_at + 15 :].split(b"\r\n", 1)[0]) if length_at >= 0 else 0
        if len(self.buf) < head_end + 4 + length:
            return
        status = int(self.buf[9:12])
        self.buf = self.buf[head_end + 4 + length :]
        # As an HTTP client must: a connection the server closes is not used again.
        self.lost = self.lost or b"connection: close" in head
        self.done(self, status, time.perf_counter() - self.started)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


async def open_loop(port: int, rate: float, seconds: float) -> dict[str, Any]:
    """Send `rate` requests/s for `seconds`, on as many connections as that takes."""
    loop = asyncio.get_running_loop()
    free: list[Conn] = []
    results: list[tuple[int, float]] = []
    opened = 0

    def done(conn: Conn, status: int, latency: float) -> None:
        results.append((status, latency))
        if not conn.lost:
            free.append(conn)

    async def connect() -> Conn:
        nonlocal opened
        opened += 1
        _, conn = await loop.create_connection(lambda: Conn(done), "127.0.0.1", port)
        return conn

    for _ in range(64):
        free.append(await connect())
    total = int(rate * seconds)
    start = time.perf_counter() + 0.05
    sent = 0
    while sent < total:
        now = time.perf_counter()
        due = min(total, int((now - start) * rate) + 1)
        while sent < due:
            conn = free.pop() if free else await connect()
            if conn.lost:
                continue
            conn.send()
            sent += 1
        await asyncio.sleep(max(0.0, start + sent / rate - time.perf_counter()))
    end = time.perf_counter() + 10
    while len(results) < sent and time.perf_counter() < end:
        await asyncio.sleep(0.01)
    return {"results": results, "sent": sent, "connections": opened}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def sample_rss(pid: int, stop: threading.Event, out: list[float]) -> None:
    while not stop.is_set():
        out.append(tree_rss_mb(pid))
        stop.wait(0.25)


OURS = "defaults (count and time bound)"
BASELINE = "count bound only"
CONFIGS = {OURS: [], BASELINE: ["--queue-wait", "0"]}


def run_config(flags: list[str], seconds: float, levels: list[float], out: Path) -> dict[str, Any]:
    port = free_port()
    argv = worker_argv(
        "serve", "bench.apps.io_wait", port, "--workers", "2", "--concurrency", "16", *flags
    )
    summary: dict[str, Any] = {"levels": {}}
    with server(argv, port, "/_worker/ready", env={"AWS_LAMBDA_LOG_LEVEL": "WARNING"}) as proc:
        script = out / "overload.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = '{BODY.decode()}'\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        url = f"http://127.0.0.1:{port}{PATH}"
        print("[overload] measuring capacity (wrk, 256 connections)", flush=True)
        cap = wrk(url, pid=proc.pid, seconds=seconds, connections=256, script=str(script))
        capacity = (cap.requests - cap.non_2xx) / cap.seconds
        summary["capacity_rps"] = capacity
        for level in levels:
            rate = capacity * level
            print(f"[overload] {level}x capacity: {rate:,.0f} req/s for {seconds:.0f}s", flush=True)
            rss: list[float] = []
            stop = threading.Event()
            sampler = threading.Thread(target=sample_rss, args=(proc.pid, stop, rss))
            sampler.start()
            try:
                run = uvloop.run(open_loop(port, rate, seconds))
            finally:
                stop.set()
                sampler.join()
            summary["levels"][str(level)] = figures(run, rate, seconds, rss)
    levels_ = summary["levels"]
    low, high = levels_.get("0.5"), levels_.get("3.0")
    if low and high:
        summary["p99_ratio_3x_vs_half"] = ratio(high["accepted_p99_ms"], low["accepted_p99_ms"])
    summary["throttled_p99_max_ms"] = max(
        (v["throttled_p99_ms"] for v in levels_.values() if v["throttled_share"] > 0),
        default=float("nan"),
    )
    all_rss = [x for v in levels_.values() for x in v["rss_samples"]]
    summary["rss_growth_mb"] = (all_rss[-1] - all_rss[0]) if all_rss else float("nan")
    return summary


def figures(run: dict[str, Any], rate: float, seconds: float, rss: list[float]) -> dict[str, Any]:
    ok = [lat for status, lat in run["results"] if status == 200]
    shed = [lat for status, lat in run["results"] if status == 429]
    answered = len(run["results"])
    return {
        "offered_rps": rate,
        "sent": run["sent"],
        "answered": answered,
        "unanswered": run["sent"] - answered,
        "other_status": sum(1 for s, _ in run["results"] if s not in (200, 429)),
        "accepted_rps": len(ok) / seconds,
        "accepted_p50_ms": pct(ok, 0.50) * 1000,
        "accepted_p99_ms": pct(ok, 0.99) * 1000,
        "throttled_share": len(shed) / max(1, answered),
        "throttled_p99_ms": pct(shed, 0.99) * 1000,
        "rss_first_mb": rss[0] if rss else float("nan"),
        "rss_last_mb": rss[-1] if rss else float("nan"),
        "rss_max_mb": max(rss) if rss else float("nan"),
        "rss_samples": rss,
        "connections": run["connections"],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--levels", default="0.5,1,2,3")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    out = results_dir(args.out)
    levels = [float(x) for x in args.levels.split(",")]
    summary: dict[str, Any] = {"configs": {}}
    for name, flags in CONFIGS.items():
        print(f"[overload] server with {name}", flush=True)
        summary["configs"][name] = run_config(flags, args.seconds, levels, out)
    summary["method"] = {
        "server": "worker serve bench.apps.io_wait (20 ms wait), 2 processes, 16 slots",
        "capacity": f"wrk, 256 connections, {args.seconds:.0f} s, accepted requests/s",
        "generator": "open loop, fixed rate, keep-alive connections opened as needed",
        "seconds_per_level": args.seconds,
    }
    publish(out, "overload", summary, table(summary))
    return summary


def table(summary: dict[str, Any]) -> str:
    """One row per offered level: ours (the defaults) beside the baseline (count bound only)."""
    ours, base = summary["configs"][OURS], summary["configs"][BASELINE]
    lines = [
        "| offered | req/s offered | accepted req/s | accepted p50 ms | accepted p99 ms "
        "| p99 ÷ p99 at 0.5x | 429 share | 429 p99 ms | unanswered | RSS MB first → last (max) "
        f"| baseline ({BASELINE}): accepted p99 ms, 429 p99 ms | accepted p99 vs baseline |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    low = ours["levels"].get("0.5")
    for level, v in ours["levels"].items():
        b = base["levels"][level]
        vs_low = f"{v['accepted_p99_ms'] / low['accepted_p99_ms']:.2f}x" if low else "-"
        lines.append(
            f"| {level}x | {v['offered_rps']:,.0f} | {v['accepted_rps']:,.0f} | "
            f"{v['accepted_p50_ms']:.1f} | {v['accepted_p99_ms']:.1f} | {vs_low} | "
            f"{v['throttled_share']:.0%} | {v['throttled_p99_ms']:.2f} | {v['unanswered']} | "
            f"{v['rss_first_mb']:.0f} → {v['rss_last_mb']:.0f} ({v['rss_max_mb']:.0f}) | "
            f"{b['accepted_p99_ms']:.1f}, {b['throttled_p99_ms']:.2f} | "
            f"**{ratio(v['accepted_p99_ms'], b['accepted_p99_ms']):.2f}x** |"
        )
    notes = []
    for name, conf in summary["configs"].items():
        if "p99_ratio_3x_vs_half" in conf:
            notes.append(
                f"- {name}: capacity {conf['capacity_rps']:,.0f} accepted req/s; accepted p99 "
                f"at 3x ÷ at 0.5x **{conf['p99_ratio_3x_vs_half']:.2f}** (target ≤ 2); "
                f"429 p99 at worst **{conf['throttled_p99_max_ms']:.2f} ms** (target ≤ 2 ms); "
                f"RSS change over the run {conf['rss_growth_mb']:+.0f} MB."
            )
    return "\n".join([*lines, "", *notes]) + "\n"


if __name__ == "__main__":
    main()
