"""Group commit for DynamoDB: one process's unconditional writes share BatchWriteItem calls.

An idempotent call writes twice: its claim (a conditional put, which must go alone:
BatchWriteItem takes no conditions) and its outcome (the completed record, or a delete
when it failed), which is unconditional, as in Powertools. Outcomes are what this module
batches. Batching is natural, with no timer: a write goes out at once while fewer than
`flights` writes are in the air; past that, writes queue and the next flight takes up to
`batch` of them (BatchWriteItem's own limit is 25). A light load therefore sends each
write alone, as before, and a heavy one sends a request per batch instead of per call.
Each caller's write is acknowledged only when its batch is: nothing is reported done
that DynamoDB has not taken. Items DynamoDB leaves unprocessed (throttling) are sent
again with a growing pause, a bounded number of times, then fail their callers.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

from worker.state.base import StoreError

#: BatchWriteItem's limit on requests per call.
MAX_BATCH = 25
#: Unprocessed items are sent again this many times, pausing BACKOFF·2ⁿ (with jitter).
RETRIES = 6
BACKOFF = 0.025

Send = Callable[[list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]


class Unprocessed(StoreError):
    """DynamoDB left writes unprocessed after every retry (the table is throttled)."""


class _Write:
    __slots__ = ("future", "key", "request")

    def __init__(self, key: str, request: dict[str, Any], future: asyncio.Future[None]) -> None:
        self.key = key
        self.request = (
            request  # a BatchWriteItem request: {"PutRequest": …} or {"DeleteRequest": …}
        )
        self.future = future


class WriteBatcher:
    """The outcomes one process writes to one table, grouped (see the module's text).

    `send(requests)` makes one BatchWriteItem call and returns the requests DynamoDB
    left unprocessed; `single(request)` writes one alone (for a batch of one, the call
    the store makes without batching).
    """

    def __init__(
        self,
        send: Send,
        single: Callable[[dict[str, Any]], Awaitable[None]],
        *,
        batch: int,
        flights: int,
    ) -> None:
        if not 1 <= batch <= MAX_BATCH:
            raise ValueError(f"a write batch holds 1 to {MAX_BATCH} items, got {batch}")
        if flights < 1:
            raise ValueError(f"write flights must be >= 1, got {flights}")
        self.send = send
        self.single = single
        self.batch = batch
        self.flights = flights
        self._queued: list[_Write] = []
        self._flying = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def write(self, key: str, request: dict[str, Any]) -> None:
        """Write `request` for `key`; returns when DynamoDB has taken it, raises if not."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queued.append(_Write(key, request, future))
        if self._flying < self.flights:
            self._launch()
        # Shielded: a caller cancelled while its write is in the air does not unhook the
        # batch's other callers; the write still lands, as it would alone.
        await asyncio.shield(future)

    def _launch(self) -> None:
        taken: list[_Write] = []
        keys: set[str] = set()
        kept: list[_Write] = []
        for write in self._queued:
            # BatchWriteItem refuses two requests for one key: the second waits a flight.
            if len(taken) < self.batch and write.key not in keys:
                taken.append(write)
                keys.add(write.key)
            else:
                kept.append(write)
        self._queued = kept
        if not taken:
            return
        self._flying += 1
        task = asyncio.get_running_loop().create_task(self._fly(taken))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fly(self, writes: list[_Write]) -> None:
        try:
            if len(writes) == 1:
                await self.single(writes[0].request)
                _settle(writes, None)
            else:
                await self._batch(writes)
        except Exception as exc:
            _settle(writes, exc)
        finally:
            self._flying -= 1
            if self._queued:
                self._launch()

    async def _batch(self, writes: list[_Write]) -> None:
        pending = writes
        for attempt in range(RETRIES + 1):
            left = await self.send([w.request for w in pending])
            if not left:
                _settle(pending, None)
                return
            keys = {_key(request) for request in left}
            unprocessed = [w for w in pending if _key(w.request) in keys]
            _settle([w for w in pending if w not in unprocessed], None)
            pending = unprocessed
            if attempt < RETRIES:
                await asyncio.sleep(BACKOFF * 2**attempt * (0.5 + random.random()))
        _settle(pending, Unprocessed(f"{len(pending)} writes unprocessed after {RETRIES} retries"))


def _key(request: dict[str, Any]) -> str:
    if "PutRequest" in request:
        return str(request["PutRequest"]["Item"]["id"]["S"])
    return str(request["DeleteRequest"]["Key"]["id"]["S"])


def _settle(writes: list[_Write], error: Exception | None) -> None:
    for write in writes:
        if write.future.done():
            continue
        if error is None:
            write.future.set_result(None)
        else:
            write.future.set_exception(error)
