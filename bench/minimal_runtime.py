"""The least a Python runtime of our design can do per invocation: bench/lambda.py's reference.

One process, one uvloop loop, one keep-alive connection per `AWS_LAMBDA_MAX_CONCURRENCY`
slot (ours: `worker.sources.http_client`), each answer written in one write with the next
`/next` behind it, as `worker lambda` does. The same no-op handler; no Lambda context,
pool, lanes, metrics, logs, deadlines or error handling. What it reaches under the same
emulator says what the machine and the emulator allow a Python runtime; the gap to
`worker lambda` is the cost of what makes it a runtime.

    worker emulate bench.apps.noop -- python -m bench.minimal_runtime
"""

from __future__ import annotations

import asyncio
import os

import orjson
import uvloop

from bench.apps import noop
from worker.sources.http_client import ClientConnection, Response
from worker.sources.runtime_api import NEXT, PREFIX, parse_address


async def poller(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    conn = await ClientConnection.open(host, port)
    pending: asyncio.Future[Response] = loop.create_future()
    conn.send([conn.encode(b"GET", NEXT)], pending)
    while True:
        event = await pending
        request_id = event.headers[b"lambda-runtime-aws-request-id"]
        body = orjson.dumps(await noop(orjson.loads(event.body), None))
        path = PREFIX + b"/invocation/" + request_id + b"/response"
        replied: asyncio.Future[Response] = loop.create_future()
        pending = loop.create_future()
        conn.send([conn.encode(b"POST", path, body), conn.encode(b"GET", NEXT)], replied, pending)


async def main() -> None:
    host, port = parse_address(os.environ["AWS_LAMBDA_RUNTIME_API"])
    slots = int(os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY") or 1)
    await asyncio.gather(*(poller(host, port) for _ in range(slots)))


if __name__ == "__main__":
    uvloop.run(main())
