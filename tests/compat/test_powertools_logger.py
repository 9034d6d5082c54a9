"""Powertools' Logger with `inject_lambda_context`: one JSON line per call, with the
function's identity and the invocation's request id, under every runtime."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from tests.compat.compare import diff
from tests.compat.runtimes import IDENTITY, RIC, SERVE, Outcome, Runtimes, assert_alike

HANDLER = "tests.compat.apps.powertools_logger.handler"
ARN = "arn:aws:lambda:us-east-1:000000000000:function:compat-fn"
#: The context's keys Powertools adds to each line.
CONTEXT_KEYS = ("function_name", "function_memory_size", "function_arn", "cold_start")


@pytest.fixture(scope="module")
def powertools(start_runtimes: Callable[..., Runtimes]) -> Runtimes:
    return start_runtimes(HANDLER)


def fields(outcome: Outcome) -> list[Any]:
    """Each line's keys, and the values that identify the function and the invocation."""
    out: list[Any] = []
    for line in outcome.lines:
        try:
            parsed = orjson.loads(line)
        except orjson.JSONDecodeError:
            out.append(line)  # not a JSON line at all
            continue
        out.append(
            {
                "keys": list(parsed),
                "level": parsed.get("level"),
                "message": parsed.get("message"),
                "service": parsed.get("service"),
                **{key: parsed.get(key) for key in CONTEXT_KEYS},
                "function_request_id is the request id": (
                    parsed.get("function_request_id") == outcome.request_id
                ),
            }
        )
    return out


@pytest.mark.parametrize("call", ["cold", "warm"])
def test_logger_lines(powertools: Runtimes, call: str) -> None:
    outcomes = powertools.invoke({"order_id": "o-1", "customer": "c-9"})
    ref = fields(outcomes[RIC])
    assert [line["message"] for line in ref] == ["handling", "low stock", "lookup failed"]
    assert ref[0]["function_name"] == IDENTITY["AWS_LAMBDA_FUNCTION_NAME"]
    assert ref[0]["function_arn"] == ARN
    assert ref[0]["cold_start"] is (call == "cold")
    got = {name: fields(out) for name, out in outcomes.items()}
    difference = diff(got, dict.fromkeys(outcomes, ref))
    assert not difference, "\n" + difference
    assert_alike(outcomes)


def test_serve_without_lambda_variables_reports_the_function(
    start_runtimes: Callable[..., Runtimes],
) -> None:
    """Under `serve` nobody sets AWS_LAMBDA_*: Powertools still logs a function name and
    memory size (the settings', the container's), never "0" or empty."""
    bare = start_runtimes(HANDLER, names=(SERVE,), identity=False)
    lines = [orjson.loads(line) for line in bare[SERVE].invoke({"order_id": "o-2"}).lines]
    powertools_lines = [line for line in lines if "cold_start" in line]
    assert len(powertools_lines) == 3
    for line in powertools_lines:
        assert line["function_name"]
        assert int(line["function_memory_size"]) > 0
