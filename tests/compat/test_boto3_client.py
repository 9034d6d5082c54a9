"""boto3 clients made at import and used on every call (against a moto server), with the
region as Lambda gives it: the suite's environment names none of its own."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.compat.runtimes import RIC, Runtimes, assert_alike
from tests.conftest import Moto

HANDLER = "tests.compat.apps.boto3_client.handler"
BUCKET = "compat-boto3"
TABLE = "compat-boto3"


@pytest.fixture(scope="module")
def boto3_app(start_runtimes: Callable[..., Runtimes], moto: Moto) -> Runtimes:
    moto.client("s3").create_bucket(Bucket=BUCKET)
    moto.client("dynamodb").create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    env = {**moto.env, "COMPAT_BUCKET": BUCKET, "COMPAT_TABLE": TABLE}
    return start_runtimes(HANDLER, env=env)


@pytest.mark.parametrize("key", ["a.txt", "b/c.txt", "a.txt"])
def test_module_level_clients(boto3_app: Runtimes, key: str) -> None:
    outcomes = boto3_app.invoke({"key": key, "body": f"hello {key}"})
    ref = outcomes[RIC].json()
    assert isinstance(ref, dict) and ref.get("body") == f"hello {key}", ref
    assert ref["region"] == "us-east-1"
    assert_alike(outcomes)
