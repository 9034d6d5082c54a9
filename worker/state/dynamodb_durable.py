"""Durable executions in DynamoDB: one item per execution, one item per operation.

The table's key is `pk` (string, the execution's name) and `sk` (string): `execution`
for the execution's item, `op#00000001`… for its operations, so one consistent Query
reads an execution whole. The lease is a condition: every write of a holder is a
transaction whose first part updates the execution's item on the condition that the
holder still owns it. Finding due executions (a crashed holder's, a wait that ended
while no timer of this environment was armed) is a filtered Scan, once per sweep: with
a large table, prefer `WORKER_DURABLE_QUEUE_URL`, which resumes waits without it.
"""

from __future__ import annotations

import contextlib
from typing import Any

from botocore.exceptions import ClientError

from worker import aws
from worker.state.base import (
    RUNNING,
    WAITING,
    Claim,
    DurableStore,
    Execution,
    LeaseLost,
    Op,
    Outcome,
    Start,
    StoreError,
    decide,
)

EXECUTION = "execution"
OP_PREFIX = "op#"
#: DynamoDB's limit on the items of one transaction (one is the execution's).
TRANSACTION_ITEMS = 100
#: Tries of a transaction that met a concurrent write to the same item.
TRANSACTION_ATTEMPTS = 3

_NAMES = {
    "#status": "status",
    "#owner": "owner",
    "#version": "version",
    "#result": "result",
    "#error": "error",
}
_TAKE_CONDITION = (
    "((#status = :running AND lease_until < :now) OR (#status = :waiting AND wake_at <= :now))"
)
_HELD = "#owner = :owner AND #status = :running"


def _names(expressions: str) -> dict[str, str]:
    """The attribute names an expression uses (DynamoDB refuses unused ones)."""
    return {k: v for k, v in _NAMES.items() if k in expressions}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _n(value: float) -> dict[str, str]:
    return {"N": repr(float(value))}


def _s_or_null(value: str | None) -> dict[str, Any]:
    return {"S": value} if value is not None else {"NULL": True}


def _str(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value["S"] if value and "S" in value else None


def _num(item: dict[str, Any], name: str) -> float | None:
    value = item.get(name)
    return float(value["N"]) if value and "N" in value else None


def _execution(item: dict[str, Any] | None) -> Execution | None:
    if not item:
        return None
    return Execution(
        name=item["pk"]["S"],
        status=item["status"]["S"],
        version=item["version"]["S"],
        input=item["input"]["S"],
        function=_str(item, "function") or "",
        owner=_str(item, "owner"),
        lease_until=_num(item, "lease_until") or 0.0,
        wake_at=_num(item, "wake_at"),
        result=_str(item, "result"),
        error=_str(item, "error"),
        created=_num(item, "created") or 0.0,
        updated=_num(item, "updated") or 0.0,
    )


def _op(item: dict[str, Any]) -> Op:
    return Op(
        seq=int(item["seq"]["N"]),
        kind=item["kind"]["S"],
        name=item["name"]["S"],
        status=item["status"]["S"],
        value=_str(item, "value"),
        error=_str(item, "error"),
        started=_num(item, "started") or 0.0,
        ended=_num(item, "ended"),
        attempts=int(_num(item, "attempts") or 0),
        failures=int(_num(item, "failures") or 0),
    )


def _op_item(name: str, op: Op) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": {"S": name},
        "sk": {"S": f"{OP_PREFIX}{op.seq:08d}"},
        "seq": {"N": str(op.seq)},
        "kind": {"S": op.kind},
        "name": {"S": op.name},
        "status": {"S": op.status},
        "started": _n(op.started),
        "attempts": {"N": str(op.attempts)},
        "failures": {"N": str(op.failures)},
    }
    if op.value is not None:
        item["value"] = {"S": op.value}
    if op.error is not None:
        item["error"] = {"S": op.error}
    if op.ended is not None:
        item["ended"] = _n(op.ended)
    return item


class DynamoDurable(DurableStore):
    poll = 0.25  # each look is a read request

    def __init__(self, table: str) -> None:
        self.table = table

    def _key(self, name: str) -> dict[str, Any]:
        return {"pk": {"S": name}, "sk": {"S": EXECUTION}}

    def _error(self, exc: Exception) -> StoreError:
        if isinstance(exc, ClientError) and _code(exc) == "ResourceNotFoundException":
            return StoreError(
                f"durable table {self.table!r} not found: create it with partition key `pk`"
                " and sort key `sk` (both strings)"
            )
        return StoreError(f"durable table {self.table!r}: {exc}")

    async def _client(self) -> Any:
        return await aws.current.get("dynamodb")

    async def claim(self, start: Start) -> Claim:
        client = await self._client()
        for _ in range(5):
            if not start.create:
                held = await self._read(start.name, with_ops=False)
                if held is None:
                    return Claim(Outcome.MISSING, Execution(start.name, "", start.version, ""))
                outcome = decide(held, start.now, start.version, start.pin)
                if outcome is not Outcome.TAKEOVER:
                    return Claim(outcome, held)
                if await self._take(start, held):
                    return Claim(Outcome.TAKEOVER, held)
                continue
            fresh = Execution(
                start.name,
                RUNNING,
                start.version,
                start.input,
                start.function,
                start.owner,
                start.lease_until,
                created=start.now,
                updated=start.now,
            )
            item = {
                **self._key(start.name),
                "status": {"S": RUNNING},
                "version": {"S": start.version},
                "input": {"S": start.input},
                "function": {"S": start.function},
                "owner": {"S": start.owner},
                "lease_until": _n(start.lease_until),
                "created": _n(start.now),
                "updated": _n(start.now),
            }
            try:
                await client.put_item(
                    TableName=self.table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(pk)",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return Claim(Outcome.NEW, fresh)
            except ClientError as exc:
                if _code(exc) != "ConditionalCheckFailedException":
                    raise self._error(exc) from exc
                held = _execution(exc.response.get("Item"))
            if held is None:
                held = await self._read(start.name, with_ops=False)
                if held is None:
                    continue
            outcome = decide(held, start.now, start.version, start.pin)
            if outcome is not Outcome.TAKEOVER:
                return Claim(outcome, held)
            if await self._take(start, held):
                return Claim(Outcome.TAKEOVER, held)
        raise StoreError(f"execution {start.name!r}: too much contention to claim it")

    async def _take(self, start: Start, held: Execution) -> bool:
        """Take a due execution over, on the condition that it is still due: False when
        another worker moved it first."""
        client = await self._client()
        condition = _TAKE_CONDITION + (" AND #version = :version" if start.pin else "")
        values: dict[str, Any] = {
            ":running": {"S": RUNNING},
            ":waiting": {"S": WAITING},
            ":now": _n(start.now),
            ":owner": {"S": start.owner},
            ":lease": _n(start.lease_until),
        }
        if start.pin:
            values[":version"] = {"S": start.version}
        try:
            await client.update_item(
                TableName=self.table,
                Key=self._key(start.name),
                UpdateExpression="SET #status = :running, #owner = :owner,"
                " lease_until = :lease, updated = :now REMOVE wake_at",
                ConditionExpression=condition,
                ExpressionAttributeNames=_names(condition + "#status #owner"),
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise self._error(exc) from exc
            return False
        held.status, held.owner = RUNNING, start.owner
        held.lease_until, held.wake_at = start.lease_until, None
        held.ops = await self._ops(start.name)
        return True

    async def _query(self, name: str) -> list[dict[str, Any]]:
        client = await self._client()
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :name",
            "ExpressionAttributeValues": {":name": {"S": name}},
            "ConsistentRead": True,
        }
        while True:
            try:
                page = await client.query(**kwargs)
            except ClientError as exc:
                raise self._error(exc) from exc
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    async def _ops(self, name: str) -> list[Op]:
        items = await self._query(name)
        return sorted(
            (_op(i) for i in items if i["sk"]["S"].startswith(OP_PREFIX)), key=lambda o: o.seq
        )

    async def _read(self, name: str, with_ops: bool = True) -> Execution | None:
        items = await self._query(name)
        execution = None
        ops = []
        for item in items:
            if item["sk"]["S"] == EXECUTION:
                execution = _execution(item)
            elif item["sk"]["S"].startswith(OP_PREFIX):
                ops.append(_op(item))
        if execution is not None and with_ops:
            execution.ops = sorted(ops, key=lambda o: o.seq)
        return execution

    async def get(self, name: str) -> Execution | None:
        return await self._read(name)

    async def _held_write(
        self, name: str, owner: str, update: str, values: dict[str, Any], ops: list[Op]
    ) -> None:
        """`update` on the execution's item, conditional on holding its lease, with `ops`
        in the same transaction (several, each conditional, past DynamoDB's limit)."""
        client = await self._client()
        values = {**values, ":owner": {"S": owner}, ":running": {"S": RUNNING}}
        names = _names(update + _HELD)
        held = {
            "TableName": self.table,
            "Key": self._key(name),
            "UpdateExpression": update,
            "ConditionExpression": _HELD,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if not ops:
            try:
                await client.update_item(**held)
            except ClientError as exc:
                if _code(exc) == "ConditionalCheckFailedException":
                    raise LeaseLost(
                        f"execution {name!r}: this worker's lease was taken over"
                    ) from exc
                raise self._error(exc) from exc
            return
        per = TRANSACTION_ITEMS - 1
        chunks = [ops[i : i + per] for i in range(0, len(ops), per)]
        for index, chunk in enumerate(chunks):
            # The execution's own update goes with the last chunk: earlier ones only
            # check the lease (a renewal in the same terms).
            first: dict[str, Any]
            if index == len(chunks) - 1:
                first = {"Update": held}
            else:
                first = {
                    "ConditionCheck": {
                        k: held[k] for k in ("TableName", "Key", "ConditionExpression")
                    }
                    | {
                        "ExpressionAttributeNames": _names(_HELD),
                        "ExpressionAttributeValues": {
                            ":owner": {"S": owner},
                            ":running": {"S": RUNNING},
                        },
                    }
                }
            items = [first] + [
                {"Put": {"TableName": self.table, "Item": _op_item(name, op)}} for op in chunk
            ]
            await self._transact(client, name, items)

    async def _transact(self, client: Any, name: str, items: list[dict[str, Any]]) -> None:
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                await client.transact_write_items(TransactItems=items)
                return
            except ClientError as exc:
                if _code(exc) != "TransactionCanceledException":
                    raise self._error(exc) from exc
                codes = [r.get("Code") for r in exc.response.get("CancellationReasons") or []]
                if codes and codes[0] == "ConditionalCheckFailed":
                    raise LeaseLost(
                        f"execution {name!r}: this worker's lease was taken over"
                    ) from exc
                if "TransactionConflict" not in codes or attempt == TRANSACTION_ATTEMPTS - 1:
                    raise self._error(exc) from exc
                # A lease renewal of this worker's own met the transaction: try again.

    async def checkpoint(
        self, name: str, owner: str, lease_until: float, ops: list[Op], now: float
    ) -> None:
        await self._held_write(
            name,
            owner,
            "SET lease_until = :lease, updated = :now",
            {":lease": _n(lease_until), ":now": _n(now)},
            ops,
        )

    async def settle(
        self,
        name: str,
        owner: str,
        status: str,
        ops: list[Op],
        now: float,
        *,
        result: str | None = None,
        error: str | None = None,
        wake_at: float | None = None,
    ) -> None:
        update = (
            "SET #status = :status, #result = :result, #error = :error, lease_until = :zero,"
            " updated = :now"
        )
        values: dict[str, Any] = {
            ":status": {"S": status},
            ":result": _s_or_null(result),
            ":error": _s_or_null(error),
            ":zero": _n(0.0),
            ":now": _n(now),
        }
        if wake_at is not None:
            update += ", wake_at = :wake"
            values[":wake"] = _n(wake_at)
        update += " REMOVE #owner" + ("" if wake_at is not None else ", wake_at")
        await self._held_write(name, owner, update, values, ops)

    async def release(self, name: str, owner: str) -> None:
        # Someone else holding it now is no error: nothing of ours to give up.
        with contextlib.suppress(LeaseLost):
            await self._held_write(name, owner, "SET lease_until = :zero", {":zero": _n(0)}, [])

    async def due(self, now: float, waits_before: float, limit: int) -> list[str]:
        client = await self._client()
        names: list[str] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "sk = :execution AND ((#status = :waiting AND wake_at <= :waits)"
            " OR (#status = :running AND lease_until < :now))",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":execution": {"S": EXECUTION},
                ":waiting": {"S": WAITING},
                ":running": {"S": RUNNING},
                ":now": _n(now),
                ":waits": _n(waits_before),
            },
            "ProjectionExpression": "pk",
        }
        while len(names) < limit:
            try:
                page = await client.scan(**kwargs)
            except ClientError as exc:
                raise self._error(exc) from exc
            names.extend(item["pk"]["S"] for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return names[:limit]
