"""SQS batches with partial failures, in Powertools' response format.

    from handlers.sqs import batch_handler

    @batch_handler
    def handler(record, context):        # or async def; called once per message
        process(json.loads(record["body"]))

Each record is handled on its own; a record whose function raises is reported in
`{"batchItemFailures": [{"itemIdentifier": messageId}, …]}`, so only it comes back (the
event source mapping needs `ReportBatchItemFailures`; `worker sqs` always honours it).
Async record functions run concurrently within the batch, except on FIFO queues, where
records run in order and, after a failure, the rest of the batch is reported failed so a
message group never skips ahead (Powertools' FIFO rule).

`@batch_handler(idempotent=True)` records each message once it succeeded
(`worker.idempotent`, keyed by its `messageId`, or by the field, path or callable given
instead of True): a redelivered message returns at once without running again, a
duplicate arriving while the first still runs waits for it, and a failure is still
reported for that message alone (its record is dropped, so the redelivery runs).

The ready `handler` parses each body as JSON and logs the message it carries; a body
that is not JSON, or one with `"fail": true`, fails that record only.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger("handlers.sqs")

Record = dict[str, Any]


def _is_fifo(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    if not records:
        return False
    return str(records[0].get("eventSourceARN", "")).endswith(".fifo")


def _failure(record: Record, exc: BaseException) -> dict[str, str]:
    log.warning("record %s failed: %s: %s", record.get("messageId"), type(exc).__name__, exc)
    return {"itemIdentifier": record["messageId"]}


def batch_handler(
    fn: Callable[[Record, Any], Any] | None = None,
    *,
    idempotent: bool | str | Sequence[str] | Callable[[Record], Any] = False,
    expires: float = 3600,
) -> Any:
    """Turn a per-record function (sync or async) into an SQS batch handler; with
    `idempotent`, each message runs once (see the module's text)."""
    if fn is None:
        return functools.partial(batch_handler, idempotent=idempotent, expires=expires)
    if idempotent is not False:
        from worker.idempotency import idempotent as once

        key = "messageId" if idempotent is True else idempotent
        fn = once(key=key, expires=expires)(fn)
    return _batches(fn)


def _batches(fn: Callable[[Record, Any], Any]) -> Callable[[Any, Any], Any]:
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(event: Any, context: Any) -> dict[str, Any]:
            records: list[Record] = event["Records"]
            failures: list[dict[str, str]] = []
            if _is_fifo(event):
                for record in records:
                    if failures:
                        failures.append({"itemIdentifier": record["messageId"]})
                        continue
                    try:
                        await fn(record, context)
                    except Exception as exc:
                        failures.append(_failure(record, exc))
                return {"batchItemFailures": failures}
            outcomes = await asyncio.gather(
                *(fn(record, context) for record in records), return_exceptions=True
            )
            for record, outcome in zip(records, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    failures.append(_failure(record, outcome))
                elif isinstance(outcome, BaseException):
                    raise outcome
            return {"batchItemFailures": failures}

        return run_async

    @functools.wraps(fn)
    def run(event: Any, context: Any) -> dict[str, Any]:
        fifo = _is_fifo(event)
        failures: list[dict[str, str]] = []
        for record in event["Records"]:
            if fifo and failures:
                failures.append({"itemIdentifier": record["messageId"]})
                continue
            try:
                fn(record, context)
            except Exception as exc:
                failures.append(_failure(record, exc))
        return {"batchItemFailures": failures}

    return run


class RecordFailed(Exception):
    """The message asked to fail (`"fail": true`), for trying out redrives."""


@batch_handler
def handler(record: Record, context: Any) -> None:
    message = json.loads(record["body"])
    if isinstance(message, dict) and message.get("fail"):
        raise RecordFailed(f"message {record['messageId']} asked to fail")
    log.info(
        "message processed",
        extra={"fields": {"messageId": record["messageId"], "bytes": len(record["body"])}},
    )
