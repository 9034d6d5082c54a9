"""Sprinter latency with and without a marathon flood, with lanes and with one lane.

`worker serve bench.scenario_app.handler` (2 processes, 32 slots): wrk drives a quick
route (`GET /items/{id}`, 32 connections) alone, then while 64 clients keep the
two-second route (`GET /report`) busy. With lanes the flood fills only the marathon lane
(a quarter of the slots; `GET /report` is known as a marathon through WORKER_ROUTES, as
its profile would learn after a few calls); with one lane (WORKER_MARATHON_SHARE=0) the
slow requests take the slots the quick ones need. Reported: sprinter p50/p99 and
requests/s in each case, medians of the rounds.

    python -m bench.lanes [--rounds 3] [--seconds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import threading
from typing import Any

from bench.harness import (
    RESULTS,
    free_port,
    median,
    publish,
    ratio,
    results_dir,
    server,
    worker_argv,
    wrk,
)

CONFIGS = {
    "lanes (marathon share 0.25)": {"WORKER_ROUTES": "GET /report=marathon"},
    "one lane": {"WORKER_MARATHON_SHARE": "0"},
}
FLOOD = 64


async def _flood_client(port: int, stop: threading.Event, counts: dict[str, int]) -> None:
    request = b"GET /report HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        try:
            while not stop.is_set():
                writer.write(request)
                status = int((await reader.readline()).split()[1])
                length, closing = 0, False
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    lower = line.lower()
                    if lower.startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                    closing = closing or lower.startswith(b"connection: close")
                await reader.readexactly(length)
                counts[str(status)] = counts.get(str(status), 0) + 1
                if status == 429:
                    await asyncio.sleep(0.05)  # refused: a real client backs off
                if closing:
                    break  # the server ends this connection: open another
        except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
            pass
        finally:
            writer.close()


def flood(port: int, stop: threading.Event, counts: dict[str, int]) -> threading.Thread:
    async def run() -> None:
        await asyncio.gather(*(_flood_client(port, stop, counts) for _ in range(FLOOD)))

    thread = threading.Thread(target=lambda: asyncio.run(run()), daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    out = results_dir(args.out)
    summary: dict[str, Any] = {"configs": {}}
    for name, env in CONFIGS.items():
        port = free_port()
        argv_ = worker_argv(
            "serve", "bench.scenario_app.handler", port, "--workers", "2", "--concurrency", "32"
        )
        runs: dict[str, list[dict[str, float]]] = {"alone": [], "with flood": []}
        with server(
            argv_, port, "/_worker/ready", env={"AWS_LAMBDA_LOG_LEVEL": "WARNING", **env}
        ) as proc:
            url = f"http://127.0.0.1:{port}/items/7"
            for r in range(args.rounds):
                for phase in runs:
                    print(
                        f"[lanes] {name}, round {r + 1}/{args.rounds}, sprinters {phase}",
                        flush=True,
                    )
                    stop, counts = threading.Event(), {}
                    thread = flood(port, stop, counts) if phase == "with flood" else None
                    try:
                        res = wrk(url, pid=proc.pid, seconds=args.seconds, connections=32)
                    finally:
                        stop.set()
                        if thread is not None:
                            # Every flood client ends after its request in flight is
                            # answered: the next round's sprinters run alone for real.
                            thread.join(timeout=30)
                    runs[phase].append(
                        {
                            "rps": res.rps,
                            "p50_ms": res.p50_ms,
                            "p99_ms": res.p99_ms,
                            "non_2xx": float(res.non_2xx),
                            "flood_done": float(counts.get("200", 0)),
                            "flood_429": float(counts.get("429", 0)),
                        }
                    )
        summary["configs"][name] = {
            phase: {k: median([s[k] for s in samples]) for k in samples[0]}
            for phase, samples in runs.items()
        }
    summary["method"] = {
        "rounds": args.rounds,
        "seconds_per_run": args.seconds,
        "load": f"wrk 32 connections on GET /items/7; flood: {FLOOD} clients looping on "
        "GET /report (2 s), backing off 50 ms after a 429",
    }
    publish(out, "lanes", summary, table(summary))
    return summary


BASELINE = "one lane"


def table(summary: dict[str, Any]) -> str:
    """One row per config and phase; each sprinter p99 beside the one-lane baseline's."""
    lines = [
        "| config | sprinters | req/s | p50 ms | p99 ms | sprinter non-2xx | marathons done "
        f"| marathon 429s | baseline ({BASELINE}) p99 ms | p99 vs baseline |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = summary["configs"].get(BASELINE, {})
    for name, phases in summary["configs"].items():
        for phase, s in phases.items():
            b = base.get(phase)
            vs = "baseline"
            if name != BASELINE and b is not None:
                times = ratio(s["p99_ms"], b["p99_ms"])
                vs = f"**{times:.2f}x**" if times >= 0.1 else f"**{times:.4f}x**"
            lines.append(
                f"| {name} | {phase} | {s['rps']:,.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | "
                f"{s['non_2xx']:.0f} | {s['flood_done']:.0f} | {s['flood_429']:.0f} | "
                f"{b['p99_ms'] if b else float('nan'):.2f} | {vs} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
