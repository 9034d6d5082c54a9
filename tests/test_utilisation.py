"""The slot utilisation's EMF lines: their values, their dimensions, their period."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from tests.client import invoke
from worker.config import EMF_INTERVAL_ON_ECS, Config
from worker.lanes import Lane
from worker.profiles import MARATHON, SPRINTER
from worker.telemetry.emf import DEFAULT_NAMESPACE, Emf
from worker.telemetry.utilisation import (
    METRIC,
    QUEUE_METRIC,
    REQUESTS_METRIC,
    THROTTLES_METRIC,
    Utilisation,
)

ECS = {"ECS_CONTAINER_METADATA_URI_V4": "http://127.0.0.1:9/v4/task"}


def usage_lines(text: str) -> list[dict[str, Any]]:
    """The EMF events that carry the utilisation metric."""
    events = [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]
    return [e for e in events if METRIC in e]


def dims(event: dict[str, Any]) -> list[list[str]]:
    [directive] = event["_aws"]["CloudWatchMetrics"]
    dimensions: list[list[str]] = directive["Dimensions"]
    return dimensions


async def wait_for_line(proc: Any, match: Any, timeout: float = 30.0) -> dict[str, Any]:
    """The first utilisation event `match` accepts, once the process has written it."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for event in usage_lines(proc.logs()):
            if match(event):
                return event
        await asyncio.sleep(0.02)
    raise AssertionError(f"no such line:\n{proc.logs()[-3000:]}")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_period_writes_the_means_of_its_samples_per_lane_and_overall() -> None:
    out: list[str] = []
    clock = Clock()
    sprint, marathon = Lane(SPRINTER, 4, 8), Lane(MARATHON, 2, 8)
    usage = Utilisation([sprint, marathon], 10.0, Emf("ns", "svc", write=out.append), clock)
    sprint.in_flight, marathon.in_flight = 4, 2
    clock.now += 5
    usage.tick()
    assert out == []  # the period has not passed
    sprint.in_flight, marathon.in_flight = 2, 0
    clock.now += 5
    usage.tick()
    events = {e.get("lane"): e for e in map(json.loads, out)}
    assert events[SPRINTER][METRIC] == [0.75]  # (4 + 2) / 2 samples / 4 slots
    assert events[MARATHON][METRIC] == [0.5]
    assert events[None][METRIC] == [0.6667]  # (6 + 2) busy / 2 samples / 6 slots
    assert events[None][QUEUE_METRIC] == [0.0]
    assert dims(events[None]) == [["service"]] and dims(events[SPRINTER]) == [["service", "lane"]]
    out.clear()
    clock.now += 1
    usage.tick()
    assert out == []  # a new period began at the last write


def test_the_period_is_on_by_default_on_ecs_only_and_zero_turns_it_off() -> None:
    assert Config.from_env({}).emf_interval == 0
    assert Config.from_env(ECS).emf_interval == EMF_INTERVAL_ON_ECS
    assert Config.from_env(ECS | {"WORKER_EMF_INTERVAL": "0"}).emf_interval == 0
    assert Config.from_env({"WORKER_EMF_INTERVAL": "5"}).emf_interval == 5


async def test_a_loaded_serve_process_reports_its_busy_slots_and_queue(
    serve, tmp_path: Path
) -> None:
    # 4 slots: 3 sprinter, 1 marathon (lent to sprinters when idle).
    srv = serve(
        "tests.apps.basic.gate",
        "--workers",
        "1",
        "--concurrency",
        "4",
        env={"WORKER_EMF_INTERVAL": "0.5", "POWERTOOLS_SERVICE_NAME": "shop"},
    )
    calls = [asyncio.ensure_future(invoke(srv.port, {"dir": str(tmp_path)})) for _ in range(6)]
    # Every slot busy and two waiting: a whole period of it reads 1.0 and 2.
    full = await wait_for_line(
        srv, lambda e: "lane" not in e and e[METRIC] == [1.0] and e[QUEUE_METRIC] == [2.0]
    )
    assert full["_aws"]["CloudWatchMetrics"][0]["Namespace"] == DEFAULT_NAMESPACE
    (tmp_path / "release").touch()
    answers = await asyncio.gather(*calls)
    assert {a.status for a in answers} == {200}
    await wait_for_line(srv, lambda e: "lane" not in e and e[METRIC] == [0.0])
    events = usage_lines(srv.logs())
    assert all(0.0 <= v <= 1.0 for e in events for v in e[METRIC])
    assert all(e["service"] == "shop" for e in events)
    assert {e.get("lane") for e in events} == {None, SPRINTER, MARATHON}
    for event in events:
        want = [["service"]] if "lane" not in event else [["service", "lane"]]
        assert dims(event) == want
        names = [m["Name"] for m in event["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
        counted = [REQUESTS_METRIC, THROTTLES_METRIC] if "lane" not in event else []
        assert names == [METRIC, QUEUE_METRIC, *counted]
    assert any(e.get("lane") == SPRINTER and e[QUEUE_METRIC] == [2.0] for e in events)
    srv.stop()  # the last, partial period is written at the stop
    service = [e for e in usage_lines(srv.logs()) if "lane" not in e]
    assert sum(e[REQUESTS_METRIC][0] for e in service) == 6
    assert sum(e[THROTTLES_METRIC][0] for e in service) == 0


async def test_refused_requests_are_counted_as_throttles(serve, tmp_path: Path) -> None:
    """The parts of the throttle rate that deploy/ecs.yaml's alarm divides."""
    srv = serve(
        "tests.apps.basic.gate",
        "--workers",
        "1",
        "--concurrency",
        "1",
        "--queue-size",
        "1",
        env={"WORKER_EMF_INTERVAL": "0.5"},
    )
    held = [asyncio.ensure_future(invoke(srv.port, {"dir": str(tmp_path)})) for _ in range(2)]
    await wait_for_line(srv, lambda e: "lane" not in e and e[QUEUE_METRIC] == [1.0])
    refused = await asyncio.gather(*(invoke(srv.port, {"dir": str(tmp_path)}) for _ in range(3)))
    assert [a.status for a in refused] == [429] * 3
    (tmp_path / "release").touch()
    assert {a.status for a in await asyncio.gather(*held)} == {200}
    srv.stop()
    service = [e for e in usage_lines(srv.logs()) if "lane" not in e]
    assert sum(e[REQUESTS_METRIC][0] for e in service) == 5
    assert sum(e[THROTTLES_METRIC][0] for e in service) == 3


async def test_on_ecs_the_lines_follow_the_period_and_zero_writes_none(serve) -> None:
    default = serve("tests.apps.basic.echo", "--workers", "1", env=ECS)
    off = serve("tests.apps.basic.echo", "--workers", "1", env=ECS | {"WORKER_EMF_INTERVAL": "0"})
    for srv in (default, off):
        assert (await invoke(srv.port, {"x": 1})).status == 200
        assert srv.stop() == 0
    # On by default, its period not yet passed: only the stopping worker's last figures,
    # one line per dimension set.
    assert [e.get("lane") for e in usage_lines(default.logs())] == [SPRINTER, MARATHON, None]
    assert usage_lines(off.logs()) == []
