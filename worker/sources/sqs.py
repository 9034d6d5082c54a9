"""The SQS source: `worker sqs` consumes a queue the way Lambda's event source mapping does.

Pollers long-poll (`WaitTimeSeconds` 20) with the process's pooled aiobotocore client and
ask only for what the process has room for: each batch of up to `--batch-size` messages
needs a free place (a slot, or one of the lane's queued places that keep slots busy
while the next long poll is under way); with no room, nobody polls. How many of the
`--pollers` keep a long poll open follows the queue, as Lambda's event source mapping
scales its pollers: one more after a backlog (a receive that came back full right after
another full one; a single full one may be one `SendMessageBatch` of ten, which one poll
takes whole), one fewer after a receive that came back short (the queue is drained),
never fewer than one. On a drained queue, extra long polls only split each arrival into
smaller receives: more requests (SQS bills per request) and more deletes for the same
messages; so a process whose last receive showed no backlog polls only through the
service's gate (`pollgate`): one long poll for the whole service while the queue is
drained. Messages reach the
handler in Lambda's SQS event shape, so a handler written for an event source mapping
runs unchanged, and its result settles them as Lambda does:

- success: every message of the batch is deleted (`DeleteMessageBatch`);
- `{"batchItemFailures": [{"itemIdentifier": id}, …]}`: all but those are deleted (an
  unknown or empty identifier fails the whole batch, as in Lambda);
- an exception (or a timeout): none is deleted; they come back after their visibility
  timeout (on a FIFO queue at once, in order: their group waits on them).

A batch still running at half its visibility timeout has it extended (a heartbeat), so
a long handler does not see its messages delivered twice. FIFO queues (`.fifo`) get one
batch per receive, kept in order, and after a failed message the rest of its message
group in that batch counts as failed too, so a group never skips ahead. On SIGTERM the
pollers stop, batches received but not started are released at once (visibility 0),
running ones finish and their successes are deleted.

A message that is an offload envelope (`worker.offload`: an event that `serve` or Lambda
mode sent here instead of running it) is a batch of its own: the handler gets the original
event, with its kind, route and request id, as it would have there. Its handler's success
deletes it; an exception, or a partial batch failure of an offloaded SQS event, leaves it
for redelivery (the whole original event runs again: at least once). A receive that brings
more envelopes than the room it was asked for holds the excess: its poller receives again
only once as much room has freed (`held_at_most` bounds what a process holds meanwhile).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from worker.aws import Clients
from worker.errors import LambdaError
from worker.jobs import Job
from worker.offload import Offloaded, unwrap
from worker.sources.pollgate import PollGate
from worker.telemetry.metrics import Metrics

log = logging.getLogger("worker.sqs")

#: SQS's limit on messages per receive and per batch call.
SQS_MAX = 10
#: Pause after a failed receive, doubling up to the cap.
BACKOFF, BACKOFF_CAP = 0.1, 5.0


def lambda_record(message: dict[str, Any], arn: str, region: str) -> dict[str, Any]:
    """One SQS message in the shape of a Lambda SQS event record."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": {
            name: _attribute(value)
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": region,
    }


def _attribute(value: dict[str, Any]) -> dict[str, Any]:
    binary = value.get("BinaryValue")
    out: dict[str, Any] = {
        "stringValue": value.get("StringValue"),
        "binaryValue": base64.b64encode(binary).decode() if binary is not None else None,
        "stringListValues": list(value.get("StringListValues") or []),
        "binaryListValues": [
            base64.b64encode(b).decode() for b in value.get("BinaryListValues") or []
        ],
        "dataType": value.get("DataType", "String"),
    }
    return {k: v for k, v in out.items() if v is not None}


def failed_ids(result: Any, batch: list[dict[str, Any]], fifo: bool) -> set[str]:
    """The message ids of a batch that must not be deleted, from the handler's result."""
    ids = [m["MessageId"] for m in batch]
    if not (isinstance(result, dict) and "batchItemFailures" in result):
        return set()
    items = result.get("batchItemFailures")
    if not isinstance(items, list):
        return set(ids)
    failed: set[str] = set()
    for item in items:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(ident, str) or ident not in ids:
            return set(ids)  # Lambda: an invalid identifier fails the whole batch
        failed.add(ident)
    if fifo and failed:
        # A group must not skip ahead: after its first failure, the rest of it fails too.
        broken: set[str] = set()
        for message in batch:
            group = (message.get("Attributes") or {}).get("MessageGroupId", "")
            if group in broken:
                failed.add(message["MessageId"])
            elif message["MessageId"] in failed:
                broken.add(group)
    return failed


class _Batch:
    __slots__ = ("heartbeat", "job", "messages", "offloaded")

    def __init__(self, messages: list[dict[str, Any]], offloaded: Offloaded | None = None) -> None:
        self.messages = messages
        self.offloaded = offloaded  # an offload envelope's contents (a batch of one)
        self.job: Job | None = None
        self.heartbeat: asyncio.Task[None] | None = None


class SqsSource:
    """Polls one queue for one worker process; see the module's text."""

    def __init__(
        self,
        *,
        queue_url: str,
        submit: Callable[[Job], bool],
        room: int,
        clients: Clients,
        metrics: Metrics,
        batch_size: int = 10,
        pollers: int = 2,
        wait_seconds: int = 20,
        visibility_timeout: int = 0,
        slots: int = 0,
        gate: PollGate | None = None,
    ) -> None:
        self.queue_url = queue_url
        self.submit = submit
        self.clients = clients
        self.metrics = metrics
        self.batch_size = batch_size
        self.pollers = pollers
        self.wait_seconds = wait_seconds
        self.visibility = visibility_timeout
        self.fifo = queue_url.endswith(".fifo")
        self.room = asyncio.Semaphore(max(1, room))  # batches this process can take now
        self.polls = 1  # pollers with a long poll open now (see the module's text)
        self.slots = slots  # the process's slots: with all busy, it polls without the gate
        self.gate = gate  # the service's one quiet long poll (see `pollgate`)
        self.quiet = True  # the last receive showed no backlog: poll through the gate
        self._full = False  # the last receive came back full
        self._turns = asyncio.Condition()  # dormant pollers wait here for `polls` to grow
        self.stopping = False
        self.batches: dict[str, _Batch] = {}  # request id -> batch
        self.settling: set[asyncio.Task[None]] = set()
        self._deletes: list[dict[str, Any]] = []  # settled, waiting for a delete call
        self._deleting = 0  # delete calls under way
        self.arn = ""
        self.region = ""
        self.client: Any = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Look the queue up (its ARN, its visibility timeout), then start polling."""
        self.client = await self.clients.get("sqs")
        self.region = self.client.meta.region_name
        attrs = await self.client.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn", "VisibilityTimeout"]
        )
        self.arn = attrs["Attributes"]["QueueArn"]
        if not self.visibility:
            self.visibility = int(attrs["Attributes"].get("VisibilityTimeout", "30"))
        log.info(
            "polling",
            extra={
                "fields": {
                    "queue": self.queue_url,
                    "pollers": self.pollers,
                    "batch_size": self.batch_size,
                    "visibility_timeout": self.visibility,
                    "fifo": self.fifo,
                }
            },
        )
        self.metrics.gauge("worker_sqs_polls", (), lambda: float(self.polls))
        self._tasks = [asyncio.ensure_future(self._poll(i)) for i in range(self.pollers)]

    # -- receiving -----------------------------------------------------------------------

    async def _poll(self, index: int) -> None:
        failures = 0
        per_receive = 1 if self.fifo else max(1, SQS_MAX // self.batch_size)
        while not self.stopping:
            if index >= self.polls:
                async with self._turns:
                    await self._turns.wait_for(lambda: index < self.polls)
            await self.room.acquire()
            taken = 1
            while taken < per_receive and not self.room.locked():
                await self.room.acquire()  # free room: no wait
                taken += 1
            try:
                asked = min(SQS_MAX, taken * self.batch_size)
                messages = await self._gated_receive(asked)
            except asyncio.CancelledError:
                self._give_back(taken)
                raise
            except Exception as exc:
                self._give_back(taken)
                failures += 1
                delay = min(BACKOFF_CAP, BACKOFF * 2 ** (failures - 1))
                log.warning("receiving from SQS failed (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            full = len(messages) == asked
            # A backlog is a full receive right after another one: a single full one may
            # be one SendMessageBatch of ten, taken whole by this poll, which more polls
            # would only split.
            backlog, self._full = full and self._full, full
            self.quiet = not backlog
            await self._scale(backlog=backlog, short=not full)
            batches = self._split(messages)
            self._give_back(taken - len(batches))
            for batch in batches:
                self._start(batch)
            # Envelopes split a receive into more batches than the room it took: this
            # poller takes the excess as room frees, before it receives again.
            for _ in range(len(batches) - taken):
                await self.room.acquire()

    async def _gated_receive(self, count: int) -> list[dict[str, Any]]:
        gate = self.gate
        if gate is None or not self.quiet or len(self.batches) >= self.slots:
            return await self._receive(count)
        try:
            await gate.acquire()
        except OSError as exc:  # its file cannot be opened: poll as if each process were alone
            log.warning("the service's SQS poll gate is unusable (%s); polling without it", exc)
            self.gate = None
            return await self._receive(count)
        try:
            return await self._receive(count)
        finally:
            gate.release()

    async def _receive(self, count: int) -> list[dict[str, Any]]:
        self.metrics.inc("worker_sqs_receives_total")
        response = await self.client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=self.wait_seconds,
            VisibilityTimeout=self.visibility,
            AttributeNames=["All"],  # older SQS APIs (and moto) know only this name
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        self.metrics.inc("worker_sqs_messages_total", (("outcome", "received"),), len(messages))
        usable = [m for m in messages if m.get("MessageId") and m.get("ReceiptHandle")]
        if len(usable) < len(messages):
            # Nothing can settle a message without these (SQS always sends both): left
            # alone, it comes back after its visibility timeout. Passing it on would end
            # this poller, and with one poll open, the process's consuming.
            skipped = len(messages) - len(usable)
            log.error("skipped %d SQS messages without a MessageId or ReceiptHandle", skipped)
            self.metrics.inc("worker_sqs_messages_total", (("outcome", "unusable"),), skipped)
        return usable

    async def _scale(self, backlog: bool, short: bool) -> None:
        if backlog and self.polls < self.pollers:
            self.polls += 1
            async with self._turns:
                self._turns.notify_all()
        elif short and self.polls > 1:
            self.polls -= 1

    def _split(self, messages: list[dict[str, Any]]) -> list[_Batch]:
        if not messages:
            return []
        plain: list[dict[str, Any]] = []
        batches: list[_Batch] = []
        for message in messages:
            offloaded = unwrap(message.get("Body", ""))
            if offloaded is None:
                plain.append(message)
            else:
                batches.append(_Batch([message], offloaded))
        if not plain:
            return batches
        if self.fifo:  # one receive, one batch, in order
            return [_Batch(plain), *batches]
        size = self.batch_size
        return [_Batch(plain[i : i + size]) for i in range(0, len(plain), size)] + batches

    def _give_back(self, count: int) -> None:
        for _ in range(max(0, count)):
            self.room.release()

    # -- running -------------------------------------------------------------------------

    def _start(self, batch: _Batch) -> None:
        messages = batch.messages
        offloaded = batch.offloaded
        if offloaded is not None:
            job = Job(
                offloaded.event,
                lambda result, error: self._finished(batch, result, error),
                offloaded.request_id,
                size=len(messages[0].get("Body", "")),
                kind=offloaded.kind,
                route=offloaded.route,
                trace_id=offloaded.trace_id,
            )
        else:
            event = {"Records": [lambda_record(m, self.arn, self.region) for m in messages]}
            job = Job(
                event,
                lambda result, error: self._finished(batch, result, error),
                size=sum(len(m.get("Body", "")) for m in messages),
                kind="sqs",
                route=self.arn,
            )
        batch.job = job
        self.batches[job.request_id] = batch
        batch.heartbeat = asyncio.ensure_future(self._heartbeat(batch))
        if not self.submit(job):  # cannot happen while room <= slots + queue; never drop
            self._finished(batch, None, LambdaError("Runtime.Busy", "no room for the batch"))

    async def _heartbeat(self, batch: _Batch) -> None:
        """Extend the batch's visibility at every half of it while the handler runs."""
        while True:
            await asyncio.sleep(self.visibility / 2)
            try:
                await self._change_visibility(batch.messages, self.visibility)
                self.metrics.inc("worker_sqs_heartbeats_total")
            except Exception as exc:  # the next beat tries again
                log.warning("extending visibility failed: %s", exc)

    def _finished(self, batch: _Batch, result: Any, error: LambdaError | None) -> str | None:
        """The handler's outcome (called on the loop): settle the messages, free the room."""
        if batch.heartbeat is not None:
            batch.heartbeat.cancel()
        if batch.job is not None:
            self.batches.pop(batch.job.request_id, None)
        if error is not None or (batch.offloaded is not None and _reports_failures(result)):
            failed = {m["MessageId"] for m in batch.messages}
        else:
            failed = failed_ids(result, batch.messages, self.fifo)
        keep = [m for m in batch.messages if m["MessageId"] not in failed]
        self._delete_soon(keep)
        if failed and self.fifo:
            # The whole group waits on its failed messages: retry them now, in order,
            # rather than after a visibility timeout that holds the group still.
            retry = [m for m in batch.messages if m["MessageId"] in failed]
            self._settle(self._change_visibility(retry, 0))
        if failed:
            self.metrics.inc("worker_sqs_messages_total", (("outcome", "failed"),), len(failed))
        self.room.release()
        return error.error_type if error is not None else None

    def _settle(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        self.settling.add(task)
        task.add_done_callback(self._settled)
        return task

    def _settled(self, task: asyncio.Task[None]) -> None:
        self.settling.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Unsettled messages come back after their visibility timeout: never lost.
            log.error("settling messages failed: %s", task.exception())

    def _delete_soon(self, messages: list[dict[str, Any]]) -> None:
        """Delete settled messages, gathering the short batches of concurrent ones.

        Full calls of ten leave at once; a remainder leaves at once too when no delete is
        under way, else with the next one to finish (one round trip at most), joined by
        whatever settles meanwhile: small batches share calls instead of each paying one."""
        self._deletes.extend(messages)
        while len(self._deletes) >= SQS_MAX:
            self._send_deletes(self._deletes[:SQS_MAX])
            del self._deletes[:SQS_MAX]
        if not self._deleting:
            self._send_gathered()

    def _send_deletes(self, chunk: list[dict[str, Any]]) -> None:
        # Counted from now, not from when the task first runs: batches settling in this
        # same turn of the loop must see the call as under way and join the next one.
        self._deleting += 1
        self._settle(self._delete_batch(chunk)).add_done_callback(self._deleted)

    def _deleted(self, task: asyncio.Task[None]) -> None:
        self._deleting -= 1
        # Not after a cancelled call (the loop is closing): what is left comes back after
        # its visibility timeout, as any undeleted message does.
        if not task.cancelled():
            self._send_gathered()  # what gathered while it was under way

    def _send_gathered(self) -> None:
        if self._deletes:
            chunk, self._deletes = self._deletes, []
            self._send_deletes(chunk)

    async def _delete_batch(self, chunk: list[dict[str, Any]]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)]
        self.metrics.inc("worker_sqs_deletes_total")
        try:
            response = await self.client.delete_message_batch(
                QueueUrl=self.queue_url, Entries=entries
            )
        except Exception as exc:
            # Not deleted: SQS delivers them again (at least once, never lost).
            log.error("deleting %d messages failed: %s", len(chunk), exc)
            return
        failed = response.get("Failed") or []
        for entry in failed:
            log.error("deleting a message failed: %s", entry.get("Message"))
        self.metrics.inc(
            "worker_sqs_messages_total", (("outcome", "deleted"),), len(chunk) - len(failed)
        )

    async def _change_visibility(self, messages: list[dict[str, Any]], seconds: int) -> None:
        for chunk in _chunks(messages):
            await self.client.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {
                        "Id": str(i),
                        "ReceiptHandle": m["ReceiptHandle"],
                        "VisibilityTimeout": seconds,
                    }
                    for i, m in enumerate(chunk)
                ],
            )

    # -- stopping ------------------------------------------------------------------------

    async def stop(self, unstarted: list[Job]) -> None:
        """Stop polling; release the batches that never started (visibility 0)."""
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        if self.gate is not None:
            self.gate.close()
        released = 0
        for job in unstarted:
            batch = self.batches.pop(job.request_id, None)
            if batch is None:
                continue
            if batch.heartbeat is not None:
                batch.heartbeat.cancel()
            try:
                await self._change_visibility(batch.messages, 0)
                released += len(batch.messages)
            except Exception as exc:
                log.warning("releasing unstarted messages failed: %s", exc)
        if released:
            self.metrics.inc("worker_sqs_messages_total", (("outcome", "released"),), released)
            log.info("released unstarted messages", extra={"fields": {"messages": released}})

    async def settled(self, timeout: float = 10.0) -> None:
        """Wait for the deletions still under way (a finishing call may start another)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self.settling and loop.time() < end:
            await asyncio.wait(list(self.settling), timeout=end - loop.time())


def held_at_most(room: int, pollers: int) -> int:
    """The most batches a process holds at once: its room, and the excess of one receive
    of envelopes per poller (see the module's text)."""
    return room + pollers * (SQS_MAX - 1)


def _reports_failures(result: Any) -> bool:
    """Whether an offloaded event's result reports failed items (an SQS batch's partial
    failure): its envelope is retried whole."""
    return isinstance(result, dict) and bool(result.get("batchItemFailures"))


def _chunks(messages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [messages[i : i + SQS_MAX] for i in range(0, len(messages), SQS_MAX)]
