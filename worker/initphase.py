"""The init phase: load the handler once, under a time limit, while the socket answers 503."""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TypeVar

from worker.config import Config
from worker.errors import LambdaError
from worker.sources.runtime_api import error_request, parse_address
from worker.telemetry import logs

log = logging.getLogger("worker.init")

T = TypeVar("T")

#: Exit status of a worker whose own init failed (an ASGI app's lifespan startup, a
#: SnapStart hook): a replacement would fail alike, so the supervisor ends the environment.
EXIT_INIT_FAILED = 77

#: What awslambdaric logs (at WARNING, through the root logger) before an init error's
#: report: the platform's own words, so a function's failed init reads the same here.
UNHANDLED_WARNING = (
    "LAMBDA_WARNING: Unhandled exception. The most likely cause is an issue in the function "
    "code. However, in rare cases, a Lambda runtime update can cause unexpected function "
    "behavior. For functions using managed runtimes, runtime updates can be triggered by a "
    "function change, or can be applied automatically. To determine if the runtime has been "
    "updated, check the runtime version in the INIT_START log entry. If this error "
    "correlates with a change in the runtime version, you may be able to mitigate this "
    "error by temporarily rolling back to the previous runtime version. For more "
    "information, see https://docs.aws.amazon.com/lambda/latest/dg/runtimes-update.html\r"
)


class InitResponder:
    """Answers on the listening sockets until the workers take them over.

    `/_worker/health` is 200 (the process lives); everything else is 503, so a load
    balancer or a caller learns that init is still running instead of timing out.
    A thread, stopped and joined before any fork.
    """

    def __init__(self, sockets: list[socket.socket]) -> None:
        self.sockets = sockets
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="init-responder", daemon=True)

    def __enter__(self) -> InitResponder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        os.write(self._wake_w, b"x")
        self._thread.join()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _serve(self) -> None:
        with selectors.DefaultSelector() as sel:
            for sock in self.sockets:
                sel.register(sock, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while True:
                for key, _ in sel.select():
                    if key.fileobj == self._wake_r:
                        return
                    listener = key.fileobj
                    assert isinstance(listener, socket.socket)
                    try:
                        conn, _ = listener.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    with conn:
                        self._answer(conn)

    @staticmethod
    def _answer(conn: socket.socket) -> None:
        conn.settimeout(1.0)
        data = b""
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in data and len(data) < 16384:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
        parts = data.split(b" ", 2)
        path = parts[1] if len(parts) > 1 else b""
        if path == b"/_worker/health":
            status, body = b"200 OK", b'{"status":"ok","phase":"init"}'
        elif path == b"/_worker/ready":
            status, body = b"503 Service Unavailable", b'{"status":"initializing"}'
        else:
            status = b"503 Service Unavailable"
            body = (
                b'{"errorType":"ServiceException",'
                b'"errorMessage":"The function is still initializing"}'
            )
        head = (
            b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"retry-after: 1\r\nconnection: close\r\n\r\n" % (status, len(body))
        )
        with contextlib.suppress(OSError):
            conn.sendall(head + body)


class InitTimeout(BaseException):
    """Raised in the main thread when the init phase outlives its limit."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the main thread after `seconds` (SIGALRM), as LMI's init limit does."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise InitTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_init(step: Callable[[], T], limit: float) -> T:
    """Run the init phase once; a timeout or a failure becomes a LambdaError."""
    started = time.monotonic()
    try:
        with time_limit(limit):
            result = step()
    except InitTimeout:
        raise LambdaError(
            "Runtime.InitTimeout", f"Init phase timed out after {limit:.2f} seconds"
        ) from None
    log.info(
        "init phase done",
        extra={"fields": {"seconds": round(time.monotonic() - started, 3)}},
    )
    return result


def init_failed(config: Config, error: LambdaError) -> None:
    """Report a failed init as awslambdaric does, in every mode: the platform's warning
    and the error report in the log format, then (Lambda mode) `/runtime/init/error`."""
    logging.getLogger().warning(UNHANDLED_WARNING)
    logs.report_error(error, "")
    log.error("init failed: %s: %s", error.error_type, error.message)
    if config.mode == "lambda":
        post_init_error(config.runtime_api, error)


def post_init_error(runtime_api: str, error: LambdaError) -> None:
    """POST /runtime/init/error; a 403 means another process reported first (ignored)."""
    import http.client  # only a failed init needs it

    host, port = parse_address(runtime_api)
    body, headers = error_request(error, None)
    extra = dict(line.split(": ", 1) for line in headers.decode().strip().split("\r\n") if line)
    try:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request("POST", "/2018-06-01/runtime/init/error", body, extra)
        status = conn.getresponse().status
        conn.close()
    except OSError as exc:
        log.error("could not report the init error to the Runtime API: %s", exc)
        return
    if status not in (202, 403):
        log.error("the Runtime API answered %d to /init/error", status)
