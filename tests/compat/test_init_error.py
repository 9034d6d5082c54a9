"""A module that raises at import (not an ImportError): what the init phase logs and what
every invoke answers. Lambda answers each invoke with the init error; `serve` (a service
on ECS) exits instead, so its container is replaced: that difference is intended."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.compat import compare
from tests.compat.runtimes import ALL, LAMBDA, RIC, SERVE, Runtimes, assert_alike

HANDLER = "tests.compat.apps.init_error.handler"


@pytest.fixture(scope="module")
def broken(start_runtimes: Callable[..., Runtimes]) -> Runtimes:
    return start_runtimes(HANDLER, names=ALL)


def test_init_logs_the_error(broken: Runtimes) -> None:
    ref = broken[RIC].lines()
    assert any("ValueError" in line for line in ref), ref
    got = broken[LAMBDA].lines(len(ref))
    views = {
        name: [compare.log_line(x, None) for x in lines]
        for name, lines in {RIC: ref, LAMBDA: got}.items()
    }
    difference = compare.diff(views, dict.fromkeys(views, views[RIC]))
    assert not difference, "\n" + difference


def test_every_invoke_answers_the_init_error(broken: Runtimes) -> None:
    outcomes = broken.invoke({})
    error = outcomes[RIC].json()
    assert error["errorType"] == "ValueError", error
    assert error["errorMessage"] == "invalid literal for int() with base 10: 'ten'"
    assert_alike({name: outcomes[name] for name in (RIC, LAMBDA)})


def test_serve_exits(broken: Runtimes) -> None:
    serve = broken[SERVE].proc
    assert serve.proc.poll() not in (None, 0)
    assert "invalid literal for int() with base 10: 'ten'" in serve.logs()
