"""One HTTP request, and the events API Gateway (REST v1, HTTP API v2) and an ALB make of it.

The shapes start from AWS's samples in `tests/events` and carry exactly the request's own
headers: the headers API Gateway adds (`x-forwarded-*`, `x-amzn-trace-id`) are left out,
so that the v2 event and the real request `worker serve` is sent describe the same thing.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from tests.compat.wire import TRACE
from tests.events import _alb, _rest, _v2

#: The API's domain: the Host of every request, in the event as through `serve`.
DOMAIN = "api-id.execute-api.us-east-1.amazonaws.com"
#: API Gateway sends these bodies as text; anything else is base64.
_TEXT_TYPES = ("text/", "application/json", "application/x-www-form-urlencoded")


@dataclass(frozen=True)
class Request:
    """An HTTP request as a client sends it."""

    method: str
    path: str
    query: str = ""  # the raw query string, as sent
    headers: tuple[tuple[str, str], ...] = ()
    cookies: tuple[str, ...] = ()
    body: bytes = b""

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path

    def sent_headers(self) -> list[tuple[str, str]]:
        """Every header on the wire, in order (the client adds none of its own)."""
        sent = [("host", DOMAIN), ("user-agent", "compat/1"), ("x-amzn-trace-id", TRACE)]
        sent += self.headers
        if self.cookies:
            sent.append(("cookie", "; ".join(self.cookies)))
        if self.body or self.method in ("POST", "PUT", "PATCH"):
            sent.append(("content-length", str(len(self.body))))
        return sent

    def _content_type(self) -> str:
        return next((v for k, v in self.headers if k.lower() == "content-type"), "")

    def _body(self) -> tuple[str | None, bool]:
        if not self.body:
            return None, False
        if self._content_type().startswith(_TEXT_TYPES):
            return self.body.decode(), False
        return base64.b64encode(self.body).decode(), True

    def _params(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query, keep_blank_values=True)


def http_api(request: Request) -> dict[str, Any]:
    """The HTTP API (payload 2.0) event of a `$default` route."""
    event = _v2(request.method, request.path, "$default", DOMAIN)
    del event["pathParameters"], event["stageVariables"]  # a $default route has neither
    headers: dict[str, str] = {}
    for name, value in request.sent_headers():
        if name != "cookie":  # 2.0 moves cookies to their own list
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
    event["headers"] = headers
    event["rawQueryString"] = request.query
    if request.cookies:
        event["cookies"] = list(request.cookies)
    else:
        del event["cookies"]
    params: dict[str, str] = {}
    for key, value in request._params():
        params[key] = f"{params[key]},{value}" if key in params else value
    if params:
        event["queryStringParameters"] = params
    else:
        del event["queryStringParameters"]
    event["requestContext"]["http"]["sourceIp"] = "127.0.0.1"
    event["requestContext"]["http"]["userAgent"] = "compat/1"
    body, encoded = request._body()
    if body is None:
        del event["body"]
    else:
        event["body"] = body
    event["isBase64Encoded"] = encoded
    return event


def function_url(request: Request) -> dict[str, Any]:
    """A function URL's event: payload 2.0 on the function's own domain."""
    event = http_api(request)
    domain = "abcdefg.lambda-url.us-east-1.on.aws"
    event["headers"]["host"] = domain
    event["requestContext"].update(domainName=domain, domainPrefix="abcdefg", apiId="abcdefg")
    return event


def rest_api(request: Request) -> dict[str, Any]:
    """The REST API (v1) proxy event of a `/{proxy+}` resource on stage `prod`."""
    event = _rest(request.method, "/{proxy+}", request.path, None)
    sent = request.sent_headers()
    event["headers"] = {name: value for name, value in sent}
    multi: dict[str, list[str]] = {}
    for name, value in sent:
        multi.setdefault(name, []).append(value)
    event["multiValueHeaders"] = multi
    params = request._params()
    event["queryStringParameters"] = {k: v for k, v in params} or None
    multi_params: dict[str, list[str]] = {}
    for key, value in params:
        multi_params.setdefault(key, []).append(value)
    event["multiValueQueryStringParameters"] = multi_params or None
    event["pathParameters"] = {"proxy": request.path.lstrip("/")}
    event["requestContext"]["resourcePath"] = "/{proxy+}"
    event["requestContext"]["identity"]["userAgent"] = "compat/1"
    event["body"], event["isBase64Encoded"] = request._body()
    return event


def alb(request: Request) -> dict[str, Any]:
    """An ALB target group's event, multi-value headers off (the default)."""
    event = _alb(request.method, request.path)
    event["headers"] = {name.lower(): value for name, value in request.sent_headers()}
    # An ALB passes the query as sent, still URL-encoded.
    pairs = [pair.partition("=") for pair in request.query.split("&") if pair]
    event["queryStringParameters"] = {k: v for k, _, v in pairs}
    body, encoded = request._body()
    event["body"] = body or ""
    event["isBase64Encoded"] = encoded
    return event
