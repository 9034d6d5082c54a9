"""Warm-up pings answered by the runtime, never the handler: at once, or, for lambda-warmer's
pings in Lambda mode, after the fan-out or the hold that lambda-warmer itself would do.

lambda-warmer (jeremydaly/lambda-warmer) runs inside the handler: a first ping
`{"warmer": true, "concurrency": N}` makes it invoke its own function N-1 more times, and
each of those extra pings (`__WARMER_INVOCATION__` 2..N) waits `delay` ms before it returns,
so that they land on different environments. The runtime answers the ping before any
handler runs, so it does both here: the first ping invokes `name:version` N-1 times through
this process's pooled Lambda client (`Event` for all but the last, which is
`RequestResponse`, as lambda-warmer does), and is answered once those calls returned; an
extra ping holds its slot (in Lambda mode its poller: no `/next` meanwhile) for
`WORKER_WARMUP_DELAY_MS`. `serve` is one environment: nothing to fan out or spread, every
ping is answered at once. serverless-plugin-warmup's own function fans out, so its pings,
like ours, are answered at once too.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from asyncio import sleep  # by name: the tests hold a ping by replacing it here alone
from typing import Any

import orjson

from worker import aws
from worker.config import Config
from worker.context import Function
from worker.jobs import Job
from worker.telemetry.metrics import Metrics

log = logging.getLogger("worker.warmup")

#: The answer to a warm-up ping. Neither serverless-plugin-warmup nor lambda-warmer reads
#: what the function returns; this says, to anyone who looks, that the runtime took it.
WARMED = {"warmed": True}

#: classify's route for lambda-warmer's pings (`{"warmer": true, …}`).
LAMBDA_WARMER = "lambda-warmer"

#: Seconds kept back from a first ping's deadline for its own answer: fan-out calls still
#: out then are given up (and counted failed) rather than let the ping time out.
ANSWER_MARGIN = 0.2


def _count(value: Any) -> int:
    """A lambda-warmer number as JavaScript reads it there (`"4"` is 4, 2.5 loops as 2);
    anything else is 0."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return 0
    if isinstance(value, int | float) and math.isfinite(value):
        return int(value)
    return 0


class Warmup:
    """Answers the warm-up pings `Pool.submit` hands over (`answer`).

    Only lambda-warmer's pings in Lambda mode ever wait (a task each, kept until answered
    so that `close` can answer them at a drain); every other ping is answered within the
    call.
    """

    def __init__(self, config: Config, function: Function, metrics: Metrics) -> None:
        self.metrics = metrics
        self.spread = config.mode == "lambda"
        self.delay = config.warmup_delay_ms / 1e3
        self.timeout = config.timeout
        # lambda-warmer's own target: the function's name and version as the platform
        # gives them (AWS_LAMBDA_FUNCTION_NAME, AWS_LAMBDA_FUNCTION_VERSION).
        self.target = f"{function.name}:{function.version}"
        self.waiting: dict[asyncio.Task[None], Job] = {}

    def answer(self, job: Job) -> None:
        """Answer a warm-up ping: now, or once its fan-out or hold is over."""
        self.metrics.inc("worker_warmup_total", (("source", job.route),))
        event = job.event if isinstance(job.event, dict) else {}
        if not self.spread or job.route != LAMBDA_WARMER:
            job.reply(WARMED, None)
            return
        invocation = _count(event.get("__WARMER_INVOCATION__"))
        concurrency = _count(event.get("concurrency"))
        log.info(
            "warm-up ping",
            extra={
                "fields": {
                    "warmer": LAMBDA_WARMER,
                    "invocation": invocation or 1,
                    "concurrency": _count(event.get("__WARMER_CONCURRENCY__")) or concurrency,
                    "correlation_id": event.get("__WARMER_CORRELATIONID__") or job.request_id,
                }
            },
        )
        if invocation > 1:
            self._start(job, self._hold(job))
        elif concurrency > 1 and not event.get("test"):  # lambda-warmer's dry run: no fan-out
            self._start(job, self._fan_out(job, concurrency))
        else:
            job.reply(WARMED, None)

    def close(self) -> None:
        """At a drain: stop waiting; each ping still held is answered as it is."""
        for task in list(self.waiting):
            task.cancel()

    def _start(self, job: Job, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self.waiting[task] = job
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        job = self.waiting.pop(task)
        if task.cancelled():  # drained: answered all the same, nothing accepted goes unanswered
            job.reply(WARMED, None)
        elif task.exception() is not None:
            # Not expected (a failed call is counted, not raised); still never an error to
            # the warmer.
            log.error("answering a warm-up ping failed", exc_info=task.exception())
            job.reply(WARMED, None)

    def _left(self, job: Job) -> float:
        """Seconds this ping may still wait before its answer."""
        deadline = job.deadline or time.time() + self.timeout
        return max(0.0, deadline - time.time() - ANSWER_MARGIN)

    async def _hold(self, job: Job) -> None:
        # Held, this environment cannot take the fan-out's next invocation: Lambda gives it
        # to another, which is the point of lambda-warmer's delay.
        await sleep(min(self.delay, self._left(job)))
        job.reply(WARMED, None)

    async def _fan_out(self, job: Job, concurrency: int) -> None:
        event = job.event
        correlation = event.get("__WARMER_CORRELATIONID__") or job.request_id
        calls = [
            asyncio.ensure_future(
                self._invoke(
                    "RequestResponse" if i == concurrency else "Event",
                    {
                        "warmer": True,
                        "__WARMER_INVOCATION__": i,
                        "__WARMER_CONCURRENCY__": concurrency,
                        "__WARMER_CORRELATIONID__": correlation,
                    },
                )
            )
            for i in range(2, concurrency + 1)
        ]
        # As many at once as the pooled client has connections (its pool waits for the
        # rest); all of them bounded by this ping's deadline.
        try:
            done, late = await asyncio.wait(calls, timeout=self._left(job))
        finally:
            for call in calls:
                call.cancel()  # the late ones, or all of them at a drain
        sent = sum(1 for call in done if call.result())
        failed = len(calls) - sent
        self._counted("sent", sent)
        self._counted("failed", failed)
        if failed:
            log.warning(
                "warm-up fan-out: some invocations failed",
                extra={
                    "fields": {
                        "target": self.target,
                        "sent": sent,
                        "failed": failed,
                        "late": len(late),
                    }
                },
            )
        job.reply({**WARMED, "fanout": {"sent": sent, "failed": failed}}, None)

    async def _invoke(self, invocation_type: str, payload: dict[str, Any]) -> bool:
        """One fan-out invocation; True when Lambda took it (and, waited for, answered it
        without a function error). A failure is logged and counted, never raised."""
        try:
            client = await aws.current.get("lambda")
            response = await client.invoke(
                FunctionName=self.target,
                InvocationType=invocation_type,
                LogType="None",
                Payload=orjson.dumps(payload),
            )
            body = response.get("Payload")
            if body is not None:
                async with body:  # read to the end: its connection goes back to the pool
                    await body.read()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "warm-up fan-out invocation failed",
                extra={"fields": {"target": self.target, "error": repr(exc)}},
            )
            return False
        if response.get("FunctionError"):
            log.warning(
                "warm-up fan-out invocation answered an error",
                extra={"fields": {"target": self.target, "error": response["FunctionError"]}},
            )
            return False
        return True

    def _counted(self, outcome: str, n: int) -> None:
        if n:
            self.metrics.inc("worker_warmup_fanout_total", (("outcome", outcome),), n)
