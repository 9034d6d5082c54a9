"""WSGI apps served natively (PEP 3333): a request as an environ, the app's answer gathered
into a whole response.

`run_wsgi` is synchronous: a `WsgiApp` is a sync handler, so it runs on the process's
thread pool (or on the loop, where its calls never block: `worker.placement`). The body
iterable is gathered and closed; nothing streams.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any
from urllib.parse import unquote_to_bytes

from worker.httpmsg import HttpRequest, HttpResponse, lambda_adapter

log = logging.getLogger("worker.wsgi")

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WsgiCallable = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_DEFAULT_PORTS = {"http": "80", "https": "443"}


class WsgiApp:
    """A WSGI app as a handler: an `HttpRequest` event (from `worker serve`) is served
    natively; any other event (API Gateway, ALB, Function URL) goes to the Lambda HTTP
    adapter."""

    def __init__(self, app: WsgiCallable) -> None:
        self.app = app

    def __call__(self, event: Any, context: Any) -> Any:
        if type(event) is HttpRequest:
            return run_wsgi(self.app, event)
        return lambda_adapter().handle_wsgi(self.app, event, context)

    def __repr__(self) -> str:
        return f"WsgiApp({self.app!r})"


def run_wsgi(app: WsgiCallable, request: HttpRequest) -> HttpResponse:
    """Serve one request with a WSGI app. An exception is a 500 (logged with its
    traceback)."""
    head: list[Any] = []  # [status, headers] once start_response was called
    body: list[bytes] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], object]:
        if head and exc_info is None:
            raise AssertionError("start_response called a second time without exc_info")
        # With exc_info the app replaces its head after an error. Nothing is sent before
        # the app returns, so the head can always be replaced (PEP 3333 re-raises only
        # once headers went out).
        head[:] = [status, headers]
        return body.append  # the legacy write(): its data comes before the iterable's

    try:
        result = app(environ_of(request), start_response)
        try:
            for chunk in result:
                if chunk:
                    body.append(chunk)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if not head:
            raise RuntimeError("The WSGI app returned without calling start_response")
        status, headers = head
        return HttpResponse(
            int(status.split(" ", 1)[0]),
            [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            b"".join(body),
        )
    except Exception as exc:
        log.error("Exception in WSGI application", exc_info=exc)
        return HttpResponse(
            500, [(b"content-type", b"text/plain; charset=utf-8")], b"Internal Server Error"
        )


def environ_of(request: HttpRequest) -> dict[str, Any]:
    """The PEP 3333 environ of a request.

    Repeated headers are joined with "," (cookies with "; "); headers whose names hold an
    underscore are dropped, as gunicorn and nginx drop them: `X_User` would otherwise
    arrive as `HTTP_X_USER`, the name `X-User` is read by, and pass for it.
    """
    script_name = request.root_path
    raw = request.raw_path
    # PATH_INFO is the decoded path's bytes as latin-1 characters (PEP 3333's "bytes as
    # str"); frameworks re-encode it.
    if raw:
        path = unquote_to_bytes(raw).decode("latin-1")
    else:
        path = request.path.encode("utf-8", "surrogateescape").decode("latin-1")
    if script_name and path.startswith(script_name):
        path = path[len(script_name) :]
    body = request.body
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path,
        "QUERY_STRING": request.query_string.decode("latin-1"),
        "SERVER_PROTOCOL": f"HTTP/{request.http_version}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": request.scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in request.headers:
        if name == b"content-type":
            environ["CONTENT_TYPE"] = value.decode("latin-1")
            continue
        if name == b"content-length":
            environ["CONTENT_LENGTH"] = str(len(body))
            continue
        if b"_" in name:
            continue
        key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        text = value.decode("latin-1")
        if key in environ:
            text = environ[key] + ("; " if key == "HTTP_COOKIE" else ",") + text
        environ[key] = text
    host = environ.get("HTTP_HOST")
    server = request.server
    default_port = _DEFAULT_PORTS.get(request.scheme, "80")
    if host:
        server_name, port = _split_host(host, default_port)
    elif server is not None:
        server_name = server[0]
        port = str(server[1]) if server[1] is not None else default_port
    else:
        server_name, port = "localhost", default_port
    environ["SERVER_NAME"] = server_name
    environ["SERVER_PORT"] = port
    if request.client is not None:
        environ["REMOTE_ADDR"] = request.client[0]
        environ["REMOTE_PORT"] = str(request.client[1])
    return environ


def _split_host(host: str, default_port: str) -> tuple[str, str]:
    """`name[:port]` (an IPv6 name in brackets) → (name, port)."""
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and not name.endswith(":"):
        return name, port
    return host, default_port
