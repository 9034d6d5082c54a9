"""Idempotency records in DynamoDB, in Powertools' layout, so records carry over both ways.

The table has a string partition key `id`; items hold `expiration` (epoch s, the TTL
attribute), `in_progress_expiration` (epoch ms), `status` (INPROGRESS / COMPLETED),
`data` (the result as JSON) and `validation` (the payload hash), written with
Powertools' conditions: a claim succeeds when the key is absent, expired, or in
progress past its holder's deadline. Async callers use the process's pooled aiobotocore
client, threads its boto3 client (`worker.aws`). An async call's outcome (the completed
record, or the delete after a failure) is written through the process's group commit
(`worker.state.dynamodb_writes`): under load, many calls' outcomes share one
BatchWriteItem request. The claim always goes alone: it is a conditional write.
"""

from __future__ import annotations

import asyncio
from typing import Any

from botocore.exceptions import ClientError

from worker import aws
from worker.state.base import COMPLETED, INPROGRESS, IdempotencyStore, Record, StoreError
from worker.state.dynamodb_writes import WriteBatcher

_CONDITION = (
    "attribute_not_exists(#id) OR #expiry < :now OR "
    "(#status = :inprogress AND attribute_exists(#in_progress_expiry) "
    "AND #in_progress_expiry < :now_in_millis)"
)
_NAMES = {
    "#id": "id",
    "#expiry": "expiration",
    "#in_progress_expiry": "in_progress_expiration",
    "#status": "status",
}


def _record(item: dict[str, Any] | None) -> Record | None:
    if not item:
        return None
    in_progress = item.get("in_progress_expiration")
    return Record(
        key=item["id"]["S"],
        status=item["status"]["S"],
        expiration=int(item["expiration"]["N"]),
        in_progress_expiration=int(in_progress["N"]) if in_progress else None,
        data=item["data"]["S"] if "data" in item else None,
        validation=item["validation"]["S"] if "validation" in item else None,
    )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class DynamoIdempotency(IdempotencyStore):
    poll_max = 0.25  # each look is a read request

    def __init__(self, table: str, *, write_batch: int = 1, write_flights: int = 1) -> None:
        self.table = table
        self.write_batch = write_batch
        self.write_flights = write_flights
        self._writes: tuple[asyncio.AbstractEventLoop, WriteBatcher] | None = None

    def _error(self, exc: Exception) -> StoreError:
        if isinstance(exc, ClientError) and _code(exc) == "ResourceNotFoundException":
            return StoreError(
                f"idempotency table {self.table!r} not found: create it with partition key"
                " `id` (string), TTL on `expiration`"
            )
        return StoreError(f"idempotency table {self.table!r}: {exc}")

    def _put(self, record: Record, now: float) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": {"S": record.key},
            "expiration": {"N": str(record.expiration)},
            "status": {"S": record.status},
        }
        if record.in_progress_expiration is not None:
            item["in_progress_expiration"] = {"N": str(record.in_progress_expiration)}
        if record.validation:
            item["validation"] = {"S": record.validation}
        return {
            "TableName": self.table,
            "Item": item,
            "ConditionExpression": _CONDITION,
            "ExpressionAttributeNames": _NAMES,
            "ExpressionAttributeValues": {
                ":now": {"N": str(int(now))},
                ":now_in_millis": {"N": str(int(now * 1000))},
                ":inprogress": {"S": INPROGRESS},
            },
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def _get(self, key: str) -> dict[str, Any]:
        return {"TableName": self.table, "Key": {"id": {"S": key}}, "ConsistentRead": True}

    def _delete(self, key: str) -> dict[str, Any]:
        return {"TableName": self.table, "Key": {"id": {"S": key}}}

    @staticmethod
    def _completed_item(record: Record) -> dict[str, Any]:
        """The completed record whole, as Powertools' update leaves its fields: what every
        completion writes, alone or in a batch, from the loop or a thread."""
        item: dict[str, Any] = {
            "id": {"S": record.key},
            "expiration": {"N": str(record.expiration)},
            "status": {"S": COMPLETED},
            "data": {"S": record.data if record.data is not None else "null"},
        }
        if record.validation is not None:
            item["validation"] = {"S": record.validation}
        return item

    # -- group commit of outcomes ----------------------------------------------------------

    def _batcher(self) -> WriteBatcher:
        loop = asyncio.get_running_loop()
        held = self._writes
        if held is None or held[0] is not loop:
            batcher = WriteBatcher(
                self._send, self._send_one, batch=self.write_batch, flights=self.write_flights
            )
            held = self._writes = (loop, batcher)
        return held[1]

    async def _send(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        client = await aws.current.get("dynamodb")
        try:
            response = await client.batch_write_item(RequestItems={self.table: requests})
        except ClientError as exc:
            raise self._error(exc) from exc
        left: list[dict[str, Any]] = response.get("UnprocessedItems", {}).get(self.table, [])
        return left

    async def _send_one(self, request: dict[str, Any]) -> None:
        client = await aws.current.get("dynamodb")
        try:
            if "PutRequest" in request:
                await client.put_item(TableName=self.table, **request["PutRequest"])
            else:
                await client.delete_item(TableName=self.table, **request["DeleteRequest"])
        except ClientError as exc:
            raise self._error(exc) from exc

    # -- async: the pooled aiobotocore client ----------------------------------------------

    async def claim(self, record: Record, now: float) -> Record | None:
        client = await aws.current.get("dynamodb")
        for _ in range(3):
            try:
                await client.put_item(**self._put(record, now))
                return None
            except ClientError as exc:
                if _code(exc) != "ConditionalCheckFailedException":
                    raise self._error(exc) from exc
                held = _record(exc.response.get("Item"))
            if held is None:
                held = await self.get(record.key)
            if held is not None:
                return held
        return await self.get(record.key)

    async def get(self, key: str) -> Record | None:
        client = await aws.current.get("dynamodb")
        try:
            response = await client.get_item(**self._get(key))
        except ClientError as exc:
            raise self._error(exc) from exc
        return _record(response.get("Item"))

    async def complete(self, record: Record) -> None:
        item = self._completed_item(record)
        await self._batcher().write(record.key, {"PutRequest": {"Item": item}})

    async def delete(self, key: str) -> None:
        await self._batcher().write(key, {"DeleteRequest": {"Key": {"id": {"S": key}}}})

    # -- sync: the process's boto3 client, from a thread -----------------------------------

    def claim_sync(self, record: Record, now: float) -> Record | None:
        client = aws.current.get_sync("dynamodb")
        for _ in range(3):
            try:
                client.put_item(**self._put(record, now))
                return None
            except ClientError as exc:
                if _code(exc) != "ConditionalCheckFailedException":
                    raise self._error(exc) from exc
                held = _record(exc.response.get("Item"))
            if held is None:
                held = self.get_sync(record.key)
            if held is not None:
                return held
        return self.get_sync(record.key)

    def get_sync(self, key: str) -> Record | None:
        try:
            response = aws.current.get_sync("dynamodb").get_item(**self._get(key))
        except ClientError as exc:
            raise self._error(exc) from exc
        return _record(response.get("Item"))

    def complete_sync(self, record: Record) -> None:
        try:
            item = self._completed_item(record)
            aws.current.get_sync("dynamodb").put_item(TableName=self.table, Item=item)
        except ClientError as exc:
            raise self._error(exc) from exc

    def delete_sync(self, key: str) -> None:
        try:
            aws.current.get_sync("dynamodb").delete_item(**self._delete(key))
        except ClientError as exc:
            raise self._error(exc) from exc
