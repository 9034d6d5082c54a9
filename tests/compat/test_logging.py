"""Logging as the official runtime does it, in Lambda's Text and JSON formats: one line (or
record) per call whatever the handler logs with, at the level it set."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.compat.runtimes import RIC, Runtimes, assert_alike

HANDLER = "tests.compat.apps.logging_app.handler"


@pytest.fixture(scope="module")
def text(start_runtimes: Callable[..., Runtimes]) -> Runtimes:
    return start_runtimes(HANDLER)


@pytest.fixture(scope="module")
def json_debug(start_runtimes: Callable[..., Runtimes]) -> Runtimes:
    env = {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "DEBUG"}
    return start_runtimes(HANDLER, env=env)


@pytest.mark.parametrize("n", [1, 2])
def test_text_format(text: Runtimes, n: int) -> None:
    outcomes = text.invoke({"n": n})
    assert outcomes[RIC].json() == {"n": n}
    assert any(f"info {n}" in line for line in outcomes[RIC].lines)
    assert_alike(outcomes)


@pytest.mark.parametrize("n", [1, 2])
def test_json_format_and_level(json_debug: Runtimes, n: int) -> None:
    outcomes = json_debug.invoke({"n": n})
    assert outcomes[RIC].json() == {"n": n}
    assert any('"level": "ERROR"' in line for line in outcomes[RIC].lines)
    assert_alike(outcomes)
