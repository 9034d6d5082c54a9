"""handlers.sqs: per-record processing with partial batch failures (Powertools' format)."""

from __future__ import annotations

import json
from typing import Any

from handlers.sqs import batch_handler, handler
from tests.test_sqs import counts, new_queue, send
from tests.test_supervisor import wait_for


def event(bodies: list[str], fifo: bool = False) -> dict[str, Any]:
    arn = "arn:aws:sqs:us-east-1:123456789012:q" + (".fifo" if fifo else "")
    return {
        "Records": [
            {"messageId": f"m{i}", "body": b, "eventSource": "aws:sqs", "eventSourceARN": arn}
            for i, b in enumerate(bodies)
        ]
    }


def test_only_the_failing_records_are_reported() -> None:
    answer = handler(event(['{"a": 1}', "not json", '{"fail": true}', "[]"]), None)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}]}


def test_a_clean_batch_reports_no_failures() -> None:
    assert handler(event(['{"a": 1}', '{"b": 2}']), None) == {"batchItemFailures": []}


async def test_async_records_run_concurrently_and_fail_alone() -> None:
    seen: list[str] = []

    @batch_handler
    async def process(record: dict[str, Any], context: Any) -> None:
        seen.append(record["messageId"])
        if record["body"] == "bad":
            raise ValueError("bad record")

    answer = await process(event(["ok", "bad", "ok"]), None)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert sorted(seen) == ["m0", "m1", "m2"]


def test_fifo_stops_at_the_first_failure_so_the_group_keeps_its_order() -> None:
    processed: list[str] = []

    @batch_handler
    def process(record: dict[str, Any], context: Any) -> None:
        if record["body"] == "bad":
            raise ValueError("bad record")
        processed.append(record["messageId"])

    answer = process(event(["ok", "bad", "ok", "ok"], fifo=True), None)
    assert [f["itemIdentifier"] for f in answer["batchItemFailures"]] == ["m1", "m2", "m3"]
    assert processed == ["m0"]


def test_under_worker_sqs_failures_stay_and_the_rest_is_deleted(sqs_worker, moto) -> None:
    url = new_queue(moto, visibility=300)
    send(moto, url, [json.dumps({"n": i}) for i in range(9)] + [json.dumps({"fail": True})])
    sqs_worker("handlers.sqs.handler", url, "--workers", "1", env={"WORKER_SQS_WAIT_SECONDS": "1"})
    wait_for(lambda: counts(moto, url) == (0, 1), "nine deleted, the failure held")
