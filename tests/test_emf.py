"""EMF metric lines (Powertools' shape) for Lambda mode."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.client import invoke
from worker.telemetry.emf import MAX_VALUES, Emf


def lines_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]


def test_values_are_split_at_100_per_line() -> None:
    out: list[str] = []
    emf = Emf("shop", "orders", write=out.append, clock=lambda: 1700000000.5)
    lane = (("lane", "sprinter"),)
    for i in range(250):
        emf.record("worker_invocation_duration_seconds", lane, i / 1000)
        emf.record("worker_invocations_total", lane, 1.0)
    emf.flush()
    events = [json.loads(line) for line in out]
    assert all(len(e.get("Duration", [])) <= MAX_VALUES for e in events)
    assert sum(len(e.get("Duration", [])) for e in events) == 250
    assert sum(sum(e.get("Invocations", [])) for e in events) == 250
    first = events[0]
    assert first["_aws"]["Timestamp"] == 1700000000500
    assert first["_aws"]["CloudWatchMetrics"] == [
        {
            "Namespace": "shop",
            "Dimensions": [["service", "lane"]],
            "Metrics": [
                {"Name": "Duration", "Unit": "Milliseconds"},
                {"Name": "Invocations", "Unit": "Count"},
            ],
        }
    ]
    assert first["service"] == "orders" and first["lane"] == "sprinter"
    assert first["Duration"][:3] == [0.0, 1.0, 2.0]  # milliseconds


def test_unknown_metrics_are_not_sent_and_dimensions_split_lines() -> None:
    out: list[str] = []
    emf = Emf("ns", "svc", write=out.append)
    emf.record("something_internal", (), 1.0)
    emf.record("worker_batch_size", (("model", "minilm"),), 8)
    emf.record("worker_errors_total", (("lane", "sprinter"),), 1.0)
    emf.flush()
    events = [json.loads(line) for line in out]
    assert len(events) == 2
    assert {e.get("model") for e in events} == {"minilm", None}
    emf.flush()
    assert len(out) == 2  # nothing new, nothing written


async def test_lambda_mode_writes_emf_lines(emulate) -> None:
    emu = emulate(
        "tests.apps.basic.echo", "--concurrency", "4", env={"POWERTOOLS_SERVICE_NAME": "echo"}
    )
    for wave in range(0, 150, 4):  # as many at once as the function's concurrency
        answers = await asyncio.gather(*(invoke(emu.port, {"i": i}) for i in range(wave, wave + 4)))
        assert all(a.status == 200 for a in answers)
    assert (await invoke(emu.port, {"last": True})).status == 200
    emu.stop()  # the last values are flushed at exit
    events = lines_of(emu.logs())
    assert events, emu.logs()[-2000:]
    assert all(len(v) <= MAX_VALUES for e in events for k, v in e.items() if isinstance(v, list))
    assert sum(sum(e.get("Invocations", [])) for e in events) == 153
    assert all(e["service"] == "echo" for e in events)


def test_a_lanes_invocations_in_bulk_are_the_values_one_by_one_would_give() -> None:
    lane = (("lane", "sprinter"),)
    durations = [i / 7000 for i in range(230)]  # not round in milliseconds
    bulk: list[str] = []
    emf = Emf("shop", "orders", write=bulk.append, clock=lambda: 1700000000.5)
    emf.record_invocations(lane, durations)
    assert bulk == []  # written at the flush, not before
    emf.flush()
    one_by_one: list[str] = []
    emf = Emf("shop", "orders", write=one_by_one.append, clock=lambda: 1700000000.5)
    for seconds in durations:
        emf.record("worker_invocation_duration_seconds", lane, seconds)
        emf.record("worker_invocations_total", lane, 1.0)
    emf.flush()
    assert [sorted(e) for e in map(json.loads, bulk)] == [
        sorted(e) for e in map(json.loads, one_by_one)
    ]
    got = [json.loads(line) for line in bulk]
    want = [json.loads(line) for line in one_by_one]
    assert [len(e["Duration"]) for e in got] == [100, 100, 30]
    assert sum(len(e["Invocations"]) for e in got) == 230
    flat = [v for e in got for v in e["Duration"]]
    assert flat == [v for e in want for v in e["Duration"]]  # to the microsecond, as round()
