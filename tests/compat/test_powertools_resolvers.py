"""Powertools' event handler resolvers, each on its own event source: HTTP API (v2, also as
real requests through `serve`), REST API (v1) and ALB."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.compat.events import Request, alb, rest_api
from tests.compat.runtimes import RIC, WEB, Runtimes, assert_alike

JSON = (("content-type", "application/json"),)
#: Each case: the request, and the status the reference (awslambdaric) answers it with.
CASES: dict[str, tuple[Request, int]] = {
    "path and query": (Request("GET", "/items/a7", "q=shoes"), 200),
    "json body, cookies, multi-value header": (
        Request("POST", "/orders", headers=JSON, body=b'{"quantity": 2}'),
        201,
    ),
    "binary": (Request("GET", "/binary"), 200),
    "NotFoundError": (Request("GET", "/missing"), 404),
    "no route": (Request("GET", "/nowhere"), 404),
}


@pytest.fixture(scope="module")
def http_resolver(start_runtimes: Callable[..., Runtimes]) -> Runtimes:
    return start_runtimes("tests.compat.apps.powertools_resolvers.http_handler", names=WEB)


@pytest.fixture(scope="module")
def rest_resolver(start_runtimes: Callable[..., Runtimes]) -> Runtimes:
    return start_runtimes("tests.compat.apps.powertools_resolvers.rest_handler")


@pytest.fixture(scope="module")
def alb_resolver(start_runtimes: Callable[..., Runtimes]) -> Runtimes:
    return start_runtimes("tests.compat.apps.powertools_resolvers.alb_handler")


@pytest.mark.parametrize("case", CASES)
def test_http_resolver(http_resolver: Runtimes, case: str) -> None:
    request, status = CASES[case]
    outcomes = http_resolver.request(request)
    ref = outcomes[RIC].json()
    assert ref.get("statusCode") == status, ref
    assert_alike(outcomes)


@pytest.mark.parametrize("case", CASES)
def test_rest_resolver(rest_resolver: Runtimes, case: str) -> None:
    request, status = CASES[case]
    outcomes = rest_resolver.invoke(rest_api(request))
    ref = outcomes[RIC].json()
    assert ref.get("statusCode") == status, ref
    assert_alike(outcomes)


@pytest.mark.parametrize("case", CASES)
def test_alb_resolver(alb_resolver: Runtimes, case: str) -> None:
    request, status = CASES[case]
    outcomes = alb_resolver.invoke(alb(request))
    ref = outcomes[RIC].json()
    assert ref.get("statusCode") == status, ref
    assert_alike(outcomes)
