"""Powertools' BatchProcessor on an SQS batch with failures: the partial batch response."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from tests.compat.runtimes import RIC, Runtimes, assert_alike
from tests.events import sqs

HANDLER = "tests.compat.apps.powertools_batch.handler"


def batch(quantities: list[int]) -> dict[str, Any]:
    """AWS's sample SQS batch, one record per quantity."""
    event = sqs()[1][2]
    records = event["Records"][: len(quantities)]
    for record, quantity in zip(records, quantities, strict=True):
        record["body"] = orjson.dumps({"quantity": quantity}).decode()
    return {"Records": records}


@pytest.fixture(scope="module")
def batch_processor(start_runtimes: Callable[..., Runtimes]) -> Runtimes:
    return start_runtimes(HANDLER)


@pytest.mark.parametrize(
    ("quantities", "failed"),
    [([1, 2, 3], []), ([1, -2, 3, -4], [1, 3]), ([-1], [0])],
    ids=["all succeed", "two fail", "all fail"],
)
def test_partial_batch_failures(
    batch_processor: Runtimes, quantities: list[int], failed: list[int]
) -> None:
    event = batch(quantities)
    outcomes = batch_processor.invoke(event)
    ids = [event["Records"][i]["messageId"] for i in failed]
    if len(failed) == len(quantities):
        # Powertools raises when every record failed: the whole batch is retried.
        assert outcomes[RIC].json()["errorType"] == "BatchProcessingError"
    else:
        assert outcomes[RIC].json() == {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}
    assert_alike(outcomes)
