"""The operator's listener: metrics, stats, dashboard and executions, off the service port.

The service port may face the internet (the image binds 0.0.0.0, an ALB forwards every
path to it), so it answers only what a load balancer needs (`/_worker/health`,
`/_worker/ready`). What an operator reads — `/_worker/metrics`, `/_worker/stats`,
`/_worker/dashboard`, `/_worker/executions/NAME` — is served on `WORKER_ADMIN_HOST`:
`WORKER_ADMIN_PORT` (127.0.0.1:8081 by default; port 0 turns it off). The supervisor opens
one socket, every worker process accepts on it (any of them can answer: metrics and stats
merge every process's figures), and a worker stops accepting on it when it drains.
"""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import unquote

from worker.sources.http import Front, HttpProtocol, _Exchange
from worker.telemetry import dashboard

_NOT_HERE = ("ResourceNotFoundException", "The admin listener serves /_worker/ endpoints only")


def open_socket(host: str, port: int) -> socket.socket | None:
    """The admin listener's socket (None when port is 0); OSError when it cannot bind."""
    if not port:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


async def serve(front: Front, sock: socket.socket) -> asyncio.Server:
    """Accept admin connections in this worker process until the returned server closes."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: AdminProtocol(front), sock=sock, backlog=128)


def stop(server: asyncio.Server | None) -> None:
    """Stop accepting admin connections in this process (the others still accept)."""
    if server is not None:
        server.close()


def endpoint(proto: HttpProtocol, path: bytes, head: bool, close: bool) -> bool:
    """Answer an operator's endpoint on `proto`'s connection; False when `path` is none."""
    front = proto.front
    if path == b"/_worker/metrics":
        text = front.metrics_text().encode()
        ctype = b"content-type: text/plain; version=0.0.4; charset=utf-8\r\n"
        proto._answer_now(200, body=text, head=head, close=close, ctype=ctype)
    elif path == b"/_worker/stats" and front.stats_json is not None:
        proto._answer_now(200, body=front.stats_json(), head=head, close=close)
    elif path == b"/_worker/dashboard":
        ctype = b"content-type: text/html; charset=utf-8\r\n"
        proto._answer_now(200, body=dashboard.page(), head=head, close=close, ctype=ctype)
    elif path.startswith(b"/_worker/executions/"):
        _execution(proto, unquote(path[20:].decode("utf-8", "replace")), head, close)
    else:
        return False
    return True


def _execution(proto: HttpProtocol, name: str, head: bool, close: bool) -> None:
    """A durable execution, read from its store (`worker.durable.admin`): answered when the
    read is done, in its place in the connection's order."""
    from worker.durable import admin

    owed = _Exchange(None, None)
    owed.proto, owed.answer, owed.head, owed.close, owed.data = proto, "admin", head, close, None
    proto.pending.append(owed)

    async def read() -> None:
        status, body = await admin.answer(name)
        owed.data = proto._response(status, body, close, head=head)
        proto._flush()

    proto.front.tasks.add(task := asyncio.ensure_future(read()))
    task.add_done_callback(proto.front.tasks.discard)


class AdminProtocol(HttpProtocol):
    """An admin connection: the `/_worker/` endpoints, and 404 for anything else (an
    invocation never runs here)."""

    def _internal(self, path: bytes, head: bool, close: bool) -> bool:
        return super()._internal(path, head, close) or endpoint(self, path, head, close)

    def _invoke(self, headers: list[tuple[bytes, bytes]], body: bytes, close: bool) -> None:
        self._answer_now(404, error=_NOT_HERE, close=close)

    def _proxy(
        self,
        method: bytes,
        url: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        version: str,
        head: bool,
        close: bool,
    ) -> None:
        self._answer_now(404, error=_NOT_HERE, head=head, close=close)
