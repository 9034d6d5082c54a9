"""apig-wsgi + Flask under awslambdaric, `worker lambda` and `worker serve`, for HTTP API
(v2, also as real requests through `serve`), REST API (v1) and ALB events; and the WSGI app
itself under the runtime's built-in adapter and served natively, as apig-wsgi answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.compat.events import Request, alb, rest_api
from tests.compat.runtimes import NATIVE, RIC, Runtimes, assert_alike

#: The app itself, which the runtime serves natively and adapts to Lambda events.
APP = "tests.compat.apps.flask_app:app"
HANDLER = "tests.compat.apps.flask_app.handler"
JSON = (("content-type", "application/json"),)

#: Each case: the request, and the status the reference (awslambdaric) answers it with.
CASES: dict[str, tuple[Request, int]] = {
    "path, repeated query, cookie": (
        Request("GET", "/items/7", "q=x&q=y", cookies=("a=1", "b=2")),
        200,
    ),
    "json body": (
        Request("POST", "/orders", headers=JSON, body=b'{"item":"pen","quantity":4}'),
        201,
    ),
    "cookies": (Request("GET", "/cookies"), 200),
    "binary": (Request("GET", "/binary"), 200),
    "404": (Request("GET", "/nowhere"), 404),
    "view raises: 500 and the logged traceback": (Request("GET", "/fail"), 500),
}
SHAPES: dict[str, Callable[[Request], dict[str, Any]]] = {"rest-api-v1": rest_api, "alb": alb}


@pytest.fixture(scope="module")
def flask(start_runtimes: Callable[..., Runtimes]) -> Runtimes:
    return start_runtimes(HANDLER, names=NATIVE, app=APP)


@pytest.mark.parametrize("case", CASES)
def test_http_api_request(flask: Runtimes, case: str) -> None:
    request, status = CASES[case]
    outcomes = flask.request(request)
    ref = outcomes[RIC].json()
    assert ref.get("statusCode") == status, ref
    assert_alike(outcomes)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("shape", SHAPES)
def test_event(flask: Runtimes, shape: str, case: str) -> None:
    request, status = CASES[case]
    outcomes = flask.invoke(SHAPES[shape](request))
    ref = outcomes[RIC].json()
    assert ref.get("statusCode") == status, ref
    assert_alike(outcomes)
