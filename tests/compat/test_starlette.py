"""Mangum + Starlette under awslambdaric, `worker lambda` and `worker serve`, for HTTP API
(v2, also as real requests through `serve`), REST API (v1) and ALB events; and the app
itself under the runtime's built-in adapter and served natively, as Mangum answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.compat.events import Request, alb, rest_api
from tests.compat.runtimes import NATIVE, RIC, Runtimes, assert_alike

#: The app itself, which the runtime serves natively and adapts to Lambda events.
APP = "tests.compat.apps.starlette_app:app"
HANDLER = "tests.compat.apps.starlette_app.handler"

#: Each case: the request, and the status the reference (awslambdaric) answers it with.
CASES: dict[str, tuple[Request, int]] = {
    "path, repeated query, cookie": (
        Request("GET", "/items/a1", "q=x&q=y", cookies=("a=1", "b=2")),
        200,
    ),
    "binary body echoed": (
        Request(
            "POST",
            "/echo",
            headers=(("content-type", "application/octet-stream"),),
            body=bytes(range(255, -1, -1)),
        ),
        202,
    ),
    "text body echoed": (
        Request("POST", "/echo", headers=(("content-type", "text/plain"),), body=b"hello"),
        202,
    ),
    "cookies and repeated headers": (Request("GET", "/cookies"), 200),
    "418": (Request("GET", "/teapot"), 418),
    "404": (Request("GET", "/nowhere"), 404),
    "405": (Request("DELETE", "/echo"), 405),
}
SHAPES: dict[str, Callable[[Request], dict[str, Any]]] = {"rest-api-v1": rest_api, "alb": alb}


@pytest.fixture(scope="module")
def starlette(start_runtimes: Callable[..., Runtimes]) -> Runtimes:
    return start_runtimes(HANDLER, names=NATIVE, app=APP)


@pytest.mark.parametrize("case", CASES)
def test_http_api_request(starlette: Runtimes, case: str) -> None:
    request, status = CASES[case]
    outcomes = starlette.request(request)
    ref = outcomes[RIC].json()
    assert ref.get("statusCode") == status, ref
    assert_alike(outcomes)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("shape", SHAPES)
def test_event(starlette: Runtimes, shape: str, case: str) -> None:
    request, status = CASES[case]
    outcomes = starlette.invoke(SHAPES[shape](request))
    ref = outcomes[RIC].json()
    assert ref.get("statusCode") == status, ref
    assert_alike(outcomes)
