"""Where log records leave the process: stdout, or the platform's framed log fd; LMI's streams.

Lambda takes a runtime's logs in one of three ways, all of them set up by the platform
through the environment (awslambdaric 4.2.2 reads the same variables):

- nothing set: whatever the process writes to stdout and stderr;
- `_LAMBDA_TELEMETRY_LOG_FD=N`: each log record is one frame on fd N, so a record of many
  lines stays one CloudWatch event. A frame is big-endian: 4-byte type, 4-byte length,
  8-byte timestamp (µs since the epoch), then the UTF-8 message. The variable is removed
  from the environment once read, so the handler's code and its subprocesses never see it;
- `_LAMBDA_TELEMETRY_LOG_FD_PROVIDER_SOCKET=PATH` (Lambda Managed Instances): every forked
  worker process connects to that unix stream socket twice, once for its stdout and once
  for its stderr, and `dup2`s each connection onto that descriptor, so each worker's lines
  reach CloudWatch as a stream of their own. The main process's stdout and stderr were
  wired by the platform when it was spawned. When this is set, awslambdaric's workers log
  to their stdout, not to a framed fd, and so do ours. (awslambdaric reads the variable
  only on LMI, where the platform sets it; this runtime whenever it is set.)

Frames from several processes on one fd must never interleave. One `write` per frame is
atomic only up to PIPE_BUF (4 KiB) on a pipe, and not at all on a stream socket: a larger
write can be split when the reader lags, and another process's frame lands in the gap.
So every write of a frame holds a lock that all the environment's processes share: a
POSIX record lock on an anonymous file opened before the fork (per process, released by
the kernel when its holder dies, so a worker killed mid-write blocks no one), and a
thread lock for the threads of one process. On the main thread, signals are held off for
the write: a signal handler that raises (a deadline's SIGALRM) between two parts of a
partial write would leave half a frame on the fd, and every frame after it unreadable.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import MutableMapping
from typing import Protocol

FD_VARIABLE = "_LAMBDA_TELEMETRY_LOG_FD"
SOCKET_VARIABLE = "_LAMBDA_TELEMETRY_LOG_FD_PROVIDER_SOCKET"

#: Frame types by level bucket (logging's levels rounded down to tens), as awslambdaric
#: writes them; the NOTSET entry is a record without a level.
TEXT_FRAME_TYPES: dict[int, bytes] = {
    logging.NOTSET: (0xA55A0003).to_bytes(4, "big"),
    logging.DEBUG: (0xA55A000B).to_bytes(4, "big"),
    logging.INFO: (0xA55A000F).to_bytes(4, "big"),
    logging.WARNING: (0xA55A0013).to_bytes(4, "big"),
    logging.ERROR: (0xA55A0017).to_bytes(4, "big"),
    logging.CRITICAL: (0xA55A001B).to_bytes(4, "big"),
}
JSON_FRAME_TYPES: dict[int, bytes] = {
    logging.NOTSET: (0xA55A0002).to_bytes(4, "big"),
    logging.DEBUG: (0xA55A000A).to_bytes(4, "big"),
    logging.INFO: (0xA55A000E).to_bytes(4, "big"),
    logging.WARNING: (0xA55A0012).to_bytes(4, "big"),
    logging.ERROR: (0xA55A0016).to_bytes(4, "big"),
    logging.CRITICAL: (0xA55A001A).to_bytes(4, "big"),
}
DEFAULT_FRAME_TYPE = TEXT_FRAME_TYPES[logging.NOTSET]
#: Every frame type starts with these two bytes (what a reader checks to stay in step).
FRAME_MAGIC = b"\xa5\x5a"
HEADER_SIZE = 16

_ALL_SIGNALS = signal.valid_signals()


class Sink(Protocol):
    """What the log handlers write through."""

    def log(self, message: str, frame_type: bytes | None = None) -> None:
        """One record, already formatted (its trailing newline included)."""

    def log_error(self, lines: list[str], frame_type: bytes) -> None:
        """An invocation's error report, one item per line (awslambdaric's `log_error`)."""


class StdoutSink:
    """Records go to `sys.stdout` (looked up at each write, as awslambdaric does, so a
    replaced `sys.stdout` is honoured), each ending its line.

    awslambdaric writes a Text record with an exception as is, with no newline after the
    traceback, so the next record continued its last line on a line-oriented stream. On
    Lambda itself records are frames and that never shows; here each record ends its line
    so none is glued to the next (`worker.telemetry.lines` holds a partial line back).
    """

    def log(self, message: str, frame_type: bytes | None = None) -> None:
        sys.stdout.write(message if message.endswith("\n") else message + "\n")

    def log_error(self, lines: list[str], frame_type: bytes) -> None:
        # "\r" keeps the report one CloudWatch event on a line-oriented stream.
        sys.stdout.write("\r".join(lines) + "\n")


class FramedSink:
    """Records as frames on the platform's log fd, one frame per record, never interleaved
    with another process's (see the module's docstring)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._guard = tempfile.TemporaryFile()  # noqa: SIM115 - held for the process's life
        self._thread_lock = threading.Lock()
        # A fork while another thread holds the thread lock must not leave it held forever.
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        self._thread_lock = threading.Lock()

    def log(self, message: str, frame_type: bytes | None = None) -> None:
        data = message.encode("utf-8")
        stamp = time.time_ns() // 1000
        self.write(
            (frame_type or DEFAULT_FRAME_TYPE)
            + len(data).to_bytes(4, "big")
            + stamp.to_bytes(8, "big")
            + data
        )

    def log_error(self, lines: list[str], frame_type: bytes) -> None:
        self.log("\n".join(lines), frame_type)

    def write(self, frame: bytes) -> None:
        """Write one whole frame, alone on the fd."""
        held = threading.current_thread() is threading.main_thread()
        with self._thread_lock:
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, _ALL_SIGNALS) if held else None
            try:
                fcntl.lockf(self._guard.fileno(), fcntl.LOCK_EX)
                try:
                    _write_all(self.fd, frame)
                finally:
                    fcntl.lockf(self._guard.fileno(), fcntl.LOCK_UN)
            finally:
                if mask is not None:
                    signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:  # a non-blocking fd: wait until it takes more
            select.select([], [fd], [])


def open_sink(environ: MutableMapping[str, str] | None = None) -> Sink:
    """The sink the platform asked for, the framed fd's variable removed from the
    environment. With LMI's provider socket set, records go to stdout (each worker's
    stdout is its own connection) and a framed fd passed besides is closed, as
    awslambdaric's workers never write to it."""
    env = os.environ if environ is None else environ
    raw = env.pop(FD_VARIABLE, None)
    if raw is None:
        return StdoutSink()
    try:
        fd = int(raw)
        os.fstat(fd)
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"ignoring {FD_VARIABLE}={raw!r}: {exc}; logging to stdout\n")
        return StdoutSink()
    if env.get(SOCKET_VARIABLE):
        with contextlib.suppress(OSError):
            os.close(fd)
        return StdoutSink()
    return FramedSink(fd)


def connect_streams(environ: MutableMapping[str, str] | None = None) -> bool:
    """In a forked worker, on LMI: connect stdout and stderr to the platform's log socket,
    a connection each. Returns whether they were; without the socket, or when it cannot
    be reached, the worker keeps the descriptors it inherited (a line says why)."""
    env = os.environ if environ is None else environ
    path = env.get(SOCKET_VARIABLE)
    if not path:
        return False
    # The descriptors themselves, not whatever sys.stdout wraps: C code and subprocesses
    # write to 1 and 2 too.
    for stream, fd in ((sys.stdout, 1), (sys.stderr, 2)):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()  # what was written before goes where it was meant to
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.connect(path)
                os.dup2(conn.fileno(), fd)
        except OSError as exc:
            sys.stderr.write(f"cannot connect to the log socket {path}: {exc}\n")
            return False
    return True
