"""An HTTP request and a whole response, as they pass between a source and a web app.

The HTTP front makes an `HttpRequest` from the bytes it parsed (`worker serve app:app`);
Lambda mode makes one from an API Gateway, ALB or Function URL event. Either way the ASGI
and WSGI bridges (`worker.sources.asgi`, `worker.sources.wsgi`) read it, and a response
that is not streamed comes back as an `HttpResponse`.
"""

from __future__ import annotations

import dataclasses

from worker.streaming import Headers


@dataclasses.dataclass(slots=True)
class HttpRequest:
    """One request. Header names are lower-case; repeated headers stay repeated, in order."""

    method: str
    path: str  # percent-decoded, as ASGI's `path`
    raw_path: bytes  # as sent, without the query
    query_string: bytes  # without the `?`
    headers: Headers
    body: bytes
    client: tuple[str, int] | None = None
    server: tuple[str, int | None] | None = None
    scheme: str = "http"
    http_version: str = "1.1"
    root_path: str = ""


@dataclasses.dataclass(slots=True)
class HttpResponse:
    """A whole response: status, headers (lower-case names, repeated ones repeated), body."""

    status: int
    headers: Headers
    body: bytes
