"""In process, no sockets: the Python cost of one Invoke request through `worker serve`'s
front and pool, against the minimal Protocol of `bench/minimal_server.py`, in the same run.

A fake transport takes the answers; the same request bytes are fed to 32 connections per
round, and the loop runs until every one is answered. CPU time per request, median of 5
timed runs. With no system calls and no wrk, this is the runtime's own per-request work,
steady to a few per cent where the socket benchmark drifts by tens: the figure to watch
when changing the hot path. Under load each µs here costs more on the wire (a slower pass
of the loop finds fewer ready sockets per wake-up).

    python -m bench.hotpath [--rounds 3000] [--path invoke|proxy]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
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


async def per_request_us(
    make: Callable[[], Any], rounds: int, request: bytes = REQUEST
) -> list[float]:
    """CPU µs per `request` over CONNECTIONS connections made by `make`, 5 timed runs."""
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

    await run(200)  # warm up
    runs = []
    for _ in range(5):
        start = time.process_time()
        await run(rounds)
        runs.append((time.process_time() - start) / (rounds * CONNECTIONS) * 1e6)
    return runs


async def measure(rounds: int, path: str = "invoke") -> dict[str, Any]:
    config = Config.from_env({}, concurrency=64, queue_size=1024, processes=1)
    handler = load("bench.apps.noop")
    process = WorkerProcess(
        index=0, config=config, handler=handler, sock=None, root=tempfile.mkdtemp()
    )
    pool = Pool(
        handler,
        process._lanes(config.slots_for(0)),
        config,
        worker_tmp=tempfile.mkdtemp(),
        metrics=process.metrics,
    )
    pool.start()
    front = Front(config, pool.submit, metrics_text=str, pid=0)
    request = REQUESTS[path]
    ours = await per_request_us(lambda: HttpProtocol(front), rounds, request)
    slots = [asyncio.ensure_future(minimal_server.slot()) for _ in range(minimal_server.SLOTS)]
    minimal = await per_request_us(minimal_server.Protocol, rounds, request)
    for task in slots:
        task.cancel()
    await pool.drain(0.1)
    return {
        "ours_us": statistics.median(ours),
        "minimal_us": statistics.median(minimal),
        "ratio": statistics.median(ours) / statistics.median(minimal),
        "runs": {"ours": ours, "minimal": minimal},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3000)
    ap.add_argument("--path", choices=sorted(REQUESTS), default="invoke")
    args = ap.parse_args(argv)
    result = uvloop.run(measure(args.rounds, args.path))
    print(
        f"worker serve's front and pool: {result['ours_us']:.2f} µs of CPU per {args.path} "
        "request; "
        f"the minimal Protocol: {result['minimal_us']:.2f} µs ({result['ratio']:.1f}x)"
    )
    return result


if __name__ == "__main__":
    main()
