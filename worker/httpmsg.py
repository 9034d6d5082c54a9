"""An HTTP request and a whole response, as they pass between a source and a web app.

The HTTP front makes an `HttpRequest` from the bytes it parsed (`worker serve app:app`);
Lambda mode makes one from an API Gateway, ALB or Function URL event. Either way the ASGI
and WSGI bridges (`worker.sources.asgi`, `worker.sources.wsgi`) read it, and a response
that is not streamed comes back as an `HttpResponse`.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType

from worker.errors import LambdaError
from worker.streaming import Headers

#: Where Lambda mode's events become `HttpRequest`s and answers become events' results.
ADAPTER = "worker.sources.lambda_http"


@dataclasses.dataclass(slots=True)
class HttpRequest:
    """One request. Header names are lower-case; repeated headers stay repeated, in order."""

    method: str
    path: str  # percent-decoded, as ASGI's `path` (it includes `root_path`)
    raw_path: bytes  # as sent, without the query (it includes `root_path`)
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


def lambda_adapter() -> ModuleType:
    """The Lambda HTTP adapter (API Gateway, ALB and Function URL events to and from a web
    app), imported when an app is first handed such an event."""
    try:
        return importlib.import_module(ADAPTER)
    except ModuleNotFoundError as exc:
        if exc.name != ADAPTER:
            raise
        raise LambdaError(
            "Runtime.HttpAdapterMissing",
            f"This function is a web app: events other than an HTTP request to `worker serve` "
            f"(API Gateway, ALB, Function URL) need the Lambda HTTP adapter ({ADAPTER}), "
            "which this installation lacks",
        ) from None
