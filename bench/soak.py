"""Soak: minutes of mixed load and faults on one `worker serve`, and what it cost at the end.

`worker serve bench.apps.soak --workers 2 --concurrency 32 --timeout 1` takes, at once:
Invoke API clients on keep-alive connections (a few calls in a hundred raise), proxy-mode
clients, pipelined connections (16 requests per write), slow clients that never finish
their headers, malformed requests, a call every 2 s whose sync handler sleeps past its
deadline, a call every 15 s that `os._exit`s its worker, and a kill -9 of a worker every
30 s. Every request's outcome is counted: answered (by status), or lost (its connection
ended without an answer). A lost request is explained when a worker died (a kill, an
exit) while it was open: only those may be lost. The baseline is the server itself at the
start: RSS and open descriptors of the supervisor and of the workers (which the kills
replace), after a warm-up and at the end.

    python -m bench.soak [--seconds 300]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from bench.harness import (
    RESULTS,
    descendants,
    free_port,
    publish,
    ratio,
    results_dir,
    rss_mb,
    server,
    worker_argv,
    worker_metrics,
)
from tests.client import encode, read_answer
from worker.telemetry.metrics import total

INVOKE = "/2015-03-31/functions/soak/invocations"
CLIENTS = {"invoke": 8, "proxy": 4, "pipelined": 2, "slow": 2, "malformed": 1}
PIPELINE = 16


class Tally:
    """Every request's outcome, and when workers died."""

    def __init__(self) -> None:
        self.sent = 0
        self.status: dict[str, int] = {}
        self.lost: list[tuple[float, float]] = []  # (its connection opened, seen lost)
        #: Each worker death, as the span in which it happened: a kill at once; an exit
        #: between its request's sending and the client seeing its connection end.
        self.deaths: list[tuple[float, float]] = []
        self.unfinished = 0  # slow requests still unanswered when the run ended
        #: Pipelined behind an answer that closed the connection (a 429 or a 400 ends it
        #: and nothing read after it is admitted): refused, not lost.
        self.cut = 0

    def answered(self, status: int) -> None:
        self.status[str(status)] = self.status.get(str(status), 0) + 1

    def explained(self) -> int:
        """Lost requests whose connection was open when a worker died (they may be lost: the
        process that owned the connection went)."""
        return sum(
            any(opened - 0.05 <= end and start <= seen for start, end in self.deaths)
            for opened, seen in self.lost
        )


async def _connections(
    port: int, stop: asyncio.Event
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]]:
    """Connections until the run stops, one at a time, each closed when the next is asked
    for: (reader, writer, when it opened)."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)  # a replacement worker is not listening yet
            continue
        try:
            yield reader, writer, time.monotonic()
        finally:
            writer.close()


async def _calls(port: int, tally: Tally, stop: asyncio.Event, make: Any, batch: int = 1) -> None:
    """Requests on one keep-alive connection at a time, `batch` per write; a new
    connection when the server closes one."""
    async for reader, writer, opened in _connections(port, stop):
        try:
            while not stop.is_set():
                writer.write(b"".join(make() for _ in range(batch)))
                tally.sent += batch
                for i in range(batch):
                    try:
                        answer = await read_answer(reader)
                    except (ConnectionError, asyncio.IncompleteReadError):
                        for _ in range(batch - i):
                            tally.lost.append((opened, time.monotonic()))
                        raise
                    tally.answered(answer.status)
                    if answer.status == 429:
                        await asyncio.sleep(0.01)  # refused: a real client backs off
                    if answer.headers.get("connection") == "close":
                        tally.cut += batch - i - 1
                        raise ConnectionError("closed by the server")
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass


def _invoke() -> bytes:
    action = "raise" if random.random() < 0.03 else "ok"
    return encode("POST", INVOKE, orjson.dumps({"do": action}))


def _proxy() -> bytes:
    return encode("GET", f"/items/{random.randrange(1000)}")


async def _slow(port: int, tally: Tally, stop: asyncio.Event) -> None:
    """Headers a byte at a time, never finished: the header timeout must end them."""
    async for reader, writer, opened in _connections(port, stop):
        tally.sent += 1
        try:
            for byte in b"GET /slow HTTP/1.1\r\nx-slow: ":
                writer.write(bytes([byte]))
                await asyncio.sleep(0.05)
            while True:
                if stop.is_set():
                    tally.unfinished += 1  # the run ended first
                    break
                writer.write(b"a")
                try:
                    reply = await asyncio.wait_for(reader.read(4096), timeout=0.5)
                except TimeoutError:
                    continue
                if not reply:
                    raise ConnectionError("closed without an answer")
                tally.answered(int(reply.split(b" ", 2)[1]))
                break
        except (ConnectionError, OSError, IndexError, ValueError):
            tally.lost.append((opened, time.monotonic()))


async def _malformed(port: int, tally: Tally, stop: asyncio.Event) -> None:
    garbage = [b"\x00\x01garbage\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"POST / HTTP/1.1\r\n"
               b"content-length: nope\r\n\r\n"]  # fmt: skip
    async for reader, writer, opened in _connections(port, stop):
        tally.sent += 1
        try:
            writer.write(random.choice(garbage))
            tally.answered((await read_answer(reader)).status)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            tally.lost.append((opened, time.monotonic()))
        await asyncio.sleep(0.2)


async def _every(
    seconds: float, port: int, tally: Tally, stop: asyncio.Event, event: dict[str, Any]
) -> None:
    """One invocation of `event` every `seconds` on a connection of its own."""
    while not stop.is_set():
        await asyncio.sleep(seconds)
        sent = time.monotonic()
        tally.sent += 1
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(encode("POST", INVOKE, orjson.dumps(event)))
            tally.answered((await read_answer(reader)).status)
            writer.close()
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            seen = time.monotonic()
            tally.lost.append((sent, seen))
            if event.get("do") == "exit":  # its worker died somewhere in between
                tally.deaths.append((sent, seen))


async def _killer(pid: int, every: float, tally: Tally, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(every)
        workers = descendants(pid)[1:]
        if workers:
            now = time.monotonic()
            tally.deaths.append((now, now))
            os.kill(random.choice(workers), signal.SIGKILL)


def footprint(pid: int) -> dict[str, float]:
    """RSS (MB) and open descriptors of the supervisor and, summed, of its workers."""

    def fds(p: int) -> int:
        try:
            return len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            return 0

    workers = descendants(pid)[1:]
    return {
        "supervisor_rss_mb": rss_mb(pid),
        "supervisor_fds": float(fds(pid)),
        "workers": float(len(workers)),
        "workers_rss_mb": sum(rss_mb(w) for w in workers),
        "workers_fds": float(sum(fds(w) for w in workers)),
    }


def server_counters(port: int) -> dict[str, float]:
    text = worker_metrics(port)
    names = ("worker_invocations_lost_total", "worker_hung_threads_total",
             "worker_restarts_total", "worker_recycles_total",
             "worker_queue_expired_total")  # fmt: skip
    return {name: total(text, name) for name in names}


async def soak(port: int, pid: int, seconds: float, kill_every: float) -> dict[str, Any]:
    # Writes to a connection a killed worker left behind are expected: not worth a line each.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    tally, stop = Tally(), asyncio.Event()
    tasks = [
        *(_calls(port, tally, stop, _invoke) for _ in range(CLIENTS["invoke"])),
        *(_calls(port, tally, stop, _proxy) for _ in range(CLIENTS["proxy"])),
        *(_calls(port, tally, stop, _invoke, PIPELINE) for _ in range(CLIENTS["pipelined"])),
        *(_slow(port, tally, stop) for _ in range(CLIENTS["slow"])),
        *(_malformed(port, tally, stop) for _ in range(CLIENTS["malformed"])),
        _every(2.0, port, tally, stop, {"do": "hang", "seconds": 3.0}),
        _every(kill_every / 2, port, tally, stop, {"do": "exit"}),
        _killer(pid, kill_every, tally, stop),
    ]
    running = [asyncio.ensure_future(t) for t in tasks]
    warm = min(5.0, seconds / 6)
    await asyncio.sleep(warm)
    start = footprint(pid)
    await asyncio.sleep(seconds - warm)
    stop.set()
    await asyncio.wait(running, timeout=15)
    for task in running:
        task.cancel()
    # Let a replacement the last kill asked for come up before the last reading.
    await asyncio.sleep(1.0)
    end = footprint(pid)
    explained = tally.explained()
    return {
        "seconds": seconds,
        "sent": tally.sent,
        "answered": sum(tally.status.values()),
        "status": tally.status,
        "unfinished": tally.unfinished,
        "cut": tally.cut,
        "lost": len(tally.lost),
        "lost_explained": explained,
        "lost_unexplained": len(tally.lost) - explained,
        "deaths": len(tally.deaths),
        "start": start,
        "end": end,
        "server": server_counters(port),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--kill-every", type=float, default=30.0)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    out = results_dir(args.out)
    port = free_port()
    argv_ = worker_argv(
        "serve", "bench.apps.soak", port, "--workers", "2", "--concurrency", "32",
        "--timeout", "1",
    )  # fmt: skip
    env = {"AWS_LAMBDA_LOG_LEVEL": "CRITICAL", "WORKER_HEADER_TIMEOUT": "2"}
    print(f"[soak] {args.seconds:.0f} s of mixed load, a worker killed every "
          f"{args.kill_every:.0f} s", flush=True)  # fmt: skip
    with server(argv_, port, "/_worker/ready", env=env) as proc:
        summary = asyncio.run(soak(port, proc.pid, args.seconds, args.kill_every))
    summary["method"] = {
        "clients": CLIENTS,
        "pipeline": PIPELINE,
        "faults": "3 % of Invoke calls raise; a call sleeping 3 s past a 1 s timeout every "
        f"2 s; an os._exit every {args.kill_every / 2:.0f} s; kill -9 of a worker every "
        f"{args.kill_every:.0f} s; slow clients cut by a 2 s header timeout",
    }
    publish(out, "soak", summary, table(summary))
    return summary


def headline(s: dict[str, Any]) -> str:
    """The report's headline rows: nothing lost that a death does not explain; flat memory."""
    a, b = s["start"], s["end"]
    per_worker = [x["workers_rss_mb"] / max(1.0, x["workers"]) for x in (a, b)]
    return (
        f"| soak ({s['seconds']:.0f} s, {s['deaths']} worker deaths): requests lost that no "
        f"death explains | {s['lost_unexplained']:,} of {s['sent']:,} | target 0 | |\n"
        f"| soak: RSS per worker at the end | {per_worker[1]:.0f} MB | after warm-up "
        f"{per_worker[0]:.0f} MB | **{ratio(per_worker[1], per_worker[0]):.2f}x** |\n"
    )


def table(s: dict[str, Any]) -> str:
    statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(s["status"].items()))
    a, b = s["start"], s["end"]
    srv = s["server"]
    return "\n".join(
        [
            "| requests sent | answered | by status | refused with their connection "
            "| lost (explained / not) | worker deaths |",
            "|---:|---:|---|---:|---:|---:|",
            f"| {s['sent']:,} | {s['answered']:,} | {statuses} | {s['cut']:,} | {s['lost']:,} "
            f"({s['lost_explained']:,} / **{s['lost_unexplained']:,}**) | {s['deaths']} |",
            "",
            "| process | RSS MB start → end | open fds start → end |",
            "|---|---|---|",
            f"| supervisor | {a['supervisor_rss_mb']:.0f} → {b['supervisor_rss_mb']:.0f} "
            f"| {a['supervisor_fds']:.0f} → {b['supervisor_fds']:.0f} |",
            f"| workers ({a['workers']:.0f} → {b['workers']:.0f}), summed "
            f"| {a['workers_rss_mb']:.0f} → {b['workers_rss_mb']:.0f} "
            f"| {a['workers_fds']:.0f} → {b['workers_fds']:.0f} |",
            "",
            f"Server counters: {srv['worker_restarts_total']:.0f} workers replaced, "
            f"{srv['worker_invocations_lost_total']:.0f} invocations in flight in them as they "
            "died (the supervisor's count, from their last snapshots; a lost request may also "
            "have been queued or pipelined on the dead worker's connection); of the workers "
            f"alive at the end: {srv['worker_hung_threads_total']:.0f} hung threads, "
            f"{srv['worker_recycles_total']:.0f} recycles, "
            f"{srv['worker_queue_expired_total']:.0f} queued calls expired.",
            "",
        ]
    )


if __name__ == "__main__":
    main()
