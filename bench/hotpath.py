"""In process, no sockets: the Python cost of one Invoke request through `worker serve`'s
front and pool, against the minimal Protocol of `bench/minimal_server.py`, in the same run.

A fake transport takes the answers; the same request bytes are fed to 32 connections per
round, and the loop runs until every one is answered. CPU time per request, median of 5
timed runs. With no system calls and no wrk, this is the runtime's own per-request work,
steady to a few per cent where the socket benchmark drifts by tens: the figure to watch
when changing the hot path. Under load each µs here costs more on the wire (a slower pass
of the loop finds fewer ready sockets per wake-up).

    python -m bench.hotpath [--rounds 3000] [--path invoke|proxy] [--instructions]

`--instructions` counts instructions per request under valgrind (callgrind) instead:
deterministic to 0.1 %, so it shows a change worth 1 % that the timings' ±5 % hide (a
count is no time: the interpreter's instructions are not all alike, so confirm with the
timing).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

from bench import minimal_server
from bench.http import BODY, INVOKE, PROXY
from tests.client import encode
from worker.config import Config
from worker.handler import load
from worker.pool import Pool
from worker.process import WorkerProcess
from worker.sources.http import Front, HttpProtocol

#: The request of each of bench/http.py's paths.
REQUESTS = {
    "invoke": encode("POST", INVOKE, BODY, {"content-type": "application/json"}),
    "proxy": encode("GET", PROXY),
}
REQUEST = REQUESTS["invoke"]
CONNECTIONS = 32


class Transport:
    """Takes a connection's answers; counts them."""

    def __init__(self, answered: Callable[[], None]) -> None:
        self.answered = answered

    def write(self, data: bytes) -> None:
        self.answered()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


def driver(make: Callable[[], Any], request: bytes) -> Callable[[int], Awaitable[None]]:
    """`run(n)`: n rounds of `request` sent once on each of CONNECTIONS connections made by
    `make`, each round until every connection has its answer."""
    loop = asyncio.get_running_loop()
    left = 0
    done: asyncio.Future[None] = loop.create_future()

    def answered() -> None:
        nonlocal left
        left -= 1
        if left == 0:
            done.set_result(None)

    conns = []
    for _ in range(CONNECTIONS):
        proto = make()
        proto.connection_made(Transport(answered))
        conns.append(proto)

    async def run(n: int) -> None:
        nonlocal left, done
        for _ in range(n):
            left, done = CONNECTIONS, loop.create_future()
            for proto in conns:
                proto.data_received(request)
            await done

    return run


async def per_request_us(
    make: Callable[[], Any], rounds: int, request: bytes = REQUEST
) -> list[float]:
    """CPU µs per `request` over CONNECTIONS connections made by `make`, 5 timed runs."""
    run = driver(make, request)
    await run(200)  # warm up
    runs = []
    for _ in range(5):
        start = time.process_time()
        await run(rounds)
        runs.append((time.process_time() - start) / (rounds * CONNECTIONS) * 1e6)
    return runs


async def ours() -> tuple[Callable[[], HttpProtocol], Pool]:
    """A connection factory of `worker serve`'s front over a started pool (one process's
    lanes and slots, the no-op handler), and the pool."""
    config = Config.from_env({}, concurrency=64, queue_size=1024, processes=1)
    handler = load("bench.apps.noop")
    process = WorkerProcess(
        index=0, config=config, handler=handler, sock=None, root=tempfile.mkdtemp()
    )
    pool = Pool(
        handler,
        process.lanes(config.slots_for(0)),
        config,
        worker_tmp=tempfile.mkdtemp(),
        metrics=process.metrics,
    )
    pool.start()
    front = Front(config, pool.submit, metrics_text=str, pid=0)
    return (lambda: HttpProtocol(front)), pool


async def measure(rounds: int, path: str = "invoke") -> dict[str, Any]:
    make, pool = await ours()
    request = REQUESTS[path]
    timed = await per_request_us(make, rounds, request)
    slots = [asyncio.ensure_future(minimal_server.slot()) for _ in range(minimal_server.SLOTS)]
    minimal = await per_request_us(minimal_server.Protocol, rounds, request)
    for task in slots:
        task.cancel()
    await pool.drain(0.1)
    return {
        "ours_us": statistics.median(timed),
        "minimal_us": statistics.median(minimal),
        "ratio": statistics.median(timed) / statistics.median(minimal),
        "runs": {"ours": timed, "minimal": minimal},
    }


async def _rounds_of(server: str, path: str, rounds: int) -> None:
    """The child of `instructions`: 200 rounds to warm up, then `rounds`, of one server."""
    slots: list[asyncio.Future[None]] = []
    make: Callable[[], Any]
    if server == "ours":
        make, _ = await ours()
    else:
        make = minimal_server.Protocol
        slots = [asyncio.ensure_future(minimal_server.slot()) for _ in range(minimal_server.SLOTS)]
    await driver(make, REQUESTS[path])(200 + rounds)
    for task in slots:
        task.cancel()


def instructions(path: str) -> dict[str, float]:
    """Instructions per request, counted by valgrind's callgrind: deterministic to 0.1 %
    where timings drift by 5 %, so a change worth 1 % shows. Each server runs twice, with
    100 and 600 rounds after the warm-up; the difference over 500 rounds of CONNECTIONS requests
    leaves out start-up and imports."""
    per: dict[str, float] = {}
    for server in ("ours", "minimal"):
        counts = []
        for rounds in (100, 600):
            child = [sys.executable, "-m", "bench.hotpath", "--child", server, str(rounds)]
            valgrind = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
            out = subprocess.run(
                [*valgrind, *child, "--path", path],
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONHASHSEED": "0"},  # the same dict layouts each run
                check=True,
            )
            found = re.search(r"Collected : (\d+)", out.stderr)
            if found is None:
                raise SystemExit(f"callgrind printed no count:\n{out.stderr[-2000:]}")
            counts.append(int(found.group(1)))
        per[server] = (counts[1] - counts[0]) / (500 * CONNECTIONS)
    return per


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3000)
    ap.add_argument("--path", choices=sorted(REQUESTS), default="invoke")
    ap.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per request under valgrind instead of timing (about 1 min)",
    )
    ap.add_argument("--child", nargs=2, metavar=("SERVER", "ROUNDS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        uvloop.run(_rounds_of(args.child[0], args.path, int(args.child[1])))
        return {}
    if args.instructions:
        if shutil.which("valgrind") is None:
            raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
        per = instructions(args.path)
        print(
            f"worker serve's front and pool: {per['ours']:,.0f} instructions per {args.path} "
            f"request; the minimal Protocol: {per['minimal']:,.0f} "
            f"({per['ours'] / per['minimal']:.1f}x)"
        )
        return per
    result = uvloop.run(measure(args.rounds, args.path))
    print(
        f"worker serve's front and pool: {result['ours_us']:.2f} µs of CPU per {args.path} "
        "request; "
        f"the minimal Protocol: {result['minimal_us']:.2f} µs ({result['ratio']:.1f}x)"
    )
    return result


if __name__ == "__main__":
    main()
