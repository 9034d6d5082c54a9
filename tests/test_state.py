"""worker.state: the stores' promises, the same on SQLite, DynamoDB (a moto server) and memory."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import Moto
from worker import aws, state
from worker.config import Config
from worker.state import settings
from worker.state.base import (
    COMPLETED,
    FAILED,
    INPROGRESS,
    RUNNING,
    STARTED,
    SUCCEEDED,
    WAITING,
    DurableStore,
    IdempotencyStore,
    LeaseLost,
    Op,
    Outcome,
    Record,
    Start,
    StoreError,
)

STORES = ["sqlite", "dynamodb", "memory"]


@pytest.fixture(params=STORES)
async def specs(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, str]]:
    """(idempotency spec, durable spec) of one kind of store, fresh for the test."""
    monkeypatch.setenv("WORKER_STATE_DIR", str(tmp_path / "state"))
    if request.param == "dynamodb":
        moto: Moto = request.getfixturevalue("moto")
        for key, value in moto.env.items():
            monkeypatch.setenv(key, value)
        dynamodb = moto.client("dynamodb")
        idem, durable = f"idem-{uuid.uuid4().hex[:8]}", f"durable-{uuid.uuid4().hex[:8]}"
        dynamodb.create_table(
            TableName=idem,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.create_table(
            TableName=durable,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        pair = (f"dynamodb:{idem}", f"dynamodb:{durable}")
    else:
        pair = (f"{request.param}:", f"{request.param}:")
    state.reset()
    clients = aws.reset(8)
    yield pair
    await clients.close()
    state.reset()


def record(key: str, now: float, lock_ms: int | None = None, ttl: int = 60) -> Record:
    return Record(key, INPROGRESS, int(now) + ttl, lock_ms, validation="v1")


# -- idempotency -------------------------------------------------------------------------


async def test_a_claim_holds_its_key_until_completed_then_answers(specs: tuple[str, str]) -> None:
    store: IdempotencyStore = state.idempotency_store(specs[0])
    now = time.time()
    mine = record("k1", now, int((now + 30) * 1000))
    assert await store.claim(mine, now) is None
    held = await store.claim(record("k1", now), now)
    assert held is not None and held.status == INPROGRESS and held.validation == "v1"
    mine.status, mine.data = COMPLETED, '{"ok":1}'
    await store.complete(mine)
    got = await store.get("k1")
    assert got is not None and got.status == COMPLETED and got.data == '{"ok":1}'
    held = await store.claim(record("k1", now), now)
    assert held is not None and held.status == COMPLETED
    await store.delete("k1")
    assert await store.get("k1") is None
    assert await store.claim(record("k1", now), now) is None


async def test_expired_records_and_dead_holders_give_their_key_up(
    specs: tuple[str, str],
) -> None:
    store: IdempotencyStore = state.idempotency_store(specs[0])
    now = time.time()
    assert await store.claim(record("old", now, ttl=-5), now) is None  # expired already
    assert await store.claim(record("old", now), now) is None
    # A holder whose deadline passed (its lock in ms) died or timed out: claimable.
    assert await store.claim(record("dead", now, int((now - 1) * 1000)), now) is None
    assert await store.claim(record("dead", now), now) is None
    assert await store.claim(record("dead", now), now) is not None  # this one has no lock end


async def test_the_sync_api_sees_what_the_async_one_wrote(specs: tuple[str, str]) -> None:
    store: IdempotencyStore = state.idempotency_store(specs[0])
    now = time.time()
    assert await store.claim(record("both", now), now) is None
    held = await asyncio.to_thread(store.claim_sync, record("both", now), now)
    assert held is not None and held.key == "both"
    await asyncio.to_thread(store.delete_sync, "both")
    assert await store.get("both") is None


# -- durable executions ------------------------------------------------------------------


def start(name: str, owner: str, now: float, **kw: object) -> Start:
    fields: dict[str, object] = dict(
        name=name,
        input='{"x":1}',
        version="v1",
        function="app.flow",
        owner=owner,
        lease_until=now + 30,
        now=now,
        pin=True,
    )
    fields.update(kw)
    return Start(**fields)  # type: ignore[arg-type]


async def test_an_execution_is_claimed_once_and_checkpointed_under_its_lease(
    specs: tuple[str, str],
) -> None:
    store: DurableStore = state.durable_store(specs[1])
    now = time.time()
    claim = await store.claim(start("e1", "w1", now))
    assert claim.outcome is Outcome.NEW and claim.execution.status == RUNNING
    assert (await store.claim(start("e1", "w2", now))).outcome is Outcome.BUSY
    step = Op(0, "step", "charge", STARTED, started=now, attempts=1)
    await store.checkpoint("e1", "w1", now + 30, [step], now)
    with pytest.raises(LeaseLost):
        await store.checkpoint("e1", "w2", now + 30, [], now)
    step.status, step.value, step.ended = SUCCEEDED, '{"paid":true}', now + 0.01
    wait = Op(1, "wait", "wait", STARTED, value=str(now + 60), started=now)
    await store.settle("e1", "w1", WAITING, [step, wait], now, wake_at=now + 60)
    claim = await store.claim(start("e1", "w2", now))
    assert claim.outcome is Outcome.NOT_DUE and claim.execution.wake_at == pytest.approx(now + 60)
    execution = await store.get("e1")
    assert execution is not None
    assert [(o.kind, o.name, o.status) for o in execution.ops] == [
        ("step", "charge", SUCCEEDED),
        ("wait", "wait", STARTED),
    ]
    assert execution.ops[0].value == '{"paid":true}'


async def test_a_due_execution_is_taken_over_with_its_history(specs: tuple[str, str]) -> None:
    store: DurableStore = state.durable_store(specs[1])
    now = time.time()
    await store.claim(start("e2", "w1", now))
    await store.checkpoint("e2", "w1", now + 30, [Op(0, "now", "now", SUCCEEDED, "1.5")], now)
    await store.settle("e2", "w1", WAITING, [], now, wake_at=now + 1)
    assert await store.due(now, now, 10) == []
    later = now + 2
    assert await store.due(later, later, 10) == ["e2"]
    # Pinned to the version that started it: other code may not resume it.
    other = await store.claim(start("e2", "w2", later, version="v2"))
    assert other.outcome is Outcome.VERSION
    claim = await store.claim(start("e2", "w2", later, create=False))
    assert claim.outcome is Outcome.TAKEOVER and claim.execution.owner == "w2"
    assert [o.value for o in claim.execution.ops] == ["1.5"]
    assert claim.execution.input == '{"x":1}'
    with pytest.raises(LeaseLost):  # the first worker's lease is gone
        await store.settle("e2", "w1", SUCCEEDED, [], later, result="1")
    await store.settle("e2", "w2", FAILED, [], later, error='{"errorType":"E"}')
    assert (await store.claim(start("e2", "w3", later))).outcome is Outcome.TERMINAL


async def test_a_crashed_holder_is_found_when_its_lease_expires(specs: tuple[str, str]) -> None:
    store: DurableStore = state.durable_store(specs[1])
    now = time.time()
    await store.claim(start("e3", "w1", now, lease_until=now + 1))
    assert await store.due(now, now, 10) == []
    assert await store.due(now + 2, now + 2, 10) == ["e3"]
    await store.release("e3", "w1")  # given up at once (a cut-off run)
    assert await store.due(now, now, 10) == ["e3"]
    claim = await store.claim(start("e3", "w2", now, create=False))
    assert claim.outcome is Outcome.TAKEOVER
    missing = await store.claim(start("nothing", "w2", now, create=False))
    assert missing.outcome is Outcome.MISSING
    assert await store.get("nothing") is None


# -- the embedded file ---------------------------------------------------------------------


@pytest.fixture
def sqlite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WORKER_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("WORKER_STATE_BUSY_TIMEOUT", "0.3")
    state.reset()
    return tmp_path / settings.FILE_NAME


async def test_a_lock_held_by_another_process_never_blocks_the_loop(sqlite_file: Path) -> None:
    store = state.idempotency_store("sqlite:")
    other = sqlite3.connect(sqlite_file, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # as another process mid-write
    now = time.time()
    claim = asyncio.ensure_future(store.claim(record("locked", now), now))
    ticks = 0
    while ticks < 5:  # the loop keeps turning while the claim waits for the lock
        await asyncio.sleep(0.01)
        ticks += 1
    assert not claim.done()
    other.execute("COMMIT")
    assert await claim is None
    other.close()
    state.reset()


async def test_a_lock_held_too_long_fails_naming_the_setting(sqlite_file: Path) -> None:
    store = state.idempotency_store("sqlite:")
    other = sqlite3.connect(sqlite_file, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    now = time.time()
    with pytest.raises(StoreError, match="WORKER_STATE_BUSY_TIMEOUT"):
        await store.claim(record("stuck", now), now)
    other.execute("ROLLBACK")
    other.close()
    state.reset()


def test_the_state_directory_follows_the_mode(tmp_path: Path) -> None:
    serve = settings.Settings.from_config(Config(mode="serve"))
    assert serve.state_dir.endswith(".worker-state")
    lam = settings.Settings.from_config(Config(mode="lambda"))
    assert lam.state_dir == "/tmp"
    chosen = settings.Settings.from_config(Config(state_dir=str(tmp_path)))
    assert settings.sqlite_path("", chosen) == str(tmp_path / settings.FILE_NAME)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORKER_IDEMPOTENCY_STORE": "redis:x"}, "WORKER_IDEMPOTENCY_STORE"),
        ({"WORKER_DURABLE_STORE": "dynamodb:"}, "table name"),
        ({"WORKER_DURABLE_VERSION_POLICY": "maybe"}, "pin or allow"),
        ({"WORKER_DURABLE_LEASE": "0"}, "durable_lease"),
    ],
)
def test_bad_state_settings_fail_at_start(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Config.from_env(env)
