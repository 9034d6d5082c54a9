"""The Lambda HTTP adapter against Mangum and apig-wsgi: the same app, the same event, the
same result dict.

Each case is one HTTP request as AWS would deliver it to a function: API Gateway REST
(v1) and HTTP API payload 1.0 and 2.0 (with a stage prefix), a Function URL, and an ALB
with and without multi-value headers. A FastAPI and a Starlette app answer it through
Mangum and through `handle_asgi`, a Flask app through apig-wsgi and through
`handle_wsgi`; the result dicts must be equal, key for key and value for value (lists
in order: the order of repeated headers, cookies and query parameters means something).
The apps echo what they saw of the request, so the requests must be equal too.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from apig_wsgi import make_lambda_handler
from mangum import Mangum

from tests.apps import lambda_web_apps as apps
from worker.classify import classify
from worker.errors import LambdaError
from worker.sources import lambda_http
from worker.sources.lambda_http import handle_asgi, handle_wsgi

Pairs = list[tuple[str, str]]


class Context:
    """What a handler's context offers the adapters: the classified kind, a request id."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.aws_request_id = "c6af9ac6-0000-4000-8000-000000000001"
        self.function_name = "fn"

    def get_remaining_time_in_millis(self) -> int:
        return 3000


# -- events: one request in each of AWS's shapes --------------------------------------------


def _body(body: bytes, binary: bool) -> tuple[str | None, bool]:
    if not body:
        return None, False
    if binary:
        return base64.b64encode(body).decode(), True
    return body.decode(), False


def _grouped(pairs: Pairs, lower: bool = False) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in pairs:
        out.setdefault(k.lower() if lower else k, []).append(v)
    return out


def rest_event(
    method: str,
    path: str,
    query: Pairs,
    headers: Pairs,
    body: bytes = b"",
    binary: bool = False,
    version: str | None = None,
) -> dict[str, Any]:
    """API Gateway REST (and HTTP API payload 1.0 with `version`): the path without the
    stage, which is in `requestContext.path`."""
    text, is_b64 = _body(body, binary)
    multi_headers = _grouped(headers)
    multi_query = _grouped(query)
    event: dict[str, Any] = {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": {k: v[-1] for k, v in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "httpMethod": method,
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "curl/8"},
            "path": f"/prod{path}",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "resourcePath": "/{proxy+}",
            "stage": "prod",
        },
        "body": text,
        "isBase64Encoded": is_b64,
    }
    if version:
        event = {"version": version, **event}
    return event


def v2_event(
    method: str,
    path: str,
    query: Pairs,
    headers: Pairs,
    body: bytes = b"",
    binary: bool = False,
    function_url: bool = False,
    stage: str = "$default",
) -> dict[str, Any]:
    """HTTP API payload 2.0 (on a named stage, the stage is in `rawPath`), or a Function
    URL (no stage)."""
    text, is_b64 = _body(body, binary)
    domain = (
        "abcdefg.lambda-url.us-east-1.on.aws"
        if function_url
        else "abc123.execute-api.us-east-1.amazonaws.com"
    )
    if function_url:
        stage = "$default"
    raw_path = path if stage == "$default" else f"/{stage}{path}"
    cookies = [c.strip() for k, v in headers if k.lower() == "cookie" for c in v.split(";")]
    joined: dict[str, str] = {}
    for k, v in headers:
        if k.lower() == "cookie":
            continue
        key = k.lower()
        joined[key] = f"{joined[key]},{v}" if key in joined else v
    joined.setdefault("host", domain)
    params: dict[str, str] = {}
    for k, v in query:
        params[k] = f"{params[k]},{v}" if k in params else v
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default" if function_url else "ANY /{proxy+}",
        "rawPath": raw_path,
        "rawQueryString": "&".join(f"{quote(k)}={quote(v)}" for k, v in query),
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = joined
    if params:
        event["queryStringParameters"] = params
    event["requestContext"] = {
        "accountId": "123456789012",
        "apiId": "abcdefg" if function_url else "abc123",
        "domainName": domain,
        "domainPrefix": domain.split(".")[0],
        "http": {
            "method": method,
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": "203.0.113.9",
            "userAgent": "curl/8",
        },
        "requestId": "JKJaXmPLvHcESHA=",
        "routeKey": event["routeKey"],
        "stage": stage,
        "time": "10/Mar/2020:05:16:23 +0000",
        "timeEpoch": 1583817383220,
    }
    if not function_url:
        event["pathParameters"] = {"proxy": path.lstrip("/")}
    if text is not None:
        event["body"] = text
    event["isBase64Encoded"] = is_b64
    return event


def alb_event(
    method: str,
    path: str,
    query: Pairs,
    headers: Pairs,
    body: bytes = b"",
    binary: bool = False,
    multi: bool = False,
) -> dict[str, Any]:
    """An ALB's event: query parameters as the client encoded them, header names lower-case;
    with multi-value headers enabled, every value of each (and of each parameter)."""
    text, is_b64 = _body(body, binary)
    pairs = [(k.lower(), v) for k, v in headers] + [
        ("x-forwarded-for", "198.51.100.4, 10.0.0.1"),
        ("x-forwarded-port", "443"),
        ("x-forwarded-proto", "https"),
    ]
    encoded = [(quote(k, safe=""), quote(v, safe="")) for k, v in query]
    event: dict[str, Any] = {
        "requestContext": {
            "elb": {
                "targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:"
                "targetgroup/tg/6d0ecf831eec9f09"
            }
        },
        "httpMethod": method,
        "path": path,
    }
    if multi:
        event["multiValueQueryStringParameters"] = _grouped(encoded)
        event["multiValueHeaders"] = _grouped(pairs, lower=True)
    else:
        event["queryStringParameters"] = dict(encoded)
        event["headers"] = dict(pairs)
    event["body"] = text or ""
    event["isBase64Encoded"] = is_b64
    return event


def build(
    shape: str,
    method: str,
    path: str,
    query: Pairs,
    headers: Pairs,
    body: bytes = b"",
    binary: bool = False,
) -> dict[str, Any]:
    if shape == "rest":
        return rest_event(method, path, query, headers, body, binary)
    if shape == "http-v1":
        return rest_event(method, path, query, headers, body, binary, version="1.0")
    if shape == "http-v2":
        return v2_event(method, path, query, headers, body, binary)
    if shape == "http-v2-stage":
        return v2_event(method, path, query, headers, body, binary, stage="prod")
    if shape == "function-url":
        return v2_event(method, path, query, headers, body, binary, function_url=True)
    if shape == "alb":
        return alb_event(method, path, query, headers, body, binary)
    assert shape == "alb-multi"
    return alb_event(method, path, query, headers, body, binary, multi=True)


SHAPES = {
    "rest": "apigw-rest",
    "http-v1": "apigw-http-v1",
    "http-v2": "apigw-http",
    "http-v2-stage": "apigw-http",
    "function-url": "function-url",
    "alb": "alb",
    "alb-multi": "alb",
}

BASE_HEADERS: Pairs = [
    ("Host", "api.example.com"),
    ("User-Agent", "curl/8.5"),
    ("Accept", "*/*"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Port", "443"),
    ("X-Forwarded-For", "203.0.113.7, 10.0.0.2"),
]

#: What each case answers (FastAPI; Starlette's app has no schema: 500 for invalid JSON).
STATUS = {"json": 201, "invalid-json": 422, "not-found": 404, "empty": 204}

#: (name, method, path, query, extra headers, body, body is binary)
CASES: list[tuple[str, str, str, Pairs, Pairs, bytes, bool]] = [
    (
        "echo",
        "GET",
        "/echo/a%20b/c",
        [("q", "1"), ("q", "2"), ("name", "x y&z"), ("empty", "")],
        [("Cookie", "c1=v1; c2=v2"), ("X-Repeated", "one"), ("X-Repeated", "two")],
        b"",
        False,
    ),
    (
        "echo-body",
        "POST",
        "/echo/upload",
        [],
        [("Content-Type", "application/octet-stream")],
        apps.PNG,
        True,
    ),
    ("item", "GET", "/items/42", [("q", "find me")], [], b"", False),
    (
        "json",
        "POST",
        "/orders",
        [],
        [("Content-Type", "application/json")],
        b'{"item": "tea", "quantity": 2}',
        False,
    ),
    (
        "invalid-json",
        "POST",
        "/orders",
        [],
        [("Content-Type", "application/json")],
        b'{"item": "tea"}',
        False,
    ),
    ("not-found", "GET", "/nowhere", [], [], b"", False),
    ("cookies", "GET", "/cookies", [], [], b"", False),
    ("multi", "GET", "/multi", [], [], b"", False),
    ("binary", "GET", "/binary", [], [], b"", False),
    ("gzip", "GET", "/gzip", [], [("Accept-Encoding", "gzip")], b"", False),
    ("text", "GET", "/text", [], [], b"", False),
    ("empty", "GET", "/empty", [], [], b"", False),
]


def _event(shape: str, case: tuple[str, str, str, Pairs, Pairs, bytes, bool]) -> dict[str, Any]:
    _, method, path, query, headers, body, binary = case
    return build(shape, method, path, query, BASE_HEADERS + headers, body, binary)


def _context_for(event: dict[str, Any]) -> Context:
    """The context the runtime would give: the event classified from its bytes."""
    kind, _ = classify.kind_route(orjson.dumps(event))
    return Context(kind)


async def _mangum(app: Any, event: dict[str, Any], context: Context) -> dict[str, Any]:
    # Mangum runs the app on an event loop of its own, which must not be running: a thread.
    def call() -> dict[str, Any]:
        return Mangum(app)(event, context)  # type: ignore[arg-type]

    return await asyncio.to_thread(call)


# -- ASGI: Mangum ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("app_name", ["fastapi", "starlette"])
async def test_asgi_answers_as_mangum(app_name: str, case: Any, shape: str) -> None:
    app = apps.fastapi_app if app_name == "fastapi" else apps.starlette_app
    event = _event(shape, case)
    context = _context_for(event)
    assert context.kind == SHAPES[shape]
    expected = await _mangum(app, event, context)
    assert await handle_asgi(app, event, context, {}) == expected
    if shape == "http-v2-stage":
        # The stage prefix stays in the path, as under Mangum without a base path: no
        # route of the app matches (WORKER_API_GATEWAY_BASE_PATH cuts it, below).
        assert expected["statusCode"] == 404
    elif app_name == "starlette" and case[0] == "invalid-json":
        assert expected["statusCode"] == 500
    else:
        assert expected["statusCode"] == STATUS.get(case[0], 200)


async def test_the_asgi_echo_shows_what_mangum_builds() -> None:
    """The scope details, spelled out: the stage prefix stays in an HTTP API's path, the
    scheme and server come from the forwarded headers, the client is the source IP (for
    an ALB, the whole x-forwarded-for), and the event and context are in the scope."""
    v2 = v2_event("GET", "/echo/x", [("a", "1")], BASE_HEADERS)
    answer = orjson.loads(
        (await handle_asgi(apps.fastapi_app, v2, Context("apigw-http"), {}))["body"]
    )
    assert answer["path"] == "/echo/x" and answer["root_path"] == ""
    assert answer["scheme"] == "https" and answer["server"] == ["api.example.com", 443]
    assert answer["client"] == ["203.0.113.9", 0]
    assert answer["aws_event"] and answer["aws_context"]
    alb = alb_event("GET", "/echo/x", [], [])
    answer = orjson.loads((await handle_asgi(apps.fastapi_app, alb, Context("alb"), {}))["body"])
    assert answer["client"] == ["198.51.100.4, 10.0.0.1", 0]


async def test_an_alb_query_is_decoded_once() -> None:
    """An ALB passes parameters as the client encoded them: the app sees them decoded once,
    not twice ("%2520" is "%20", not a space)."""
    event = alb_event("GET", "/echo/q", [("x", "a%20b"), ("y", "1+1")], [], multi=True)
    expected = await _mangum(apps.starlette_app, event, Context("alb"))
    got = await handle_asgi(apps.starlette_app, event, Context("alb"), {})
    assert got == expected
    assert orjson.loads(got["body"])["query"] == [["x", "a%20b"], ["y", "1+1"]]


async def test_a_failing_asgi_app_answers_500_as_mangum() -> None:
    for shape in SHAPES:
        event = build(shape, "GET", "/boom", [], BASE_HEADERS)
        context = _context_for(event)
        expected = await _mangum(apps.starlette_app, event, context)
        assert await handle_asgi(apps.starlette_app, event, context, {}) == expected
        assert expected["statusCode"] == (404 if shape == "http-v2-stage" else 500)


async def test_the_base_path_is_cut_as_mangum_cuts_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """WORKER_API_GATEWAY_BASE_PATH is Mangum's api_gateway_base_path: an HTTP API's stage,
    or a custom domain's base path mapping, cut from the path the app sees."""
    monkeypatch.setattr(lambda_http, "BASE_PATH", "/prod")
    event = v2_event("GET", "/echo/x", [("a", "1")], BASE_HEADERS, stage="prod")

    def call() -> dict[str, Any]:
        mangum = Mangum(apps.fastapi_app, api_gateway_base_path="/prod")
        return mangum(event, Context("apigw-http"))  # type: ignore[arg-type]

    expected = await asyncio.to_thread(call)
    got = await handle_asgi(apps.fastapi_app, event, Context("apigw-http"), {})
    assert got == expected and got["statusCode"] == 200
    assert orjson.loads(got["body"])["path"] == "/echo/x"


async def test_lambda_edge_as_mangum() -> None:
    event: dict[str, Any] = {
        "Records": [
            {
                "cf": {
                    "config": {"distributionId": "EDFDVBD6EXAMPLE", "eventType": "origin-request"},
                    "request": {
                        "clientIp": "203.0.113.178",
                        "headers": {
                            "host": [{"key": "Host", "value": "d111111abcdef8.cloudfront.net"}],
                            "user-agent": [{"key": "User-Agent", "value": "curl/8"}],
                        },
                        "method": "GET",
                        "querystring": "q=1&q=2",
                        "uri": "/echo/edge",
                    },
                }
            }
        ]
    }
    context = _context_for(event)
    assert context.kind == "lambda-edge"
    for path in ("/echo/edge", "/cookies", "/binary"):
        event["Records"][0]["cf"]["request"]["uri"] = path
        expected = await _mangum(apps.starlette_app, event, context)
        assert await handle_asgi(apps.starlette_app, event, context, {}) == expected


async def test_an_event_no_web_app_takes_is_mangums_error() -> None:
    sqs = {"Records": [{"eventSource": "aws:sqs", "body": "{}"}]}
    with pytest.raises(RuntimeError, match="unable to infer a handler"):
        await _mangum(apps.fastapi_app, sqs, Context("sqs"))
    with pytest.raises(LambdaError) as raised:
        await handle_asgi(apps.fastapi_app, sqs, Context("sqs"), {})
    assert raised.value.error_type == "RuntimeError"
    assert "unable to infer a handler" in raised.value.message and "'sqs'" in raised.value.message
    with pytest.raises(LambdaError):
        handle_wsgi(apps.flask_app, sqs, Context("sqs"))


async def test_a_hand_made_event_is_recognised_as_mangum_does() -> None:
    """An event the classifier calls `direct` (its keys trimmed) still reaches the app."""
    event = v2_event("GET", "/items/3", [], BASE_HEADERS)
    del event["routeKey"]
    assert _context_for(event).kind == "direct"
    expected = await _mangum(apps.fastapi_app, event, Context("direct"))
    assert await handle_asgi(apps.fastapi_app, event, Context("direct"), {}) == expected


# -- WSGI: apig-wsgi ------------------------------------------------------------------------


def _apig(binary_support: bool | None = None) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    return make_lambda_handler(apps.flask_app, binary_support=binary_support)


#: Answers apig-wsgi cannot give with its defaults on REST and payload 1.0: binary support
#: is off there, and a body that is not UTF-8 raises UnicodeDecodeError. Ours sends it
#: base64, which is apig-wsgi's answer with binary support on.
_NOT_UTF8 = {"binary", "gzip"}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_wsgi_answers_as_apig_wsgi(case: Any, shape: str) -> None:
    event = _event(shape, case)
    context = _context_for(event)
    if case[0] == "invalid-json":
        return  # the Flask app reads the body without a schema: a KeyError, below
    if case[0] in _NOT_UTF8 and shape in ("rest", "http-v1"):
        with pytest.raises(UnicodeDecodeError):
            _apig()(event, context)
        expected = _apig(binary_support=True)(event, context)
    else:
        expected = _apig()(event, context)
    assert handle_wsgi(apps.flask_app, event, context) == expected


def test_wsgi_text_and_binary_rules_per_shape() -> None:
    """What the rules above come to: REST keeps the app's header case and sends text;
    payload 2.0 lower-cases names and moves cookies; an ALB sends binary as base64."""
    rest = handle_wsgi(apps.flask_app, rest_event("GET", "/text", [], []), Context("apigw-rest"))
    assert rest["multiValueHeaders"]["Content-Type"] == ["text/plain; charset=utf-8"]
    assert rest["body"] == apps.TEXT and not rest["isBase64Encoded"]
    v2 = handle_wsgi(apps.flask_app, v2_event("GET", "/cookies", [], []), Context("apigw-http"))
    assert len(v2["cookies"]) == 3 and "set-cookie" not in v2["headers"]
    alb = handle_wsgi(apps.flask_app, alb_event("GET", "/binary", [], []), Context("alb"))
    assert alb["isBase64Encoded"] and base64.b64decode(alb["body"]) == apps.PNG


def test_a_failing_wsgi_app_answers_as_under_apig_wsgi() -> None:
    for shape in SHAPES:
        event = build(shape, "GET", "/boom", [], BASE_HEADERS)
        context = _context_for(event)
        assert handle_wsgi(apps.flask_app, event, context) == _apig()(event, context)


def test_an_exception_leaving_the_wsgi_app_is_the_invocation_error() -> None:
    """As under apig-wsgi, what the app does not handle fails the invocation."""
    event = build("http-v2", "POST", "/orders", [], [("content-type", "application/json")], b"{}")
    flask_app = apps.flask_app
    flask_app.config["PROPAGATE_EXCEPTIONS"] = True
    try:
        with pytest.raises(KeyError):
            _apig()(event, Context("apigw-http"))
        with pytest.raises(KeyError):
            handle_wsgi(flask_app, event, Context("apigw-http"))
    finally:
        flask_app.config["PROPAGATE_EXCEPTIONS"] = None
