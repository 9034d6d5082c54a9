"""worker.idempotent on the embedded SQLite store and on DynamoDB (a moto server): a key
runs once, duplicates get its result, failures and expiry let it run again."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.apps import idempotency_apps as apps
from tests.client import invoke
from tests.conftest import Moto, Proc
from worker import aws, state
from worker.config import Config
from worker.context import LambdaContext
from worker.environment import function
from worker.idempotency import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
    idempotent,
)
from worker.jobs import Job

HANDLER = "tests.apps.idempotency_apps.handler"


def idempotency_table(moto: Moto) -> str:
    name = f"idempotency-{uuid.uuid4().hex[:8]}"
    moto.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


@pytest.fixture(params=["sqlite", "dynamodb"])
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The environment that picks the store, and where its records go."""
    if request.param == "sqlite":
        return {"WORKER_STATE_DIR": str(tmp_path / "state"), "WORKER_IDEMPOTENCY_STORE": "sqlite:"}
    moto: Moto = request.getfixturevalue("moto")
    return {
        **moto.env,
        "AWS_DEFAULT_REGION": moto.env["AWS_REGION"],
        "WORKER_IDEMPOTENCY_STORE": f"dynamodb:{idempotency_table(moto)}",
    }


@pytest.fixture
async def here(
    store_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[Path]:
    """The store of `store_env` in this process; yields the file each run is logged in."""
    runs = tmp_path / "runs"
    for key, value in {**store_env, "RUNS_FILE": str(runs)}.items():
        monkeypatch.setenv(key, value)
    state.reset()
    clients = aws.reset(16)
    yield runs
    await clients.close()
    state.reset()


def context(seconds: float = 10.0) -> LambdaContext:
    """A real invocation context whose deadline is `seconds` away."""
    return LambdaContext(
        function(Config(), "/tmp"), Job({}, None), time.time() + seconds, "sprinter"
    )


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# -- real services: processes sharing a store ----------------------------------------------


async def test_concurrent_duplicates_across_processes_run_once(
    serve: Callable[..., Proc], store_env: dict[str, str], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    srv = serve(
        HANDLER, "--workers", "2", "--concurrency", "32", env={**store_env, "RUNS_FILE": str(runs)}
    )
    event = {"order_id": "o-dup", "amount": 5, "seconds": 0.5}
    answers = await asyncio.gather(*(invoke(srv.port, event) for _ in range(20)))
    assert [a.status for a in answers] == [200] * 20
    bodies: list[Any] = [a.json() for a in answers]
    assert all("result" in b for b in bodies), bodies
    # One run (its line, its token), whose result every duplicate got, in both processes.
    assert lines(runs) == ["o-dup"]
    assert len({b["result"]["run"] for b in bodies}) == 1
    assert len({b["answeredBy"] for b in bodies}) == 2


async def test_a_completed_key_does_not_run_after_a_restart(
    serve: Callable[..., Proc], store_env: dict[str, str], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    env = {**store_env, "RUNS_FILE": str(runs)}
    event = {"order_id": "o-restart", "amount": 3}
    first = serve(HANDLER, "--workers", "1", env=env)
    before: Any = (await invoke(first.port, event)).json()
    assert first.stop() == 0
    second = serve(HANDLER, "--workers", "1", env=env)
    after: Any = (await invoke(second.port, event)).json()
    assert after["result"] == before["result"]
    assert after["answeredBy"] != before["answeredBy"]
    assert lines(runs) == ["o-restart"]


# -- in this process ---------------------------------------------------------------------


async def test_an_exception_deletes_the_record_so_a_retry_runs(here: Path) -> None:
    with pytest.raises(RuntimeError, match="card declined"):
        await apps.charge({"order_id": "o-fail", "amount": 1, "fail": True}, context())
    result = await apps.charge({"order_id": "o-fail", "amount": 1}, context())
    assert result["charged"] == 1
    assert lines(here) == ["o-fail", "o-fail"]
    again = await apps.charge({"order_id": "o-fail", "amount": 1}, context())
    assert again == result  # completed now: the stored result, no third run
    assert len(lines(here)) == 2


async def test_a_duplicate_with_another_payload_fails_validation(here: Path) -> None:
    await apps.charge({"order_id": "o-valid", "amount": 5}, context())
    with pytest.raises(IdempotencyValidationError):
        await apps.charge({"order_id": "o-valid", "amount": 6}, context())
    assert lines(here) == ["o-valid"]


async def test_an_expired_record_runs_again(here: Path) -> None:
    """`charge_sync` (a sync function, on a thread as the pool runs one) expires after 1 s."""
    event = {"order": {"id": "o-expire"}}
    first = await asyncio.to_thread(apps.charge_sync, event, context())
    assert await asyncio.to_thread(apps.charge_sync, event, context()) == first
    # Expiry is in whole seconds, as Powertools keeps it: wait for the run that proves it.
    end = time.monotonic() + 5
    while len(lines(here)) < 2 and time.monotonic() < end:
        again = await asyncio.to_thread(apps.charge_sync, event, context())
        await asyncio.sleep(0.2)
    assert lines(here) == ["o-expire", "o-expire"]
    assert again["run"] != first["run"]


async def test_a_concurrent_duplicate_waits_for_the_first_result(here: Path) -> None:
    event = {"order_id": "o-wait", "amount": 2, "seconds": 0.3}
    first, second = await asyncio.gather(
        apps.charge(event, context()), apps.charge(event, context())
    )
    assert first == second
    assert lines(here) == ["o-wait"]


async def test_a_duplicate_runs_when_the_first_one_fails_meanwhile(here: Path) -> None:
    failing = {"order_id": "o-take", "amount": 2, "seconds": 0.2, "fail": True}
    outcomes = await asyncio.gather(
        apps.charge(failing, context()),
        apps.charge({**failing, "fail": False}, context()),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], RuntimeError)
    assert isinstance(outcomes[1], dict) and outcomes[1]["order_id"] == "o-take"
    assert lines(here) == ["o-take", "o-take"]


async def test_a_duplicate_still_waiting_at_its_deadline_fails_clearly(here: Path) -> None:
    event = {"order_id": "o-slow", "amount": 1, "seconds": 1.0}
    first = asyncio.ensure_future(apps.charge(event, context()))
    await asyncio.sleep(0.1)  # the first one holds the key (it sleeps a second)
    with pytest.raises(IdempotencyAlreadyInProgressError):
        await apps.charge(event, context(seconds=0.3))
    assert (await first)["order_id"] == "o-slow"


async def test_a_payload_without_the_key_runs_without_a_record(here: Path) -> None:
    calls: list[int] = []

    @idempotent(key="order_id")
    async def fn(event: Any, ctx: Any) -> int:
        calls.append(1)
        return len(calls)

    assert await fn({"other": 1}, context()) == 1
    assert await fn({"other": 1}, context()) == 2


async def test_batch_handler_records_each_message(here: Path) -> None:
    from handlers.sqs import batch_handler

    seen: list[str] = []

    @batch_handler(idempotent=True)
    async def process(record: dict[str, Any], ctx: Any) -> None:
        seen.append(record["messageId"])
        if record["body"] == "bad":
            raise ValueError("bad record")

    def batch(*bodies: str) -> dict[str, Any]:
        return {"Records": [{"messageId": f"m-{b}", "body": b} for b in bodies]}

    first = await process(batch("a", "bad", "b"), context())
    assert first == {"batchItemFailures": [{"itemIdentifier": "m-bad"}]}
    # Redelivered (all of it, as after a timeout): only the failed one runs again.
    again = await process(batch("a", "bad", "b"), context())
    assert again == first
    assert sorted(seen) == ["m-a", "m-b", "m-bad", "m-bad"]


# -- Powertools' records ------------------------------------------------------------------


@pytest.fixture
def powertools_store(moto: Moto, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any]]:
    table = idempotency_table(moto)
    for key, value in {**moto.env, "AWS_DEFAULT_REGION": moto.env["AWS_REGION"]}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("WORKER_IDEMPOTENCY_STORE", f"dynamodb:{table}")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders")
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    state.reset()
    yield table, DynamoDBPersistenceLayer(table_name=table, boto3_client=moto.client("dynamodb"))
    state.reset()


def test_powertools_records_carry_over(powertools_store: tuple[str, Any], moto: Moto) -> None:
    """A result Powertools stored answers our decorator's call for the same function and
    key (no run), and a record ours stores is one Powertools answers from."""
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
    from aws_lambda_powertools.utilities.idempotency import idempotent as powertools_idempotent

    table, persistence = powertools_store
    config = IdempotencyConfig(event_key_jmespath="order_id")
    runs: list[str] = []

    def charge(event: dict[str, Any], context: Any) -> dict[str, Any]:
        runs.append(event["order_id"])
        return {"order_id": event["order_id"], "runs": len(runs)}

    theirs = powertools_idempotent(persistence_store=persistence, config=config)(charge)
    ours = idempotent(key="order_id")(charge)
    ctx = context()
    stored = theirs({"order_id": "p-1"}, ctx)
    assert ours({"order_id": "p-1"}, ctx) == stored
    first = ours({"order_id": "p-2"}, ctx)
    assert theirs({"order_id": "p-2"}, ctx) == first
    assert runs == ["p-1", "p-2"]
    items = moto.client("dynamodb").scan(TableName=table)["Items"]
    assert {i["status"]["S"] for i in items} == {"COMPLETED"}
    prefix = f"orders.{charge.__module__}.{charge.__qualname__}#"
    assert all(i["id"]["S"].startswith(prefix) for i in items)
    assert os.environ["AWS_LAMBDA_FUNCTION_NAME"] == "orders"


async def test_batched_outcomes_are_records_powertools_answers_from(
    powertools_store: tuple[str, Any], moto: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many async calls at once on DynamoDB: their outcomes go out in shared
    BatchWriteItem calls (one flight, so the rest queue), and every record lands whole,
    completed or deleted, in the layout Powertools reads."""
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
    from aws_lambda_powertools.utilities.idempotency import idempotent as powertools_idempotent

    monkeypatch.setenv("WORKER_IDEMPOTENCY_WRITE_FLIGHTS", "1")
    state.reset()
    clients = aws.reset(16)
    table, persistence = powertools_store
    runs: list[str] = []
    batches: list[int] = []

    async def charge(event: dict[str, Any], context: Any) -> dict[str, Any]:
        runs.append(event["order_id"])
        if event["order_id"].endswith("-fail"):
            raise RuntimeError("declined")
        return {"order_id": event["order_id"]}

    ours = idempotent(key="order_id")(charge)
    dynamodb = await aws.current.get("dynamodb")
    real_batch = dynamodb.batch_write_item

    async def counted(**kwargs: Any) -> Any:
        batches.append(len(kwargs["RequestItems"][table]))
        return await real_batch(**kwargs)

    monkeypatch.setattr(dynamodb, "batch_write_item", counted)
    ids = [f"b-{i}" for i in range(40)] + [f"b-{i}-fail" for i in range(5)]
    outcomes = await asyncio.gather(
        *(ours({"order_id": i}, context()) for i in ids), return_exceptions=True
    )
    await clients.close()
    assert all(isinstance(o, RuntimeError) for o in outcomes[40:]), outcomes[40:]
    assert outcomes[:40] == [{"order_id": i} for i in ids[:40]]
    assert batches and max(batches) > 1  # outcomes did share BatchWriteItem calls
    items = moto.client("dynamodb").scan(TableName=table)["Items"]
    assert len(items) == 40 and {i["status"]["S"] for i in items} == {"COMPLETED"}

    def never(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise AssertionError("Powertools ran a call our record answers")

    config = IdempotencyConfig(event_key_jmespath="order_id")
    theirs = powertools_idempotent(persistence_store=persistence, config=config)
    # Powertools keys by function: ours was `charge`; its twin under the same name answers.
    never.__qualname__, never.__module__ = charge.__qualname__, charge.__module__
    answered = theirs(never)
    assert [answered({"order_id": i}, context()) for i in ids[:40]] == outcomes[:40]
    assert sorted(runs) == sorted(ids)
