"""Powertools' Idempotency on DynamoDB: the same event twice returns the stored result."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent,
)

persistence = DynamoDBPersistenceLayer(table_name=os.environ["IDEMPOTENCY_TABLE"])
config = IdempotencyConfig(event_key_jmespath="order_id")
#: Calls that ran the handler's body: a stored result answers without one.
calls = 0


@idempotent(persistence_store=persistence, config=config)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global calls
    calls += 1
    return {"order_id": event["order_id"], "charged": event["amount"], "call": calls}
