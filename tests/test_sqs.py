"""`worker sqs` against a real moto server: batches, partial failures, kills, FIFO, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.test_supervisor import wait_for
from worker.jobs import Job
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


# -- the source's own policy, against an SQS client whose every call the test answers ----


class _HeldSqs:
    """An aiobotocore SQS client stand-in: each receive and delete waits for the test."""

    def __init__(self) -> None:
        self.meta = SimpleNamespace(region_name="us-east-1")
        self.receives: list[tuple[int, asyncio.Future[list[dict[str, Any]]]]] = []
        self.deletes: list[tuple[list[str], asyncio.Future[dict[str, Any]]]] = []
        self.sent = 0

    async def get(self, service: str) -> _HeldSqs:  # the Clients side
        return self

    async def get_queue_attributes(self, **_: Any) -> dict[str, Any]:
        return {"Attributes": {"QueueArn": "arn:aws:sqs:us-east-1:1:q", "VisibilityTimeout": "30"}}

    async def receive_message(self, MaxNumberOfMessages: int, **_: Any) -> dict[str, Any]:
        future: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self.receives.append((MaxNumberOfMessages, future))
        return {"Messages": await future}

    async def delete_message_batch(self, Entries: list[dict[str, str]], **_: Any) -> Any:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.deletes.append(([e["ReceiptHandle"] for e in Entries], future))
        return await future

    def open_receives(self) -> list[tuple[int, asyncio.Future[list[dict[str, Any]]]]]:
        return [r for r in self.receives if not r[1].done()]

    def answer(self, receive: tuple[int, asyncio.Future[Any]], count: int) -> None:
        messages = [
            {"MessageId": f"m{self.sent + i}", "ReceiptHandle": f"r{self.sent + i}", "Body": ""}
            for i in range(count)
        ]
        self.sent += count
        receive[1].set_result(messages)


async def _idle() -> None:
    """Let every task that can run reach its next wait (no timers are involved)."""
    for _ in range(20):
        await asyncio.sleep(0)


def _source(sqs: _HeldSqs, submit: Any, pollers: int = 3) -> SqsSource:
    return SqsSource(
        queue_url="http://127.0.0.1/1/q",
        submit=submit,
        room=100,
        clients=sqs,  # type: ignore[arg-type]
        metrics=Metrics(),
        batch_size=10,
        pollers=pollers,
    )


async def test_long_polls_grow_with_full_receives_and_fall_back_to_one() -> None:
    sqs = _HeldSqs()
    source = _source(sqs, submit=lambda job: job.reply(None, None) is None)
    await source.start()
    await _idle()
    assert len(sqs.open_receives()) == 1  # nothing known about the queue yet: one long poll
    sqs.answer(sqs.open_receives()[0], 10)  # full: a backlog, one more poll
    await _idle()
    assert len(sqs.open_receives()) == 2
    for receive in sqs.open_receives():
        sqs.answer(receive, 10)
    await _idle()
    assert len(sqs.open_receives()) == 3  # --pollers 3: the most
    sqs.answer(sqs.open_receives()[0], 10)
    await _idle()
    assert len(sqs.open_receives()) == 3 and source.polls == 3
    # The queue drains: each short receive retires a poll, down to one, never none.
    while len(sqs.open_receives()) > 1 or source.polls > 1:
        sqs.answer(sqs.open_receives()[0], 2)
        await _idle()
    assert source.polls == 1 and len(sqs.open_receives()) == 1
    sqs.answer(sqs.open_receives()[0], 0)  # an empty long poll: still one
    await _idle()
    assert source.polls == 1 and len(sqs.open_receives()) == 1
    await source.stop([])
    assert not sqs.open_receives()


async def test_short_batches_share_delete_calls_while_one_is_under_way() -> None:
    sqs = _HeldSqs()
    jobs: list[Job] = []
    source = _source(sqs, submit=lambda job: jobs.append(job) is None, pollers=1)
    await source.start()
    await _idle()
    for count in (3, 4, 5, 2):  # four short batches, each received in its own receive
        sqs.answer(sqs.open_receives()[0], count)
        await _idle()
    jobs[0].reply(None, None)
    await _idle()
    assert [len(d[0]) for d in sqs.deletes] == [3]  # none under way: deleted at once
    jobs[1].reply(None, None)
    jobs[2].reply(None, None)
    await _idle()
    assert [len(d[0]) for d in sqs.deletes] == [3]  # 9 gathered behind the call under way
    jobs[3].reply(None, None)
    await _idle()
    assert [len(d[0]) for d in sqs.deletes] == [3, 10]  # a full call leaves at once
    sqs.deletes[0][1].set_result({})
    await _idle()
    assert [len(d[0]) for d in sqs.deletes] == [3, 10, 1]  # the rest, with the next to finish
    for _, future in sqs.deletes[1:]:
        future.set_result({})
    await source.settled()
    deleted = [handle for handles, _ in sqs.deletes for handle in handles]
    assert sorted(deleted) == sorted(f"r{i}" for i in range(14))  # each once, none left
    await source.stop([])
