"""`worker sqs` against a real moto server: batches, partial failures, kills, FIFO, SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from tests.test_supervisor import wait_for
from worker.aws import Clients
from worker.jobs import Job
from worker.sources.pollgate import PollGate
from worker.sources.sqs import SqsSource, failed_ids, lambda_record
from worker.telemetry.metrics import Metrics


def new_queue(moto: Any, visibility: int = 30, fifo: bool = False) -> str:
    name = f"q-{uuid.uuid4().hex[:12]}" + (".fifo" if fifo else "")
    attrs = {"VisibilityTimeout": str(visibility)}
    if fifo:
        attrs |= {"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    url: str = moto.client("sqs").create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
    return url


def send(moto: Any, url: str, bodies: list[str], group: str | None = None) -> None:
    sqs = moto.client("sqs")
    for i in range(0, len(bodies), 10):
        entries = [{"Id": str(j), "MessageBody": b} for j, b in enumerate(bodies[i : i + 10])]
        if group is not None:
            for entry in entries:
                entry["MessageGroupId"] = group
        assert not sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")


def counts(moto: Any, url: str) -> tuple[int, int]:
    attrs = moto.client("sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_every_message_is_processed_exactly_once_and_deleted(sqs_worker, moto, tmp_path) -> None:
    url = new_queue(moto, visibility=5)  # failed messages come back after 5 s
    bodies = [f"m{i}" for i in range(1000)]
    send(moto, url, bodies)
    done, store = tmp_path / "done", tmp_path / "store"
    done.mkdir()
    sqs_worker(
        "tests.apps.sqs_apps.flaky",
        url,
        "--workers",
        "2",
        "--concurrency",
        "8",
        env={"SQS_DONE": str(done), "SQS_STORE": str(store), "WORKER_SQS_WAIT_SECONDS": "1"},
    )
    wait_for(
        lambda: len(list(done.iterdir())) >= 1000 and counts(moto, url) == (0, 0),
        "every message processed and deleted",
        timeout=120,
    )
    processed = sorted(p.read_text() for p in done.iterdir())
    assert processed == sorted(bodies)  # each processed once: none lost
    # Redeliveries of processed messages (moto's receive is not atomic across concurrent
    # pollers; SQS itself is at-least-once) reached the handler's idempotency check only.
    duplicates = [x for x in lines(store) if x.startswith("duplicate")]
    assert len(duplicates) < 50, duplicates


def test_an_exception_deletes_none_of_the_batch(sqs_worker, moto, tmp_path) -> None:
    url = new_queue(moto, visibility=30)
    send(moto, url, ["a", "b", "c"])
    store = tmp_path / "store"
    srv = sqs_worker(
        "tests.apps.sqs_apps.raises",
        url,
        "--workers",
        "1",
        env={"SQS_STORE": str(store), "WORKER_SQS_WAIT_SECONDS": "1"},
    )
    wait_for(lambda: sum(len(x.split()) - 1 for x in lines(store)) >= 3, "the batch ran")
    srv.stop()
    assert counts(moto, url) == (0, 3)  # still there, invisible until their timeout


def test_a_killed_worker_loses_no_message(sqs_worker, moto, tmp_path) -> None:
    url = new_queue(moto, visibility=2)
    bodies = [f"k{i}" for i in range(40)]
    send(moto, url, bodies)
    store, gate = tmp_path / "store", tmp_path / "gate"
    srv = sqs_worker(
        "tests.apps.sqs_apps.gated",
        url,
        "--workers",
        "1",
        "--concurrency",
        "2",
        "--batch-size",
        "5",
        env={"SQS_STORE": str(store), "SQS_GATE": str(gate), "WORKER_SQS_WAIT_SECONDS": "1"},
    )
    wait_for(lambda: any(x.startswith("started") for x in lines(store)), "a batch in flight")
    victim = srv.children()[0]
    os.kill(victim, signal.SIGKILL)  # mid-batch
    wait_for(lambda: srv.children() and srv.children()[0] != victim, "a replacement worker")
    gate.touch()
    wait_for(lambda: counts(moto, url) == (0, 0), "every message deleted", timeout=60)
    done = {x.split()[1] for x in lines(store) if x.startswith("done")}
    started = {x.split()[1] for x in lines(store) if x.startswith("started")}
    # Every message finished; the killed batch's ones came back and ran again.
    assert len(done) == 40 and started == done


def test_fifo_keeps_order_per_group(sqs_worker, moto, tmp_path) -> None:
    # One poller: moto checks a group's lock and takes it in two steps, so two receives at
    # the same moment can both get the group (SQS itself does this atomically).
    url = new_queue(moto, visibility=1, fifo=True)
    for group in ("A", "B", "C"):
        send(moto, url, [f"{group}:{i}" for i in range(12)], group=group)
    store = tmp_path / "store"
    sqs_worker(
        "tests.apps.sqs_apps.fifo",
        url,
        "--workers",
        "1",
        "--pollers",
        "1",
        "--concurrency",
        "4",
        env={"SQS_STORE": str(store), "WORKER_SQS_WAIT_SECONDS": "1"},
    )
    wait_for(
        lambda: counts(moto, url) == (0, 0) and len(lines(store)) >= 36,
        "every message processed",
        timeout=60,
    )
    by_group: dict[str, list[int]] = {}
    for line in lines(store):
        group, seq = line.split()
        by_group.setdefault(group, []).append(int(seq))
    for group in ("A", "B", "C"):
        assert by_group[group] == list(range(12)), group  # in order, none skipped or twice


def test_sigterm_releases_unstarted_messages_at_once(sqs_worker, moto, tmp_path) -> None:
    url = new_queue(moto, visibility=300)  # released, not expired, if they come back now
    send(moto, url, [f"s{i}" for i in range(5)])
    store, gate = tmp_path / "store", tmp_path / "gate"
    srv = sqs_worker(
        "tests.apps.sqs_apps.gated",
        url,
        "--workers",
        "1",
        "--concurrency",
        "1",
        "--batch-size",
        "1",
        "--queue-size",
        "4",
        env={"SQS_STORE": str(store), "SQS_GATE": str(gate), "WORKER_SQS_WAIT_SECONDS": "1"},
    )
    # One batch running, four more received and waiting in the lane.
    wait_for(
        lambda: any(x.startswith("started") for x in lines(store)) and counts(moto, url)[1] == 5,
        "one running, four waiting",
    )
    srv.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "released unstarted messages" in srv.logs(), "the release")
    assert counts(moto, url) == (4, 1)  # visible again at once; the running one still held
    gate.touch()
    assert srv.proc.wait(timeout=30) == 0
    assert [x for x in lines(store) if x.startswith("done")] != []
    assert counts(moto, url) == (4, 0)  # the finished one was deleted


def test_a_long_batch_keeps_its_messages_by_heartbeat(sqs_worker, moto, tmp_path) -> None:
    url = new_queue(moto, visibility=2)
    send(moto, url, ["long"])
    store = tmp_path / "store"
    sqs_worker(
        "tests.apps.sqs_apps.slow",
        url,
        "--workers",
        "1",
        env={"SQS_STORE": str(store), "SLOW_SECONDS": "5", "WORKER_SQS_WAIT_SECONDS": "1"},
    )
    wait_for(lambda: counts(moto, url) == (0, 0) and lines(store), "done and deleted", timeout=30)
    assert [line.split()[1] for line in lines(store)] == ["1"]  # never delivered twice


def test_failed_ids_follow_lambdas_rules() -> None:
    batch = [
        {"MessageId": f"m{i}", "Attributes": {"MessageGroupId": g}} for i, g in enumerate("AABA")
    ]
    assert failed_ids(None, batch, fifo=False) == set()
    assert failed_ids({"batchItemFailures": []}, batch, fifo=False) == set()
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "m1"}]}, batch, False) == {"m1"}
    everything = {"m0", "m1", "m2", "m3"}
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": ""}]}, batch, False) == everything
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "x"}]}, batch, False) == everything
    assert failed_ids({"batchItemFailures": "nope"}, batch, False) == everything
    # FIFO: after m0 fails, the rest of group A (m1, m3) fails too; group B is untouched.
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "m0"}]}, batch, True) == {
        "m0",
        "m1",
        "m3",
    }


def test_records_have_lambdas_sqs_shape() -> None:
    message = {
        "MessageId": "id-1",
        "ReceiptHandle": "rh",
        "Body": "hello",
        "MD5OfBody": "md5",
        "Attributes": {"ApproximateReceiveCount": "1"},
        "MessageAttributes": {
            "kind": {"StringValue": "x", "DataType": "String"},
            "raw": {"BinaryValue": b"\x00\x01", "DataType": "Binary"},
        },
    }
    record = lambda_record(message, "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1")
    assert record == {
        "messageId": "id-1",
        "receiptHandle": "rh",
        "body": "hello",
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {
            "kind": {
                "stringValue": "x",
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            },
            "raw": {
                "binaryValue": "AAE=",
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "Binary",
            },
        },
        "md5OfBody": "md5",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
        "awsRegion": "us-east-1",
    }


# -- the source's own policy: real calls to moto, each held until the test lets it go -----


class _Call:
    def __init__(self, kwargs: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        self.kwargs = kwargs
        self.gate: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[Any] = loop.create_future()

    async def release(self) -> Any:
        """Let the call reach moto; its answer, once back."""
        self.gate.set_result(None)
        answer = await asyncio.wait_for(asyncio.shield(self.done), 30)
        await _idle()  # the poller has acted on it and reached its next wait
        return answer


class _Gated:
    """The process's real SQS client, except that receives and deletes wait for the test."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.receives: list[_Call] = []
        self.deletes: list[_Call] = []
        self.tamper: Callable[[Any], None] | None = None  # alters moto's next receive answer

    async def get(self, service: str) -> _Gated:  # the Clients side
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def _held(self, calls: list[_Call], name: str, kwargs: dict[str, Any]) -> Any:
        call = _Call(kwargs)
        calls.append(call)
        await call.gate
        answer = await getattr(self.real, name)(**kwargs)
        call.done.set_result(answer)
        return answer

    async def receive_message(self, **kwargs: Any) -> Any:
        answer = await self._held(self.receives, "receive_message", kwargs)
        if self.tamper is not None:
            self.tamper(answer)
            self.tamper = None
        return answer

    async def delete_message_batch(self, **kwargs: Any) -> Any:
        return await self._held(self.deletes, "delete_message_batch", kwargs)

    def held(self, calls: list[_Call]) -> list[_Call]:
        return [c for c in calls if not c.gate.done()]


async def until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll, on the loop, for the state that proves a step happened (bounded)."""
    end = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def _idle() -> None:
    """Let every task that can run reach its next wait (nothing here waits on a timer)."""
    for _ in range(20):
        await asyncio.sleep(0)


def _answer_at_once(job: Job) -> bool:
    job.reply(None, None)
    return True


@contextlib.asynccontextmanager
async def _gated_source(
    moto: Any,
    monkeypatch: Any,
    url: str,
    submit: Any,
    pollers: int,
    gate: PollGate | None = None,
    slots: int = 100,
) -> AsyncIterator[tuple[SqsSource, _Gated]]:
    for key, value in moto.env.items():
        monkeypatch.setenv(key, value)
    clients = Clients()
    sqs = _Gated(await clients.get("sqs"))
    source = SqsSource(
        queue_url=url,
        submit=submit,
        room=100,
        clients=sqs,  # type: ignore[arg-type]
        metrics=Metrics(),
        pollers=pollers,
        wait_seconds=0,  # an empty queue answers at once
        slots=slots,
        gate=gate,
    )
    try:
        await source.start()
        await _idle()
        yield source, sqs
    finally:
        for call in sqs.held(sqs.receives):
            call.gate.set_result(None)
        await source.stop([])
        await clients.close()


async def test_long_polls_grow_with_full_receives_and_fall_back_to_one(moto, monkeypatch) -> None:
    url = new_queue(moto)
    send(moto, url, [f"p{i}" for i in range(45)])
    async with _gated_source(moto, monkeypatch, url, _answer_at_once, 3) as (source, sqs):
        assert len(sqs.held(sqs.receives)) == 1  # nothing known yet: one long poll
        assert len((await sqs.held(sqs.receives)[0].release())["Messages"]) == 10  # full
        # One full receive may be one SendMessageBatch of ten, all there is: still one.
        assert source.polls == 1 and len(sqs.held(sqs.receives)) == 1
        assert len((await sqs.held(sqs.receives)[0].release())["Messages"]) == 10  # again
        assert source.polls == 2 and len(sqs.held(sqs.receives)) == 2  # a backlog: one more
        assert len((await sqs.held(sqs.receives)[0].release())["Messages"]) == 10
        assert source.polls == 3 and len(sqs.held(sqs.receives)) == 3  # --pollers 3: the most
        assert len((await sqs.held(sqs.receives)[0].release())["Messages"]) == 10
        assert source.polls == 3 and len(sqs.held(sqs.receives)) == 3
        assert len((await sqs.held(sqs.receives)[0].release())["Messages"]) == 5  # short
        assert source.polls == 2
        # The queue is drained: each empty receive retires a poll, down to one, never none.
        while source.polls > 1 or len(sqs.held(sqs.receives)) > 1:
            assert "Messages" not in await sqs.held(sqs.receives)[0].release()
        assert source.polls == 1 and len(sqs.held(sqs.receives)) == 1
        await sqs.held(sqs.receives)[0].release()
        assert source.polls == 1 and len(sqs.held(sqs.receives)) == 1
        while sqs.held(sqs.deletes):
            await sqs.held(sqs.deletes)[0].release()
        await source.settled()
    assert counts(moto, url) == (0, 0)  # all 45 handled and deleted


async def test_short_batches_share_delete_calls_while_one_is_under_way(moto, monkeypatch) -> None:
    url = new_queue(moto)
    jobs: list[Job] = []

    def take(job: Job) -> bool:  # the test finishes them, one by one
        jobs.append(job)
        return True

    async with _gated_source(moto, monkeypatch, url, take, 1) as (source, sqs):
        for i, count in enumerate((3, 4, 5, 6)):  # four short batches, one per receive
            send(moto, url, [f"d{i}.{j}" for j in range(count)])
            await sqs.held(sqs.receives)[0].release()
        assert [len(job.event["Records"]) for job in jobs] == [3, 4, 5, 6]

        def sizes() -> list[int]:
            return [len(call.kwargs["Entries"]) for call in sqs.deletes]

        jobs[0].reply(None, None)
        jobs[1].reply(None, None)  # in the same turn of the loop
        await _idle()
        assert sizes() == [3]  # none under way: at once; the next batch waits behind it
        jobs[2].reply(None, None)
        await _idle()
        assert sizes() == [3]  # 9 gathered behind the call under way
        jobs[3].reply(None, None)
        await _idle()
        assert sizes() == [3, 10]  # 15 gathered: a full call leaves at once
        await sqs.deletes[0].release()
        assert sizes() == [3, 10, 5]  # the rest, with the next call to finish
        for call in sqs.deletes[1:]:
            await call.release()
        await source.settled()
        handles = [e["ReceiptHandle"] for c in sqs.deletes for e in c.kwargs["Entries"]]
        assert len(set(handles)) == 18
    assert counts(moto, url) == (0, 0)  # each deleted once, none left


async def test_a_drained_queue_has_one_long_poll_for_the_whole_service(
    moto, monkeypatch, tmp_path
) -> None:
    url = new_queue(moto)
    lock = str(tmp_path / "sqs-poll.lock")
    async with contextlib.AsyncExitStack() as stack:
        sources = [  # two worker processes of one service, each with its own open file
            await stack.enter_async_context(
                _gated_source(moto, monkeypatch, url, _answer_at_once, 2, gate=PollGate(lock))
            )
            for _ in range(2)
        ]

        def open_polls() -> list[_Call]:
            return [call for _, sqs in sources for call in sqs.held(sqs.receives)]

        assert len(open_polls()) == 1  # nothing known yet: one quiet poll, not one each
        holder = next(source for source, sqs in sources if sqs.held(sqs.receives))
        assert holder.gate is not None and holder.gate.held
        send(moto, url, [f"g{i}" for i in range(35)])
        assert len((await open_polls()[0].release())["Messages"]) == 10  # full
        assert len(open_polls()) == 1 and holder.quiet  # it may have been all there was
        assert len((await open_polls()[0].release())["Messages"]) == 10  # full again: a backlog
        other, sqs_other = next((s, q) for s, q in sources if s is not holder)
        # The holder polls without the gate now (two polls: it grew), and the other process
        # takes the gate it left: the backlog spreads over both.
        await until(lambda: len(sqs_other.held(sqs_other.receives)) == 1, "the other's poll")
        assert other.gate is not None and other.gate.held
        assert holder.polls == 2 and not holder.quiet and len(open_polls()) == 3
        # Drain it: each short or empty receive makes its process quiet again, down to one
        # long poll for the service.
        while len(open_polls()) > 1 or not all(s.quiet for s, _ in sources):
            await open_polls()[0].release()
            await until(lambda: bool(open_polls()), "a poll open")
        assert [s.polls for s, _ in sources] == [1, 1]
        assert sum(bool(s.gate and s.gate.held) for s, _ in sources) == 1
        for source, sqs in sources:
            while sqs.held(sqs.deletes):
                await sqs.held(sqs.deletes)[0].release()
            await source.settled()
    assert counts(moto, url) == (0, 0)  # all 35 handled and deleted


async def test_a_process_with_every_slot_busy_polls_without_the_gate(
    moto, monkeypatch, tmp_path
) -> None:
    url = new_queue(moto)
    lock = str(tmp_path / "sqs-poll.lock")
    jobs: list[Job] = []

    def take(job: Job) -> bool:  # the test finishes it
        jobs.append(job)
        return True

    async with contextlib.AsyncExitStack() as stack:
        busy, sqs_busy = await stack.enter_async_context(
            _gated_source(moto, monkeypatch, url, take, 1, gate=PollGate(lock), slots=1)
        )
        idle, sqs_idle = await stack.enter_async_context(
            _gated_source(moto, monkeypatch, url, _answer_at_once, 1, gate=PollGate(lock))
        )
        assert len(sqs_busy.held(sqs_busy.receives)) == 1 and not sqs_idle.held(sqs_idle.receives)
        send(moto, url, ["slow"])
        assert len((await sqs_busy.held(sqs_busy.receives)[0].release())["Messages"]) == 1
        # Short, so quiet; but its one slot is busy: it polls for its queued places without
        # the gate, and the other process, with free slots, takes the quiet poll.
        assert busy.quiet and len(jobs) == 1 and len(sqs_busy.held(sqs_busy.receives)) == 1
        await until(lambda: len(sqs_idle.held(sqs_idle.receives)) == 1, "the idle one's poll")
        assert idle.gate is not None and idle.gate.held
        assert busy.gate is not None and not busy.gate.held
        jobs[0].reply(None, None)
        await _idle()
        await sqs_busy.held(sqs_busy.deletes)[0].release()
        await busy.settled()
    assert counts(moto, url) == (0, 0)


async def test_an_unusable_gate_leaves_the_process_polling(moto, monkeypatch, tmp_path) -> None:
    url = new_queue(moto)
    send(moto, url, ["still polled"])
    gate = PollGate(str(tmp_path / "gone" / "sqs-poll.lock"))  # its directory is not there
    async with _gated_source(moto, monkeypatch, url, _answer_at_once, 1, gate=gate) as (
        source,
        sqs,
    ):
        assert source.gate is None and len(sqs.held(sqs.receives)) == 1
        assert len((await sqs.held(sqs.receives)[0].release())["Messages"]) == 1
        await sqs.held(sqs.deletes)[0].release()
        await source.settled()
    assert counts(moto, url) == (0, 0)


async def test_a_message_without_a_receipt_handle_is_skipped_and_polling_goes_on(
    moto, monkeypatch
) -> None:
    url = new_queue(moto)
    send(moto, url, ["a", "b", "c"])
    async with _gated_source(moto, monkeypatch, url, _answer_at_once, 1) as (source, sqs):
        # As if SQS had sent what it never sends: nothing could delete or release it.
        sqs.tamper = lambda answer: answer["Messages"][0].pop("ReceiptHandle")
        assert len((await sqs.held(sqs.receives)[0].release())["Messages"]) == 3
        assert len(sqs.held(sqs.receives)) == 1  # the only poller lives: its next poll is open
        await sqs.held(sqs.deletes)[0].release()
        await source.settled()
        assert len(sqs.deletes[0].kwargs["Entries"]) == 2  # the other two ran and were deleted
        assert source.metrics.counters["worker_sqs_messages_total|outcome=unusable"] == 1
    assert counts(moto, url) == (0, 1)  # the skipped one waits out its visibility timeout
