"""The offload lane: asynchronous marathons go to SQS and `worker sqs` runs them (moto)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.client import invoke
from tests.ports import free_port
from tests.test_sqs import counts, new_queue
from tests.test_supervisor import wait_for
from worker.jobs import Job
from worker.lanes import Lane, Lanes
from worker.offload import MARK, envelope, unwrap
from worker.profiles import MARATHON, OFFLOAD, SPRINTER, Profiles, parse_overrides

EVENT = {"X-Amz-Invocation-Type": "Event"}


def records(done: Path) -> list[dict[str, Any]]:
    return [orjson.loads(p.read_bytes()) for p in done.glob("*.json")]


def metric(text: str, *parts: str) -> float:
    """The sum of the Prometheus samples whose line holds every one of `parts`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith("#") and all(part in line for part in parts):
            total += float(line.rsplit(" ", 1)[1])
    return total


def admin_metrics(srv: Any) -> str:
    return srv.admin("/_worker/metrics")[1].decode()


def queued(moto: Any, url: str) -> list[dict[str, Any]]:
    """Every message on the queue, received (and left to come back) by the test."""
    sqs = moto.client("sqs")
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)
    return got.get("Messages", [])


# -- units ------------------------------------------------------------------------------


def test_the_envelope_carries_the_original_event_whole() -> None:
    raw = b'{"action": "report",  "n": [1, 2.5, "\xc3\xa9"]}'
    job = Job(orjson.loads(raw), None, "req-1", len(raw), None, "direct", "report", "Root=1")
    job.raw = raw
    body = envelope(job)
    assert body.startswith(MARK)
    got = unwrap(body.decode())
    assert got is not None
    assert got.event == orjson.loads(raw)
    assert (got.kind, got.route, got.request_id, got.trace_id) == (
        "direct",
        "report",
        "req-1",
        "Root=1",
    )
    # Without the source's bytes, the decoded event is encoded again.
    assert unwrap(envelope(Job({"a": 1}, None)).decode()).event == {"a": 1}  # type: ignore[union-attr]
    assert unwrap('{"worker_offload_not": 1}') is None
    assert unwrap("plain text") is None
    assert unwrap('{"worker_offload": 2, "event": {}}') is None


def test_an_offload_route_runs_as_a_marathon_where_it_runs_here() -> None:
    assert parse_overrides("report=offload,GET /x=marathon") == {
        "report": OFFLOAD,
        "GET /x": MARATHON,
    }
    with pytest.raises(ValueError):
        parse_overrides("report=elsewhere")
    profiles = Profiles(overrides={"report": OFFLOAD})
    lanes = Lanes([Lane(SPRINTER, 2, 2), Lane(MARATHON, 1, 2)], profiles)
    assert lanes.choose(Job({}, None, route="report")).name == MARATHON
    assert lanes.choose(Job({}, None, route="other")).name == SPRINTER


# -- serve and `worker sqs` -------------------------------------------------------------


async def test_event_invocations_of_an_offload_route_run_once_on_worker_sqs(
    serve, sqs_worker, moto, tmp_path: Path
) -> None:
    url = new_queue(moto, visibility=30)
    done = tmp_path / "done"
    done.mkdir()
    common = {**moto.env, "OFFLOAD_DONE": str(done), "WORKER_ROUTES": "report=offload"}
    srv = serve(
        "tests.apps.offload_apps.record",
        "--workers",
        "2",
        env={**common, "OFFLOAD_WHERE": "serve", "WORKER_OFFLOAD_QUEUE_URL": url},
    )
    events = [{"action": "report", "id": f"e{i}", "nested": {"n": i}} for i in range(40)]
    answers = await asyncio.gather(*(invoke(srv.port, e, EVENT) for e in events))
    assert [a.status for a in answers] == [202] * len(events)  # as Lambda answers an Event
    request_ids = {
        e["id"]: a.headers["x-amzn-requestid"] for e, a in zip(events, answers, strict=True)
    }
    # Acknowledged only once sent: every one is on the queue, none ran here.
    assert counts(moto, url) == (len(events), 0)
    assert records(done) == []
    wait_for(
        lambda: metric(admin_metrics(srv), "worker_offload_total", 'outcome="sent"') == len(events),
        "the sends counted",
    )

    # A synchronous call on the same route is never offloaded: it runs here, answered.
    sync = await invoke(srv.port, {"action": "report", "id": "sync"})
    assert sync.status == 200 and sync.json() == {"ran": "serve"}
    # An event past SQS's message limit runs here too.
    big = {"action": "report", "id": "big", "pad": "x" * (300 * 1024)}
    assert (await invoke(srv.port, big, EVENT)).status == 202
    wait_for(lambda: len(records(done)) == 2, "the sync call and the oversize event ran here")
    assert {r["event"]["id"] for r in records(done)} == {"sync", "big"}
    wait_for(
        lambda: metric(admin_metrics(srv), "worker_offload_total", 'reason="oversize"') == 1,
        "the oversize event counted",
    )
    assert counts(moto, url) == (len(events), 0)

    # `worker sqs` on the queue runs each with the original event, exactly as sent.
    sqs_worker(
        "tests.apps.offload_apps.record",
        url,
        "--workers",
        "1",
        "--concurrency",
        "4",
        "--pollers",
        "1",
        env={**common, "OFFLOAD_WHERE": "sqs", "WORKER_SQS_WAIT_SECONDS": "1"},
    )
    wait_for(
        lambda: (
            len([r for r in records(done) if r["where"] == "sqs"]) >= len(events)
            and counts(moto, url) == (0, 0)
        ),
        "every offloaded event run and deleted",
        timeout=60,
    )
    ran = [r for r in records(done) if r["where"] == "sqs"]
    assert sorted(r["event"]["id"] for r in ran) == sorted(e["id"] for e in events)  # once each
    by_id = {e["id"]: e for e in events}
    for r in ran:
        assert r["event"] == by_id[r["event"]["id"]]  # what the handler would have seen here
        assert r["request_id"] == request_ids[r["event"]["id"]]  # the invocation's own id
        assert r["lane"] == MARATHON  # `worker sqs` has lanes too: offload routes are marathons


async def test_an_unreachable_queue_runs_the_event_here(serve, moto, tmp_path: Path) -> None:
    done = tmp_path / "done"
    done.mkdir()
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    srv = serve(
        "tests.apps.offload_apps.record",
        "--workers",
        "1",
        env={
            **moto.env,
            "AWS_ENDPOINT_URL_SQS": dead,
            "OFFLOAD_DONE": str(done),
            "OFFLOAD_WHERE": "serve",
            "WORKER_ROUTES": "report=offload",
            "WORKER_OFFLOAD_QUEUE_URL": f"{dead}/123456789012/gone",
        },
    )
    answers = await asyncio.gather(
        *(invoke(srv.port, {"action": "report", "id": f"u{i}"}, EVENT) for i in range(3))
    )
    assert [a.status for a in answers] == [202] * 3
    wait_for(lambda: len(records(done)) == 3, "the events ran here", timeout=60)
    assert sorted(r["event"]["id"] for r in records(done)) == ["u0", "u1", "u2"]
    assert all(r["lane"] == MARATHON for r in records(done))
    wait_for(
        lambda: metric(admin_metrics(srv), "worker_offload_total", 'reason="unreachable"') == 3,
        "the local runs counted",
    )
    assert "offload queue is unreachable" in srv.logs()


async def test_a_learned_marathon_route_is_offloaded(serve, moto, tmp_path: Path) -> None:
    url = new_queue(moto)
    done = tmp_path / "done"
    done.mkdir()
    srv = serve(
        "tests.apps.offload_apps.record",
        "--workers",
        "1",
        env={
            **moto.env,
            "OFFLOAD_DONE": str(done),
            "OFFLOAD_WHERE": "serve",
            "WORKER_MARATHON_SECONDS": "0.05",
            "WORKER_OFFLOAD_QUEUE_URL": url,
        },
    )
    slow = {"action": "crunch", "sleep": 0.2}
    # Not yet learned: the first event runs here, and its duration makes the route a marathon.
    assert (await invoke(srv.port, {**slow, "id": "first"}, EVENT)).status == 202
    wait_for(lambda: len(records(done)) == 1, "the first event ran here")
    wait_for(
        lambda: metric(admin_metrics(srv), "worker_invocations_total") >= 1,
        "the first invocation counted (so its route learned)",
    )
    answers = [await invoke(srv.port, {**slow, "id": f"later{i}"}, EVENT) for i in range(3)]
    assert [a.status for a in answers] == [202] * 3
    assert counts(moto, url) == (3, 0)
    bodies = sorted(unwrap(m["Body"]).event["id"] for m in queued(moto, url))  # type: ignore[union-attr]
    assert bodies == ["later0", "later1", "later2"]
    assert len(records(done)) == 1
    # A quick route's events still run here.
    assert (await invoke(srv.port, {"action": "quick", "id": "q"}, EVENT)).status == 202
    wait_for(lambda: len(records(done)) == 2, "the quick event ran here")


# -- Lambda mode ------------------------------------------------------------------------


async def test_lambda_mode_offloads_sqs_records_of_an_offload_route(
    emulate, moto, tmp_path: Path
) -> None:
    url = new_queue(moto)
    done = tmp_path / "done"
    done.mkdir()
    source = "arn:aws:sqs:us-east-1:123456789012:jobs"
    emu = emulate(
        "tests.apps.offload_apps.record",
        env={
            **moto.env,
            "OFFLOAD_DONE": str(done),
            "OFFLOAD_WHERE": "lambda",
            "WORKER_ROUTES": f"{source}=offload",
            "WORKER_OFFLOAD_QUEUE_URL": url,
        },
    )
    record = {
        "messageId": "m-1",
        "receiptHandle": "h",
        "body": "payload",
        "attributes": {},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": source,
        "awsRegion": "us-east-1",
    }
    batch = {"Records": [record]}
    # As an event source mapping invokes: synchronously, and a null result deletes the batch.
    ans = await invoke(emu.port, batch)
    assert ans.status == 200 and ans.json() is None
    messages = queued(moto, url)
    assert len(messages) == 1
    got = unwrap(messages[0]["Body"])
    assert got is not None and got.event == batch and (got.kind, got.route) == ("sqs", source)
    assert records(done) == []
    # Another kind on the same function runs here (a direct invoke is synchronous).
    direct = await invoke(emu.port, {"action": "report"})
    assert direct.status == 200 and direct.json() == {"ran": "lambda"}
