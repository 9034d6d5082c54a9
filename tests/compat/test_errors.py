"""A handler that raises: the error a caller gets (errorType, errorMessage, the frames of
stackTrace) and the lines logged, under every runtime; and API Gateway's 502 through `serve`."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.compat.compare import frames
from tests.compat.events import Request
from tests.compat.runtimes import RIC, WEB, Runtimes, assert_alike


@pytest.fixture(scope="module")
def raising(start_runtimes: Callable[..., Runtimes]) -> Runtimes:
    return start_runtimes("tests.compat.apps.errors.handler", names=WEB)


@pytest.fixture(scope="module")
def library(start_runtimes: Callable[..., Runtimes]) -> Runtimes:
    return start_runtimes("tests.compat.apps.errors.through_library")


def test_value_error(raising: Runtimes) -> None:
    outcomes = raising.invoke({"quantity": -2})
    error = outcomes[RIC].json()
    assert outcomes[RIC].answer.header("x-amz-function-error") == "Unhandled"
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "quantity must not be negative: -2"
    assert frames(error["stackTrace"]) == ["errors.py:handler", "errors.py:_check"]
    assert_alike(outcomes)


def test_value_error_through_proxy_is_502(raising: Runtimes) -> None:
    outcomes = raising.request(Request("GET", "/orders"))
    assert outcomes[RIC].json()["errorType"] == "KeyError"
    assert_alike(outcomes)


def test_error_raised_in_a_library(library: Runtimes) -> None:
    outcomes = library.invoke({"raw": "{not json"})
    error = outcomes[RIC].json()
    assert error["errorType"] == "JSONDecodeError"
    assert frames(error["stackTrace"])[0] == "errors.py:through_library"
    assert len(frames(error["stackTrace"])) > 1  # the library's own frames are kept
    assert_alike(outcomes)
