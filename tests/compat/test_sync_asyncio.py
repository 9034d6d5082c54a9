"""Sync handlers that use asyncio (`get_event_loop().run_until_complete()`, `asyncio.run()`),
called more times than this runtime watches a sync handler before it may move it onto its
event loop: every call answers as under awslambdaric."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.compat.runtimes import RIC, Runtimes, assert_alike
from worker.placement import TRUST

#: Past the streak after which a handler that never blocked runs on the loop.
CALLS = TRUST + 6


@pytest.fixture(scope="module")
def run_until_complete(start_runtimes: Callable[..., Runtimes]) -> Runtimes:
    return start_runtimes("tests.compat.apps.sync_asyncio.run_until_complete")


@pytest.fixture(scope="module")
def asyncio_run(start_runtimes: Callable[..., Runtimes]) -> Runtimes:
    return start_runtimes("tests.compat.apps.sync_asyncio.run")


def test_get_event_loop_run_until_complete(run_until_complete: Runtimes) -> None:
    for n in range(CALLS):
        outcomes = run_until_complete.invoke({"n": n})
        assert outcomes[RIC].json() == {"doubled": 2 * n, "running": False}
        assert_alike(outcomes)


def test_asyncio_run(asyncio_run: Runtimes) -> None:
    for n in range(CALLS):
        outcomes = asyncio_run.invoke({"n": n})
        assert outcomes[RIC].json() == {"doubled": 2 * n}
        assert_alike(outcomes)
