"""Powertools' Metrics: the EMF lines (and the cold-start metric's) under every runtime."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from tests.compat.runtimes import RIC, Runtimes, assert_alike

HANDLER = "tests.compat.apps.powertools_metrics.handler"


@pytest.fixture(scope="module")
def metrics(start_runtimes: Callable[..., Runtimes]) -> Runtimes:
    return start_runtimes(HANDLER)


@pytest.mark.parametrize("call", ["cold", "warm"])
def test_emf_lines(metrics: Runtimes, call: str) -> None:
    outcomes = metrics.invoke({"channel": "app", "orders": 3, "order_id": "o-7"})
    emf = [orjson.loads(line) for line in outcomes[RIC].lines]
    names = [[m["Name"] for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]] for line in emf]
    # The cold-start metric has a line of its own, on the first call only.
    assert names == ([["ColdStart"]] if call == "cold" else []) + [["Orders", "Latency"]]
    assert emf[-1]["Orders"] == [3.0] and emf[-1]["channel"] == "app"
    assert_alike(outcomes)
