"""Fixtures: the runtimes the suite compares, started once per test module and stopped with it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.compat import runtimes
from tests.conftest import Procs


@pytest.fixture(scope="module")
def start_runtimes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """`start_runtimes(HANDLER, names=…, env=…, concurrency=…)` → `Runtimes`, all running
    until the module's last test ends (then stopped, by PID)."""
    procs = Procs(tmp_path_factory.mktemp("compat"))

    def start(handler: str, **options: Any) -> runtimes.Runtimes:
        return runtimes.start(procs, handler, **options)

    yield start
    procs.stop_all()
