"""Lambda mode's web-app adapter: API Gateway, ALB and Function URL events to an app and back.

`worker lambda app:app` answers each HTTP event of Lambda's (API Gateway REST, HTTP API
payload 1.0 and 2.0, ALB with or without multi-value headers, Function URL) by running the
app on it: `handle_asgi` for an ASGI app (through `worker.sources.asgi.run_asgi`, on the
slot's loop), `handle_wsgi` for a WSGI app (on the slot's thread). The result is the dict
the event's source expects, the same dict the adapters people use on Lambda today give:

- ASGI apps answer exactly as under Mangum 0.22 (`Mangum(app)`, its defaults): the scope
  as Mangum builds it (path percent-decoded; for HTTP API 2.0 `requestContext.http.path`,
  stage prefix included; `root_path` ""; scheme from `x-forwarded-proto`, else https;
  server from `host` and `x-forwarded-port`, else port 80; client the event's source IP,
  or for ALB the whole `x-forwarded-for`, and port 0), and `aws.event` / `aws.context` in
  it. The answer: REST and payload 1.0 split repeated headers into `multiValueHeaders`;
  2.0 and Function URLs move `set-cookie` to `cookies`, join other repeats with ",", and
  add `content-type: application/json` when the app sent none; ALB gives every value of
  a repeated header its own casing of the name (or `multiValueHeaders` when the event
  came with them), and no `statusDescription`; a body is text when its content type
  contains one of Mangum's text types and it decodes as UTF-8, else base64 (so a gzip
  body is base64 whatever its type). Header names are lower-case.
- WSGI apps answer exactly as under apig-wsgi 2.20 (`make_lambda_handler(app)`, its
  defaults): its environ (`PATH_INFO` from `path`, or 2.0's `rawPath`; `QUERY_STRING`
  re-encoded from the parameters, kept as the ALB sent them; `REMOTE_ADDR` from
  `x-forwarded-for`, else 127.0.0.1, or 2.0's source IP; scheme from
  `x-forwarded-proto`, else http; cookies joined with ";"), `apig_wsgi.full_event`,
  `apig_wsgi.request_context` and `apig_wsgi.context` in it. The answer keeps the header
  names as the app wrote them for REST, payload 1.0 and ALB (`multiValueHeaders` when
  the event had them, else the last value of each name); 2.0 lower-cases them, keeps the
  last value and moves `set-cookie` to `cookies`. Bodies are base64 when the answer has a
  `content-encoding` or a type outside apig-wsgi's text prefixes, except for REST and
  payload 1.0, where apig-wsgi's binary support is off and bodies are text. One rule of
  ours where apig-wsgi has none: a body that is not UTF-8 where apig-wsgi would send
  text (it raises `UnicodeDecodeError` there) is sent base64.

Neither adapter routes: `pathParameters`, `stageVariables` and the authorizer's claims
are not part of the request, and the app finds them in the event (`aws.event`,
`apig_wsgi.full_event`), as under Mangum and apig-wsgi.

The two adapters differ from each other (the default scheme, the client address, how
repeated request headers and cookies are joined, which answer header names keep their
case); each kind of app gets its own adapter's rule, so a function moved here from
either answers as it did.

Lambda@Edge events reach ASGI apps as under Mangum; apig-wsgi takes none. Any other
event sent to an app is answered with the error Mangum raises for it (`RuntimeError`).

`WORKER_API_GATEWAY_BASE_PATH` is Mangum's `api_gateway_base_path`: an HTTP API's named
stage, or a custom domain's base path mapping, cut from the front of the path ASGI apps
see of REST and HTTP API events (apig-wsgi has no such setting: WSGI apps see the whole
path).
"""

from __future__ import annotations

import base64
import io
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import unquote, unquote_plus, urlencode

from worker.config import SETTINGS, Config
from worker.errors import LambdaError
from worker.httpmsg import HttpRequest, HttpResponse
from worker.sources.asgi import run_asgi
from worker.streaming import STREAMED, Headers, stream_of

#: The classifier's kinds this adapter answers (see `worker.classify`).
REST = "apigw-rest"
HTTP_V1 = "apigw-http-v1"
HTTP_V2 = "apigw-http"
FUNCTION_URL = "function-url"
ALB = "alb"
EDGE = "lambda-edge"
HTTP_KINDS = frozenset((REST, HTTP_V1, HTTP_V2, FUNCTION_URL, ALB, EDGE))

#: Mangum's `DEFAULT_TEXT_MIME_TYPES`: a body whose content type contains one is text.
MANGUM_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/vnd.api+json",
    "application/vnd.oai.openapi",
)
#: apig-wsgi's `DEFAULT_NON_BINARY_CONTENT_TYPE_PREFIXES`.
APIG_WSGI_TEXT_PREFIXES = (
    "text/",
    "application/json",
    "application/problem+json",
    "application/vnd.api+json",
)
#: What apig-wsgi leaves unencoded in an ALB's query parameters (ALB sends them encoded).
_ALB_SAFE = r"!#$&'()*+,/:;=?@[]%"

BASE_PATH = os.environ.get(SETTINGS["api_gateway_base_path"].env) or Config.api_gateway_base_path

Result = dict[str, Any]
Scope = dict[str, Any]
AsgiApp = Callable[..., Awaitable[None]]


def unsupported(kind: str) -> LambdaError:
    """The answer to an event no HTTP adapter takes: the error Mangum raises for it."""
    return LambdaError(
        "RuntimeError",
        "The adapter was unable to infer a handler to use for the event. This is likely "
        f"related to how the Lambda function was invoked (the event's kind is {kind!r}: a "
        "web app answers API Gateway REST and HTTP API, ALB and Function URL events).",
    )


def event_kind(event: Any, context: Any) -> str:
    """The event's kind: the classifier's (on the context) when it is an HTTP one, else
    found as Mangum finds it (a hand-made event the classifier did not recognise)."""
    kind = getattr(context, "kind", "direct")
    if kind in HTTP_KINDS:
        return str(kind)
    if isinstance(event, dict):
        context_ = event.get("requestContext")
        if isinstance(context_, dict):
            if "elb" in context_:
                return ALB
            if "version" in event:
                return HTTP_V2 if event["version"] == "2.0" else HTTP_V1
            if "resource" in event:
                return REST
        records = event.get("Records")
        if isinstance(records, list) and records and "cf" in records[0]:
            return EDGE
    raise unsupported(kind)


# -- ASGI: Mangum's rules ---------------------------------------------------------------


def _base64_body(event: Mapping[str, Any], body: Any) -> bytes:
    if not body:
        return b""
    if event.get("isBase64Encoded", False):
        return base64.b64decode(body)
    return body if isinstance(body, bytes) else str(body).encode()


def _server(headers: Mapping[str, str]) -> tuple[str, int | None]:
    name = headers.get("host", "mangum")
    if ":" in name:
        name, port = name.split(":", 1)
        return name, int(port)
    return name, int(headers.get("x-forwarded-port", 80))


def _strip_base(path: str, base_path: str) -> str:
    if not path:
        return "/"
    if base_path and base_path != "/":
        if not base_path.startswith("/"):
            base_path = "/" + base_path
        if path.startswith(base_path):
            path = path[len(base_path) :]
    return unquote(path)


def _v1_headers(event: Mapping[str, Any]) -> dict[str, str]:
    """REST and payload 1.0: single headers, then every multi-value one joined by ", "."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    multi = event.get("multiValueHeaders")
    if multi:
        for k, v in multi.items():
            headers[k.lower()] = ", ".join(v) if isinstance(v, list) else ""
    return headers


def _v1_query(event: Mapping[str, Any]) -> bytes:
    params = event.get("multiValueQueryStringParameters") or event.get("queryStringParameters")
    return urlencode(params, doseq=True).encode() if params else b""


def _alb_query(params: Mapping[str, Any]) -> bytes:
    # ALB passes parameters as the client encoded them: decoded once, encoded once.
    decoded = {
        unquote_plus(k): unquote_plus(v) if isinstance(v, str) else [unquote_plus(x) for x in v]
        for k, v in params.items()
    }
    return urlencode(decoded, doseq=True).encode()


def _encoded(headers: Mapping[str, str]) -> Headers:
    return [(k.encode(), v.encode()) for k, v in headers.items()]


def to_request(event: Mapping[str, Any], kind: str, base_path: str | None = None) -> HttpRequest:
    """The request an ASGI app sees for the event, as Mangum's scope has it (`base_path`:
    `WORKER_API_GATEWAY_BASE_PATH` unless given)."""
    if kind == ALB:
        return _alb_request(event)
    if kind == EDGE:
        return _edge_request(event)
    context = event["requestContext"]
    if kind in (HTTP_V2, FUNCTION_URL):
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        cookies = event.get("cookies")
        if cookies:
            headers["cookie"] = "; ".join(cookies)
        http = context["http"]
        method, path, source_ip = http["method"], http["path"], http["sourceIp"]
        query = str(event.get("rawQueryString", "")).encode()
    else:
        headers = _v1_headers(event)
        method, path = event["httpMethod"], event["path"]
        source_ip = (context.get("identity") or {}).get("sourceIp")
        query = _v1_query(event)
    return HttpRequest(
        method,
        _strip_base(path, base_path or BASE_PATH),
        str(path or "/").encode(),
        query,
        _encoded(headers),
        _base64_body(event, event.get("body")),
        (source_ip, 0) if source_ip is not None else None,
        _server(headers),
        headers.get("x-forwarded-proto", "https"),
    )


def _alb_request(event: Mapping[str, Any]) -> HttpRequest:
    pairs: Headers = []
    if "multiValueHeaders" in event:
        for k, values in (event["multiValueHeaders"] or {}).items():
            pairs.extend((k.lower().encode(), v.encode()) for v in values)
    else:
        pairs = [(k.lower().encode(), v.encode()) for k, v in (event["headers"] or {}).items()]
    last = {k.decode(): v.decode() for k, v in pairs}  # repeated: the last one, as Mangum
    raw = event["path"]
    params = event.get("multiValueQueryStringParameters", event.get("queryStringParameters", {}))
    return HttpRequest(
        event["httpMethod"],
        unquote(raw) if raw else "/",
        str(raw or "/").encode(),
        _alb_query(params) if params else b"",
        pairs,
        _base64_body(event, event.get("body")),
        (last.get("x-forwarded-for", ""), 0),
        _server(last),
        last.get("x-forwarded-proto", "https"),
    )


def _edge_request(event: Mapping[str, Any]) -> HttpRequest:
    request = event["Records"][0]["cf"]["request"]
    cf_headers = request["headers"]

    def first(name: str, default: Any) -> Any:
        return (cf_headers.get(name) or [{}])[0].get("value", default)

    name = first("host", "mangum")
    if ":" in name:
        name, port = name.split(":", 1)
    else:
        port = first("x-forwarded-port", 80)
    body = request.get("body") or {}
    data = body.get("data") or b""
    if data and body.get("encoding", "") == "base64":
        data = base64.b64decode(data)
    elif isinstance(data, str):
        data = data.encode()
    return HttpRequest(
        request["method"],
        request["uri"],
        str(request["uri"]).encode(),
        str(request["querystring"]).encode(),
        [(k.encode(), v[0]["value"].encode()) for k, v in cf_headers.items()],
        data,
        (request["clientIp"], 0),
        (name, int(port)),
        first("cloudfront-forwarded-proto", "https"),
    )


def _text_or_base64(body: bytes, content_type: str) -> tuple[str, bool]:
    """Mangum's rule: text when the type names a text type and the bytes are UTF-8."""
    if body == b"":
        return "", False
    for text_type in MANGUM_TEXT_TYPES:
        if text_type in content_type:
            try:
                return body.decode(), False
            except UnicodeDecodeError:
                break
    return base64.b64encode(body).decode(), True


def _split_repeated(headers: Headers) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Headers sent once stay in `headers`; every value of a repeated one moves to
    `multiValueHeaders` (Mangum's REST and payload 1.0 answer)."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in headers:
        name, text = key.decode().lower(), value.decode(errors="replace")
        if name in multi:
            multi[name].append(text)
        elif name in single:
            multi[name] = [single.pop(name), text]
        else:
            single[name] = text
    return single, multi


def _casings(name: str, count: int) -> list[str]:
    """The first `count` casings of `name`, in the order Mangum's `all_casings` yields them
    (the first letter's case flips fastest), so each repeated ALB header stays distinct."""
    letters = [i for i, c in enumerate(name) if c.lower() != c.upper()]
    out = []
    for n in range(min(count, 2 ** len(letters))):
        chars = list(name)
        for bit, at in enumerate(letters):
            chars[at] = chars[at].upper() if n >> bit & 1 else chars[at].lower()
        out.append("".join(chars))
    return out


def to_result(kind: str, event: Mapping[str, Any], response: HttpResponse) -> Result:
    """The result dict for the event's source, as Mangum makes it from the response."""
    status, headers, body = response.status, response.headers, response.body
    if kind in (HTTP_V2, FUNCTION_URL):
        joined: dict[str, str] = {}
        cookies: list[str] = []
        for key, value in headers:
            name, text = key.decode().lower(), value.decode(errors="replace")
            if name == "set-cookie":
                cookies.append(text)
            else:
                joined[name] = f"{joined[name]},{text}" if name in joined else text
        if "content-type" not in joined:
            joined["content-type"] = "application/json"
        text_body, is_base64 = _text_or_base64(body, joined["content-type"])
        result: Result = {"statusCode": status, "body": text_body, "headers": joined}
        if cookies:
            result["cookies"] = cookies
        result["isBase64Encoded"] = is_base64
        return result
    if kind == ALB:
        multi: dict[str, list[str]] = {}
        for key, value in headers:
            multi.setdefault(key.decode().lower(), []).append(value.decode(errors="replace"))
        cased: dict[str, str] = {}
        for name, values in multi.items():
            cased.update(zip(_casings(name, len(values)), values, strict=False))
        text_body, is_base64 = _text_or_base64(body, cased.get("content-type", ""))
        result = {"statusCode": status, "body": text_body, "isBase64Encoded": is_base64}
        if "multiValueHeaders" in event:
            result["multiValueHeaders"] = multi
        else:
            result["headers"] = cased
        return result
    single, repeated = _split_repeated(headers)
    text_body, is_base64 = _text_or_base64(body, single.get("content-type", ""))
    if kind == EDGE:
        last = {
            k.decode().lower(): [{"key": k.decode().lower(), "value": v.decode()}]
            for k, v in headers
        }
        return {"status": status, "headers": last, "body": text_body, "isBase64Encoded": is_base64}
    return {
        "statusCode": status,
        "headers": single,
        "multiValueHeaders": repeated,
        "body": text_body,
        "isBase64Encoded": is_base64,
    }


class _WithEvent:
    """The app, called with the Lambda event and context in its scope, as Mangum passes
    them (`aws.event`, `aws.context`): apps read authorizer claims there."""

    __slots__ = ("app", "context", "event")

    def __init__(self, app: AsgiApp, event: Any, context: Any) -> None:
        self.app = app
        self.event = event
        self.context = context

    def __call__(self, scope: Scope, receive: Any, send: Any) -> Awaitable[None]:
        scope["aws.event"] = self.event
        scope["aws.context"] = self.context
        return self.app(scope, receive, send)


async def handle_asgi(app: AsgiApp, event: Any, context: Any, state: dict[str, Any]) -> Any:
    """Answer an HTTP event with an ASGI app: the result dict, or STREAMED when the app's
    body went out through the invocation's response stream."""
    kind = event_kind(event, context)
    # Lambda@Edge answers whole: CloudFront reads one result.
    stream = None if kind == EDGE else stream_of(context)
    answer = await run_asgi(_WithEvent(app, event, context), to_request(event, kind), stream, state)
    if answer is STREAMED:
        return STREAMED
    assert isinstance(answer, HttpResponse)
    return to_result(kind, event, answer)


# -- WSGI: apig-wsgi's rules ------------------------------------------------------------


def _wsgi_body(event: Mapping[str, Any]) -> bytes:
    body = event.get("body", "") or ""
    if event.get("isBase64Encoded", False):
        return base64.b64decode(body)
    return str(body).encode()


def _common_environ(body: bytes) -> dict[str, Any]:
    return {
        "CONTENT_LENGTH": str(len(body)),
        "HTTP": "on",
        "SCRIPT_NAME": "",
        "SERVER_NAME": "",
        "SERVER_PORT": "",
        "wsgi.errors": sys.stderr,
        "wsgi.input": io.BytesIO(body),
        "wsgi.multiprocess": False,
        "wsgi.multithread": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "apig_wsgi.multi_value_headers": False,
    }


def wsgi_environ(event: Mapping[str, Any], context: Any, kind: str) -> dict[str, Any]:
    """The environ apig-wsgi builds for the event."""
    body = _wsgi_body(event)
    environ = _common_environ(body)
    if kind in (HTTP_V2, FUNCTION_URL):
        http = event["requestContext"]["http"]
        environ.update(
            HTTP_COOKIE=";".join(event.get("cookies", ())),
            PATH_INFO=unquote(event["rawPath"], encoding="iso-8859-1"),
            QUERY_STRING=event["rawQueryString"],
            REMOTE_ADDR=http["sourceIp"],
            REQUEST_METHOD=http["method"],
            SERVER_PROTOCOL=http["protocol"],
        )
        for key, raw in event["headers"].items():
            name = key.upper().replace("-", "_")
            if name == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = raw.split(",")[-1]
            elif name == "HOST":
                environ["SERVER_NAME"] = raw.split(",")[-1]
            elif name == "X_FORWARDED_PROTO":
                environ["wsgi.url_scheme"] = raw.split(",")[-1]
            elif name == "X_FORWARDED_PORT":
                environ["SERVER_PORT"] = raw.split(",")[-1]
            elif name == "COOKIE":
                environ["HTTP_COOKIE"] += ";" + raw
                continue
            environ["HTTP_" + name] = raw
    else:
        environ.update(
            PATH_INFO=unquote(event["path"], encoding="iso-8859-1"),
            REMOTE_ADDR="127.0.0.1",
            REQUEST_METHOD=event["httpMethod"],
            SERVER_PROTOCOL="HTTP/1.1",
        )
        # REST and payload 1.0 encode every reserved character; an ALB's parameters
        # arrive encoded and stay as they are.
        safe = _ALB_SAFE if kind == ALB else ""
        if "multiValueQueryStringParameters" in event:
            params = event["multiValueQueryStringParameters"] or ()
            environ["QUERY_STRING"] = urlencode(params, doseq=True, safe=safe)
        else:
            params = event.get("queryStringParameters") or ()
            environ["QUERY_STRING"] = urlencode(params, safe=safe)
        if "multiValueHeaders" in event:
            headers = event["multiValueHeaders"] or {}
            environ["apig_wsgi.multi_value_headers"] = True
        else:
            headers = {k: [v] for k, v in (event.get("headers") or {}).items()}
        for key, values in headers.items():
            name = key.upper().replace("-", "_")
            if name == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = values[-1]
            elif name == "HOST":
                environ["SERVER_NAME"] = values[-1]
            elif name == "X_FORWARDED_FOR":
                environ["REMOTE_ADDR"] = values[-1].split(", ")[0]
            elif name == "X_FORWARDED_PROTO":
                environ["wsgi.url_scheme"] = values[-1]
            elif name == "X_FORWARDED_PORT":
                environ["SERVER_PORT"] = values[-1]
            environ["HTTP_" + name] = ",".join(values)
    if "requestContext" in event:
        environ["apig_wsgi.request_context"] = event["requestContext"]
    environ["apig_wsgi.full_event"] = event
    environ["apig_wsgi.context"] = context
    return environ


class _WsgiAnswer:
    """What a WSGI app answered: status, headers as it wrote them, the body."""

    __slots__ = ("body", "headers", "status")

    def __init__(self) -> None:
        self.status = 500  # an app that never starts a response
        self.headers: list[tuple[str, str]] = []
        self.body = io.BytesIO()

    def start_response(
        self, status: str, headers: Iterable[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], int]:
        if exc_info is not None and exc_info[0] is not None:
            raise exc_info[1].with_traceback(exc_info[2])
        self.status = int(status.split()[0])
        self.headers.extend(headers)
        return self.body.write

    def header(self, name: str) -> str:
        found = [v for k, v in self.headers if k.lower() == name]
        return found[-1] if found else ""

    def is_binary(self, binary_support: bool) -> bool:
        if not binary_support:
            return False
        if self.header("content-encoding"):
            return True
        return not self.header("content-type").startswith(APIG_WSGI_TEXT_PREFIXES)


def _wsgi_body_fields(answer: _WsgiAnswer, binary_support: bool) -> tuple[str, bool]:
    body = answer.body.getvalue()
    if not answer.is_binary(binary_support):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass  # apig-wsgi raises here; the bytes are sent as they are
    return base64.b64encode(body).decode(), True


def handle_wsgi(app: Callable[..., Iterable[bytes]], event: Any, context: Any) -> Result:
    """Answer an HTTP event with a WSGI app, as apig-wsgi does (on the caller's thread)."""
    kind = event_kind(event, context)
    if kind == EDGE:
        raise unsupported(kind)
    environ = wsgi_environ(event, context, kind)
    answer = _WsgiAnswer()
    output = app(environ, answer.start_response)
    try:
        for data in output:
            if data:
                answer.body.write(data)
    finally:
        close = getattr(output, "close", None)
        if close is not None:
            close()
    result: Result = {"statusCode": answer.status}
    if kind in (HTTP_V2, FUNCTION_URL):
        headers: dict[str, str] = {}
        cookies: list[str] = []
        for key, value in answer.headers:
            name = key.lower()
            if name == "set-cookie":
                cookies.append(value)
            else:
                headers[name] = value
        result["cookies"] = cookies
        result["headers"] = headers
        body, is_base64 = _wsgi_body_fields(answer, True)
    else:
        if environ["apig_wsgi.multi_value_headers"]:
            multi: dict[str, list[str]] = {}
            for key, value in answer.headers:
                multi.setdefault(key, []).append(value)
            result["multiValueHeaders"] = multi
        else:
            result["headers"] = dict(answer.headers)
        # apig-wsgi's binary support: on for an ALB, off for REST and payload 1.0.
        body, is_base64 = _wsgi_body_fields(answer, kind == ALB)
    result["isBase64Encoded"] = is_base64
    result["body"] = body
    return result
