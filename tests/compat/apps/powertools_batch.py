"""Powertools' BatchProcessor on an SQS batch: the failed records as partial batch failures."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

logger = Logger(service="compat-batch")
processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> int:
    order = json.loads(record.body)
    if order["quantity"] < 0:
        raise ValueError(f"negative quantity in {record.message_id}")
    logger.info("order", extra={"message_id": record.message_id})
    return int(order["quantity"])


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
