"""The least a Python server of our design can do per request: bench/http.py's reference row.

An asyncio.Protocol on uvloop with httptools, as `worker serve`'s front: the body parsed
with orjson, handed through a queue to slot tasks, the same no-op handler awaited, its
result written back. No Lambda context, request ids, lanes, metrics, deadlines, limits,
keep-alive or error handling: what is left is the cost of the design itself, and the gap
to `worker serve` is the cost of everything that makes it a runtime.

    python -m bench.minimal_server PORT [PROCESSES]
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections import deque
from typing import Any, cast

import httptools
import orjson
import uvloop

from bench.apps import noop

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
SLOTS = 64

Job = tuple["Protocol", Any]
queue: deque[Job] = deque()
idle: deque[asyncio.Future[Job]] = deque()


class Protocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.parser = httptools.HttpRequestParser(self)
        self.body: list[bytes] = []

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        raw = b"".join(self.body)
        self.body = []
        job = (self, orjson.loads(raw) if raw else {})
        while idle:
            waiter = idle.popleft()
            if not waiter.done():
                waiter.set_result(job)
                return
        queue.append(job)


async def slot() -> None:
    loop = asyncio.get_running_loop()
    while True:
        if queue:
            proto, event = queue.popleft()
        else:
            waiter: asyncio.Future[Job] = loop.create_future()
            idle.append(waiter)
            proto, event = await waiter
        body = orjson.dumps(await noop(event, None))
        proto.transport.write(HEAD % len(body) + body)


async def serve(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    server = await loop.create_server(Protocol, sock=sock)
    slots = [asyncio.ensure_future(slot()) for _ in range(SLOTS)]
    await stop.wait()
    server.close()
    for task in slots:
        task.cancel()


def main() -> None:
    port = int(sys.argv[1])
    processes = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    sock.setblocking(False)
    children: list[int] = []
    for _ in range(processes - 1):
        pid = os.fork()
        if pid == 0:
            children = []
            break
        children.append(pid)
    uvloop.run(serve(sock))
    for pid in children:  # the processes this one started, by PID
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
