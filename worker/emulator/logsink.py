"""The emulator's side of the platform's log egress: LMI's log socket and the framed log fd.

Both are off unless asked for, so a runtime run without them writes to the stdout and
stderr it inherits from the emulator, as before, at no cost:

- `--log-socket 1` (WORKER_EMULATE_LOG_SOCKET=1): a unix stream socket in a private
  directory, its path given to the runtime as `_LAMBDA_TELEMETRY_LOG_FD_PROVIDER_SOCKET`,
  as on Lambda Managed Instances. Each connection is a stream of its own, numbered from 1
  in the order they connect: the emulator logs "log stream opened" with its number and
  the pid of the process that connected (the socket's peer credentials), then writes each
  line the stream carries to its own stdout as `[stream N] LINE`.
- `--log-frames 1` (WORKER_EMULATE_LOG_FRAMES=1): a pipe whose write end the runtime
  inherits, its number given as `_LAMBDA_TELEMETRY_LOG_FD`. Each frame read from it is one
  event, written as one line: `[frame 0xTYPE MICROSECONDS] MESSAGE` with the message as a
  JSON string (its newlines escaped, so a record of many lines stays on one line). Bytes
  that are not a frame are reported once, and the rest of the fd is then ignored: after
  them, no frame boundary can be trusted.

The main process of the runtime keeps the emulator's stdout and stderr, as the platform
wires a runtime's main process at its spawn.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import struct
import sys
import tempfile
from collections.abc import Callable
from typing import cast

from worker.telemetry.egress import FD_VARIABLE, FRAME_MAGIC, HEADER_SIZE, SOCKET_VARIABLE

log = logging.getLogger("worker.emulator")

#: The longest frame the emulator accepts; a longer length means the fd is out of step.
MAX_FRAME = 1024 * 1024
#: How long the emulator waits, once the runtime has exited, for the last lines to arrive.
CLOSE_WAIT = 2.0

Write = Callable[[str], None]


def _stdout(line: str) -> None:
    sys.stdout.write(line)
    sys.stdout.flush()


class LogSink:
    """The socket and the framed fd offered to one runtime, and their readers."""

    def __init__(self, *, streams: bool, frames: bool, write: Write = _stdout) -> None:
        self.streams = streams
        self.frames = frames
        self.write = write
        self.env: dict[str, str] = {}
        self.pass_fds: tuple[int, ...] = ()
        self.opened = 0  # streams connected so far
        self.readers: set[asyncio.Future[None]] = set()
        self._dir = ""
        self._server: asyncio.AbstractServer | None = None
        self._write_end = -1

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        if self.streams:
            self._dir = tempfile.mkdtemp(prefix="worker-logs-")
            path = os.path.join(self._dir, "egress.sock")
            self._server = await loop.create_unix_server(lambda: _Stream(self), path)
            self.env[SOCKET_VARIABLE] = path
        if self.frames:
            read_end, self._write_end = os.pipe()
            done = loop.create_future()
            self.readers.add(done)
            pipe = os.fdopen(read_end, "rb", buffering=0)
            await loop.connect_read_pipe(lambda: _Frames(self, done), pipe)
            self.env[FD_VARIABLE] = str(self._write_end)
            self.pass_fds = (self._write_end,)

    def spawned(self) -> None:
        """The runtime holds the write end now: the emulator's copy goes, so the reader
        sees the end of the fd when the runtime's last process exits."""
        if self._write_end >= 0:
            os.close(self._write_end)
            self._write_end = -1

    async def close(self) -> None:
        """After the runtime exited: show what its streams still carry, then stop."""
        self.spawned()
        if self._server is not None:
            self._server.close()
        if self.readers:
            await asyncio.wait(list(self.readers), timeout=CLOSE_WAIT)
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)


class _Stream(asyncio.Protocol):
    """One connection to the log socket: a process's stdout or stderr."""

    def __init__(self, sink: LogSink) -> None:
        self.sink = sink
        self.number = 0
        self.pending = b""
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.sink.opened += 1
        self.number = self.sink.opened
        self.sink.readers.add(self.done)
        log.info(
            "log stream opened",
            extra={"fields": {"stream": self.number, "pid": _peer_pid(transport)}},
        )

    def data_received(self, data: bytes) -> None:
        *lines, self.pending = (self.pending + data).split(b"\n")
        if lines:
            prefix = f"[stream {self.number}] "
            self.sink.write(
                "".join(prefix + line.decode("utf-8", "replace") + "\n" for line in lines)
            )

    def connection_lost(self, exc: Exception | None) -> None:
        if self.pending:  # a last line without its newline
            self.data_received(b"\n")
        if not self.done.done():
            self.done.set_result(None)


def _peer_pid(transport: asyncio.BaseTransport) -> int | None:
    sock = cast(socket.socket | None, transport.get_extra_info("socket"))
    if sock is None:
        return None
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    pid: int = struct.unpack("3i", creds)[0]
    return pid


class _Frames(asyncio.Protocol):
    """The read end of the framed log fd."""

    def __init__(self, sink: LogSink, done: asyncio.Future[None]) -> None:
        self.sink = sink
        self.done = done
        self.buffer = bytearray()
        self.broken = False

    def data_received(self, data: bytes) -> None:
        if self.broken:
            return
        buffer = self.buffer
        buffer += data
        out: list[str] = []
        while len(buffer) >= HEADER_SIZE:
            length = int.from_bytes(buffer[4:8], "big")
            if buffer[:2] != FRAME_MAGIC or length > MAX_FRAME:
                self.broken = True
                log.error(
                    "the log fd carries bytes that are not a frame; ignoring the rest",
                    extra={"fields": {"bytes": bytes(buffer[:HEADER_SIZE]).hex()}},
                )
                buffer.clear()
                break
            if len(buffer) < HEADER_SIZE + length:
                break
            kind = bytes(buffer[:4]).hex()
            stamp = int.from_bytes(buffer[8:16], "big")
            message = bytes(buffer[HEADER_SIZE : HEADER_SIZE + length]).decode("utf-8", "replace")
            del buffer[: HEADER_SIZE + length]
            out.append(f"[frame 0x{kind} {stamp}] {json.dumps(message, ensure_ascii=False)}\n")
        if out:
            self.sink.write("".join(out))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.buffer and not self.broken:
            log.error(
                "the log fd ended inside a frame", extra={"fields": {"bytes": len(self.buffer)}}
            )
        if not self.done.done():
            self.done.set_result(None)
