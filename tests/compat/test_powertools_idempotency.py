"""Powertools' Idempotency on DynamoDB (a moto server): the same event twice answers the
stored result, and each runtime's table holds the same records."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.compat.runtimes import ALL, RIC, Runtimes, assert_alike
from tests.conftest import Moto

HANDLER = "tests.compat.apps.powertools_idempotency.handler"


def table(runtime: str) -> str:
    """Each runtime has a table of its own: a record one stored must not answer another."""
    return "compat-idempotency-" + runtime.replace(" ", "-")


@pytest.fixture(scope="module")
def idempotency(start_runtimes: Callable[..., Runtimes], moto: Moto) -> Runtimes:
    dynamodb = moto.client("dynamodb")
    for name in ALL:
        dynamodb.create_table(
            TableName=table(name),
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    # AWS_DEFAULT_REGION (which boto3 reads) is Lambda's, but `worker emulate` does not set
    # it yet: test_boto3_client shows that; here it is given, to test idempotency itself.
    env = {**moto.env, "AWS_DEFAULT_REGION": moto.env["AWS_REGION"]}
    return start_runtimes(HANDLER, env=lambda name: {**env, "IDEMPOTENCY_TABLE": table(name)})


@pytest.mark.parametrize(
    ("event", "call"),
    [
        ({"order_id": "o-1", "amount": 5}, 1),
        ({"order_id": "o-1", "amount": 5}, 1),  # the stored result, not a second call
        ({"order_id": "o-2", "amount": 7}, 2),
    ],
    ids=["first", "repeat", "another"],
)
def test_same_event_answers_the_stored_result(
    idempotency: Runtimes, event: dict[str, Any], call: int
) -> None:
    outcomes = idempotency.invoke(event)
    assert outcomes[RIC].json() == {
        "order_id": event["order_id"],
        "charged": event["amount"],
        "call": call,
    }
    assert_alike(outcomes)


def records(moto: Moto, name: str) -> list[dict[str, Any]]:
    """A table's items, expiry times checked and replaced by what they stand for."""
    now = time.time()
    items = moto.client("dynamodb").scan(TableName=table(name))["Items"]
    for item in items:
        expiration = int(item["expiration"]["N"])
        assert now < expiration <= now + 3600 + 60  # Powertools' default: an hour
        item["expiration"] = {"N": "<epoch-s, an hour on>"}
        if "in_progress_expiration" in item:
            item["in_progress_expiration"] = {"N": "<epoch-ms>"}
    return sorted(items, key=lambda item: item["id"]["S"])


def test_records_have_powertools_layout(idempotency: Runtimes, moto: Moto) -> None:
    ref = records(moto, RIC)
    assert [item["status"]["S"] for item in ref] == ["COMPLETED", "COMPLETED"]
    assert {name: records(moto, name) for name in ALL} == dict.fromkeys(ALL, ref)
