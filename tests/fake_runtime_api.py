"""A fake Lambda Runtime API that records every post, and runtimes run against it.

It hands the events a test queues to `/next` long polls (each with the deadline the test
chose) and keeps every `/response` and `/error` post with its headers: what a runtime
posted, or did not, is then plain to see, whichever runtime it is (`worker lambda`,
awslambdaric).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from tests.conftest import ROOT, _environ

PREFIX = b"/2018-06-01/runtime/invocation/"


@dataclass
class Post:
    request_id: str
    kind: str  # "response" or "error"
    headers: dict[bytes, bytes]  # lower-case names
    body: bytes

    def json(self) -> object:
        return orjson.loads(self.body)


class FakeRuntimeApi:
    """Serves `/next` from a queue of events; records posts, answering each 202."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[tuple[str, bytes, int]] = asyncio.Queue()
        self.posts: list[Post] = []
        self.polls = 0
        self._changed = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.address = ""

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.address = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self.address

    def add(self, request_id: str, event: object, timeout: float = 300.0) -> None:
        """Queue an invocation whose deadline is `timeout` seconds from now."""
        deadline_ms = int((time.time() + timeout) * 1000)
        self.events.put_nowait((request_id, orjson.dumps(event), deadline_ms))

    def posted(self, request_id: str) -> list[Post]:
        return [p for p in self.posts if p.request_id == request_id]

    async def wait_for(self, done: Callable[[], bool], timeout: float = 30.0) -> None:
        """Wait until `done()` holds, re-checked at every poll and post."""
        end = asyncio.get_running_loop().time() + timeout
        while not done():
            self._changed.clear()
            left = end - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"not done after {timeout}s; posts: {self.posts}")
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                continue

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(self._connections, timeout=5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        assert me is not None
        self._connections.add(me)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *fields = head[:-4].split(b"\r\n")
                headers = {}
                for field in fields:
                    name, _, value = field.partition(b":")
                    headers[name.strip().lower()] = value.strip()
                if headers.get(b"expect", b"").lower() == b"100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
                method, target, _ = line.split(b" ", 2)
                if method == b"GET" and target.endswith(b"/invocation/next"):
                    self.polls += 1
                    self._changed.set()
                    request_id, event, deadline_ms = await self.events.get()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nlambda-runtime-aws-request-id: %s\r\n"
                        b"lambda-runtime-deadline-ms: %d\r\n"
                        b"lambda-runtime-invoked-function-arn: "
                        b"arn:aws:lambda:us-east-1:000000000000:function:fake\r\n"
                        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                        % (request_id.encode(), deadline_ms, len(event), event)
                    )
                elif method == b"POST" and target.startswith(PREFIX):
                    request_id, _, kind = target[len(PREFIX) :].decode().partition("/")
                    self.posts.append(Post(request_id, kind, headers, body))
                    self._changed.set()
                    writer.write(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
                else:
                    writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            # close(): end quietly (asyncio's stream server reports a cancelled handler).
            pass
        finally:
            self._connections.discard(me)
            writer.close()


class Runtime:
    """A runtime process (its command) polling a fake Runtime API, logging to a file."""

    def __init__(
        self, command: list[str], address: str, log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        environ = _environ(
            {
                "AWS_LAMBDA_RUNTIME_API": address,
                "AWS_LAMBDA_FUNCTION_NAME": "fake",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_LOG_FORMAT": "JSON",
                "AWS_REGION": "us-east-1",
                "LAMBDA_TASK_ROOT": str(ROOT),
                "WORKER_GRACE": "1",
                **(env or {}),
            }
        )
        self.proc = subprocess.Popen(
            command, cwd=ROOT, env=environ, stdout=self._log, stderr=subprocess.STDOUT
        )

    def logs(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    async def stop(self) -> None:
        """SIGTERM (the runtime drains, posting to the fake meanwhile), then SIGKILL if it
        outlives its grace."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait)
        self._log.close()


def worker_lambda(handler: str) -> list[str]:
    return [sys.executable, "-m", "worker", "lambda", handler]


def awslambdaric(handler: str) -> list[str]:
    return [sys.executable, "-m", "awslambdaric", handler]
