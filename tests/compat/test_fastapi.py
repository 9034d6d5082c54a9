"""Mangum + FastAPI: every route under awslambdaric, `worker lambda` and `worker serve`, for
HTTP API (v2, also as real requests through `serve`), REST API (v1), ALB and function URL
events; and the app itself (no Mangum) under the runtime's built-in adapter and served
natively, whose answers must equal Mangum's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.compat.events import Request, alb, function_url, http_api, rest_api
from tests.compat.runtimes import NATIVE, RIC, Runtimes, assert_alike

#: The app itself, which the runtime serves natively and adapts to Lambda events.
APP = "tests.compat.apps.fastapi_app:app"
HANDLER = "tests.compat.apps.fastapi_app.handler"
JSON = (("content-type", "application/json"),)

#: Each case: the request, and the status the reference (awslambdaric) answers it with.
CASES: dict[str, tuple[Request, int]] = {
    "async route, path and query": (Request("GET", "/items/7", "q=shoes"), 200),
    "sync route": (Request("GET", "/sync/bob", "n=3"), 200),
    "json body": (
        Request("POST", "/orders", headers=JSON, body=b'{"item":"pen","quantity":4}'),
        201,
    ),
    "404": (Request("GET", "/nowhere"), 404),
    "422 path": (Request("GET", "/items/seven"), 422),
    "422 body": (Request("POST", "/orders", headers=JSON, body=b'{"item":"pen"}'), 422),
    "cookies": (Request("GET", "/cookies", cookies=("a=1", "b=2")), 200),
    "binary": (Request("GET", "/binary"), 200),
    "streaming response": (Request("GET", "/stream"), 200),
}
SHAPES: dict[str, Callable[[Request], dict[str, Any]]] = {
    "http-api-v2": http_api,
    "rest-api-v1": rest_api,
    "alb": alb,
    "function-url": function_url,
}


@pytest.fixture(scope="module")
def fastapi(start_runtimes: Callable[..., Runtimes]) -> Runtimes:
    return start_runtimes(HANDLER, names=NATIVE, app=APP)


@pytest.mark.parametrize("case", CASES)
def test_http_api_request(fastapi: Runtimes, case: str) -> None:
    request, status = CASES[case]
    outcomes = fastapi.request(request)
    ref = outcomes[RIC].json()
    assert ref.get("statusCode") == status, ref
    assert_alike(outcomes)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("shape", ["rest-api-v1", "alb", "function-url"])
def test_event(fastapi: Runtimes, shape: str, case: str) -> None:
    request, status = CASES[case]
    outcomes = fastapi.invoke(SHAPES[shape](request))
    ref = outcomes[RIC].json()
    assert ref.get("statusCode") == status, ref
    assert_alike(outcomes)
