"""The DynamoDB group commit: outcomes share BatchWriteItem calls, each acknowledged only
when DynamoDB took it; unprocessed items retried; errors reach exactly their callers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from worker.state.dynamodb_writes import MAX_BATCH, Unprocessed, WriteBatcher


def put(key: str) -> dict[str, Any]:
    return {"PutRequest": {"Item": {"id": {"S": key}, "status": {"S": "COMPLETED"}}}}


def key_of(request: dict[str, Any]) -> str:
    return str(request["PutRequest"]["Item"]["id"]["S"])


class Table:
    """What the batcher sends, held until the test lets each call finish."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.singles: list[str] = []
        self.stored: list[str] = []
        self.gate = asyncio.Event()
        self.refuse: dict[str, int] = {}  # key -> times it comes back unprocessed
        self.fail_next = False

    async def send(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.batches.append([key_of(r) for r in requests])
        await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("the table went away")
        left = []
        for request in requests:
            key = key_of(request)
            if self.refuse.get(key, 0) > 0:
                self.refuse[key] -= 1
                left.append(put(key))  # a copy, as DynamoDB's answer is
            else:
                self.stored.append(key)
        return left

    async def single(self, request: dict[str, Any]) -> None:
        self.singles.append(key_of(request))
        await self.gate.wait()
        self.stored.append(key_of(request))


async def test_writes_beyond_the_flights_share_batches_and_all_land() -> None:
    table = Table()
    batcher = WriteBatcher(table.send, table.single, batch=MAX_BATCH, flights=1)
    writes = [asyncio.create_task(batcher.write(f"k{i}", put(f"k{i}"))) for i in range(60)]
    while not table.singles:  # the first write flies alone; the rest queue behind it
        await asyncio.sleep(0)
    assert not any(w.done() for w in writes)
    table.gate.set()
    await asyncio.gather(*writes)
    assert table.singles == ["k0"]
    assert [len(b) for b in table.batches] == [25, 25, 9]
    assert sorted(table.stored) == sorted(f"k{i}" for i in range(60))


async def test_a_light_load_sends_each_write_alone() -> None:
    table = Table()
    table.gate.set()
    batcher = WriteBatcher(table.send, table.single, batch=MAX_BATCH, flights=2)
    for i in range(3):
        await batcher.write(f"k{i}", put(f"k{i}"))
    assert table.singles == ["k0", "k1", "k2"]
    assert table.batches == []


async def test_one_key_never_appears_twice_in_a_batch() -> None:
    table = Table()
    batcher = WriteBatcher(table.send, table.single, batch=MAX_BATCH, flights=1)
    first = asyncio.create_task(batcher.write("lead", put("lead")))
    while not table.singles:
        await asyncio.sleep(0)
    rest = [asyncio.create_task(batcher.write(k, put(k))) for k in ("a", "b", "a", "c", "a")]
    await asyncio.sleep(0)
    table.gate.set()
    await asyncio.gather(first, *rest)
    assert all(len(b) == len(set(b)) for b in table.batches), table.batches
    assert sorted(table.stored) == ["a", "a", "a", "b", "c", "lead"]


async def test_unprocessed_items_are_sent_again_until_taken() -> None:
    table = Table()
    table.gate.set()
    table.refuse = {"k1": 2}
    batcher = WriteBatcher(table.send, table.single, batch=MAX_BATCH, flights=1)
    lead = asyncio.create_task(batcher.write("lead", put("lead")))
    writes = [asyncio.create_task(batcher.write(f"k{i}", put(f"k{i}"))) for i in range(3)]
    await asyncio.gather(lead, *writes)
    assert table.batches[0] == ["k0", "k1", "k2"]
    assert table.batches[1:] == [["k1"], ["k1"]]
    assert sorted(table.stored) == ["k0", "k1", "k2", "lead"]


async def test_writes_never_taken_fail_their_callers_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("worker.state.dynamodb_writes.BACKOFF", 0.0)
    table = Table()
    table.gate.set()
    table.refuse = {"k1": 1000}
    batcher = WriteBatcher(table.send, table.single, batch=MAX_BATCH, flights=1)
    lead = asyncio.create_task(batcher.write("lead", put("lead")))
    writes = [asyncio.create_task(batcher.write(f"k{i}", put(f"k{i}"))) for i in range(3)]
    results = await asyncio.gather(lead, *writes, return_exceptions=True)
    assert results[0] is None and results[1] is None and results[3] is None
    assert isinstance(results[2], Unprocessed)
    assert "k1" not in table.stored


async def test_a_failed_call_fails_its_batch_and_the_next_writes_go_through() -> None:
    table = Table()
    batcher = WriteBatcher(table.send, table.single, batch=MAX_BATCH, flights=1)
    lead = asyncio.create_task(batcher.write("lead", put("lead")))
    while not table.singles:
        await asyncio.sleep(0)
    doomed = [asyncio.create_task(batcher.write(f"d{i}", put(f"d{i}"))) for i in range(4)]
    await asyncio.sleep(0)
    table.fail_next = True
    table.gate.set()
    results = await asyncio.gather(lead, *doomed, return_exceptions=True)
    assert results[0] is None
    assert all(isinstance(r, RuntimeError) for r in results[1:])
    await batcher.write("after", put("after"))
    assert table.stored == ["lead", "after"]


async def test_a_cancelled_caller_does_not_unhook_its_batch() -> None:
    table = Table()
    batcher = WriteBatcher(table.send, table.single, batch=MAX_BATCH, flights=1)
    lead = asyncio.create_task(batcher.write("lead", put("lead")))
    while not table.singles:
        await asyncio.sleep(0)
    others = [asyncio.create_task(batcher.write(f"k{i}", put(f"k{i}"))) for i in range(3)]
    await asyncio.sleep(0)
    others[0].cancel()
    table.gate.set()
    await asyncio.gather(lead, *others[1:])
    while len(table.stored) < 4:
        await asyncio.sleep(0)
    assert sorted(table.stored) == ["k0", "k1", "k2", "lead"]


def test_bounds_are_checked() -> None:
    async def send(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return []

    async def single(request: dict[str, Any]) -> None:
        return None

    with pytest.raises(ValueError, match="1 to 25"):
        WriteBatcher(send, single, batch=26, flights=1)
    with pytest.raises(ValueError, match="flights"):
        WriteBatcher(send, single, batch=1, flights=0)
