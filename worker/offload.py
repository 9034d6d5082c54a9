"""The offload lane: asynchronous marathon work sent to an SQS queue that `worker sqs` consumes.

In `serve` (an Invoke with `X-Amz-Invocation-Type: Event`) and in Lambda mode (an event of
an asynchronous kind: SQS, S3, SNS, EventBridge records; the Runtime API does not say how
a function was invoked), an event whose route is named `offload` in `WORKER_ROUTES`, or
learned a marathon (and not pinned to `marathon` there), is sent to
`WORKER_OFFLOAD_QUEUE_URL` rather than occupying a slot for minutes. The caller is
answered (202; in Lambda mode a null result) only once `SendMessage` succeeded: nothing
accepted is lost. An event that cannot go (the queue unreachable, an envelope past SQS's
message limit, too many sends under way, draining) runs here instead, in the marathon
lane, with a log line and `worker_offload_total{outcome="local",reason=…}`. Synchronous
calls never come here.

The message body is an envelope (`envelope`) that carries the original event unchanged
with its kind, route and ids; `worker sqs` recognises it (`unwrap`) and calls the same
handler with the original event, so the handler sees what it would have seen here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson

from worker.aws import Clients
from worker.errors import LambdaError
from worker.jobs import Job
from worker.profiles import MARATHON, OFFLOAD, Profiles
from worker.telemetry.metrics import Metrics

log = logging.getLogger("worker.offload")

#: SQS's limit on a message's size.
MAX_MESSAGE_BYTES = 256 * 1024
#: The envelope's first bytes: `worker sqs` tells an envelope from any other message by them.
MARK = b'{"worker_offload":1'
VERSION = 1
#: Lambda mode's asynchronous kinds. Streams (DynamoDB, Kinesis) are left out: their order
#: per shard would not survive a queue.
ASYNC_KINDS = frozenset(("sqs", "s3", "sns", "eventbridge", "schedule"))
#: Sends under way per process, at most: each holds its event in memory until SQS answers.
MAX_PENDING = 1024
#: A send that has no answer by then counts as failed: the event runs here (SQS may still
#: have taken it: at least once, never lost).
SEND_TIMEOUT = 10.0
#: After a failed send, events run here without trying the queue for this long, rather
#: than each waiting out a failure of its own.
RETRY_AFTER = 5.0

#: Called on the loop once a send ended: (the job, whether SQS took it).
Sent = Callable[[Job, bool], None]


class Offloaded(NamedTuple):
    """An envelope's contents: what `worker sqs` runs."""

    event: Any
    kind: str
    route: str
    request_id: str | None
    trace_id: str | None


def envelope(job: Job) -> bytes:
    """The message body for `job`: its event's own bytes where the source kept them."""
    head = orjson.dumps(
        {
            "worker_offload": VERSION,
            "kind": job.kind,
            "route": job.route,
            "request_id": job.request_id,
            "trace_id": job.trace_id,
            "sent_at": time.time(),
        }
    )
    raw = job.raw if job.raw is not None else orjson.dumps(job.event)
    return head[:-1] + b',"event":' + raw + b"}"


def unwrap(body: str) -> Offloaded | None:
    """The original event of an offload envelope; None for any other message."""
    if not body.startswith('{"worker_offload":'):
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("worker_offload") != VERSION or "event" not in data:
        return None
    return Offloaded(
        data["event"],
        str(data.get("kind") or "direct"),
        str(data.get("route") or ""),
        data.get("request_id"),
        data.get("trace_id"),
    )


class Offload:
    """One worker process's sender: `take` decides and starts a send, `drain` ends them."""

    def __init__(
        self, *, queue_url: str, profiles: Profiles, clients: Clients, metrics: Metrics
    ) -> None:
        self.queue_url = queue_url
        self.clients = clients
        self.metrics = metrics
        # Read per event: the routes' lanes as the profiles decided them, and the pinned.
        self._decided = profiles.decided
        self._overrides = profiles.overrides
        self.pending: set[asyncio.Task[None]] = set()
        self.closed = False
        self._down_until = 0.0  # monotonic; after a failed send, events run here until then

    def start(self) -> None:
        self.metrics.gauge("worker_offload_pending", (), lambda: float(len(self.pending)))
        log.info("offloading asynchronous marathons", extra={"fields": {"queue": self.queue_url}})

    def wants(self, job: Job) -> bool:
        """Whether `job`'s route belongs in the offload lane: named so, or learned a
        marathon and not pinned to the marathon lane. FIFO sources keep their order here."""
        lane = self._decided.get(job.route)
        if lane == OFFLOAD:
            return True
        return (
            lane == MARATHON
            and job.route not in self._overrides
            and not job.route.endswith(".fifo")
        )

    def take(self, job: Job, sent: Sent) -> bool:
        """Send `job` (an asynchronous one) to the queue if its route wants it and it can
        go; `sent(job, ok)` follows on the loop. False: it was not taken, run it here."""
        if not self.wants(job):
            return False
        reason = ""
        body = b""
        if self.closed:
            reason = "draining"
        elif time.monotonic() < self._down_until:
            reason = "unreachable"
        elif len(self.pending) >= MAX_PENDING:
            reason = "busy"
        else:
            body = envelope(job)
            if len(body) > MAX_MESSAGE_BYTES:
                reason = "oversize"
        if reason:
            self._local(reason)
            return False
        task = asyncio.ensure_future(self._send(job, body, sent))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)
        return True

    def submitter(self, submit: Callable[[Job], bool]) -> Callable[[Job], bool]:
        """Lambda mode's submit: events of an asynchronous kind may be offloaded (answered
        with a null result once sent); the rest, and what cannot go, go to `submit`."""

        def sent(job: Job, ok: bool) -> None:
            if ok:
                job.reply(None, None)
            elif not submit(job):  # cannot happen while pollers <= slots; never drop it
                job.reply(None, LambdaError("Runtime.Busy", "no free slot"))

        def offloading_submit(job: Job) -> bool:
            if job.kind in ASYNC_KINDS and self.take(job, sent):
                return True
            return submit(job)

        return offloading_submit

    async def _send(self, job: Job, body: bytes, sent: Sent) -> None:
        try:
            client = await self.clients.get("sqs")
            await asyncio.wait_for(
                client.send_message(QueueUrl=self.queue_url, MessageBody=body.decode()),
                SEND_TIMEOUT,
            )
        except asyncio.CancelledError:
            sent(job, False)  # drain ran out of time: the event runs here, never dropped
            raise
        except Exception as exc:
            if time.monotonic() >= self._down_until:  # one line per failure, not per event
                log.warning(
                    "the offload queue is unreachable (%s): asynchronous marathons run here",
                    exc,
                    extra={"fields": {"queue": self.queue_url}},
                )
            self._down_until = time.monotonic() + RETRY_AFTER
            self._local("unreachable")
            sent(job, False)
        else:
            self.metrics.inc("worker_offload_total", (("outcome", "sent"),))
            sent(job, True)

    def _local(self, reason: str) -> None:
        self.metrics.inc("worker_offload_total", (("outcome", "local"), ("reason", reason)))

    async def drain(self, grace: float) -> None:
        """Take no more; let the sends under way finish within `grace` seconds (one still
        unanswered then runs here)."""
        self.closed = True
        if self.pending:
            _, late = await asyncio.wait(list(self.pending), timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)


def start(
    *, queue_url: str, profiles: Profiles | None, clients: Clients, metrics: Metrics
) -> Offload | None:
    """This process's sender, or None with no queue (or no profiles to decide by)."""
    if not queue_url or profiles is None:
        return None
    offload = Offload(queue_url=queue_url, profiles=profiles, clients=clients, metrics=metrics)
    offload.start()
    return offload
