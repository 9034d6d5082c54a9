"""Warm-up pings (serverless-plugin-warmup's, lambda-warmer's, ours) are answered by the
runtime in every mode: never by the handler, never learned by a lane, counted apart."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.client import invoke, request
from tests.conftest import ROOT
from worker import handler as handlers
from worker.classify import classify
from worker.config import Config
from worker.errors import LambdaError
from worker.jobs import Job
from worker.lanes import Lane, Lanes
from worker.pool import WARMED, Pool
from worker.profiles import MARATHON, SPRINTER, Profiles
from worker.telemetry.metrics import Metrics

APP = "tests.apps.warmup_apps.marks"
PINGS = {
    "serverless-plugin-warmup": {"source": "serverless-plugin-warmup"},
    "lambda-warmer": {"warmer": True, "concurrency": 3},
    "worker": {"worker": "warmup"},
}
FANNED_OUT = {"warmer": True, "__WARMER_INVOCATION__": 2, "__WARMER_CONCURRENCY__": 3}


def _marks(path: Path) -> list[Any]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def _pool(tmp_path: Path, **settings: Any) -> tuple[Pool, Profiles, Metrics]:
    config = Config(handler=APP, **settings)
    profiles = Profiles()
    lanes = Lanes([Lane(SPRINTER, 2, 8), Lane(MARATHON, 1, 4)], profiles)
    metrics = Metrics()
    pool = Pool(
        handlers.load(APP, task_root=str(ROOT)),
        lanes,
        config,
        worker_tmp=str(tmp_path),
        metrics=metrics,
    )
    pool.start()
    return pool, profiles, metrics


def _job(event: dict[str, Any], answers: list[Any]) -> Job:
    raw = orjson.dumps(event)
    kind, route = classify.kind_route(raw)

    def reply(result: Any, error: LambdaError | None) -> None:
        answers.append((result, error))

    return Job(orjson.loads(raw), reply, size=len(raw), kind=kind, route=route or kind)


async def test_a_ping_is_answered_at_submit_without_a_slot_a_lane_or_a_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARMUP_MARKS", str(tmp_path / "marks"))
    pool, profiles, metrics = _pool(tmp_path)
    answers: list[Any] = []
    for event in [*PINGS.values(), FANNED_OUT]:
        assert pool.submit(_job(event, answers))
    # Answered within submit itself: nothing was queued for a slot to take.
    assert answers == [(WARMED, None)] * 4
    assert all(lane.in_flight == 0 and lane.depth == 0 for lane in pool.lanes.all)
    assert profiles.routes == {} and profiles.decided == {}
    assert metrics.counters == {
        "worker_warmup_total|source=serverless-plugin-warmup": 1.0,
        "worker_warmup_total|source=lambda-warmer": 2.0,
        "worker_warmup_total|source=worker": 1.0,
    }
    # A real event still runs (and is what the profile learns).
    assert pool.submit(_job({"action": "work"}, answers))
    while len(answers) < 5:
        await asyncio.sleep(0.005)
    assert answers[-1] == ({"ran": True, "kind": "direct"}, None)
    assert _marks(tmp_path / "marks") == [{"action": "work"}]
    await pool.drain(0.5)


async def test_with_warmup_off_the_handler_gets_the_pings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARMUP_MARKS", str(tmp_path / "marks"))
    pool, _, metrics = _pool(tmp_path, warmup="off")
    answers: list[Any] = []
    assert pool.submit(_job(PINGS["lambda-warmer"], answers))
    while not answers:
        await asyncio.sleep(0.005)
    # The handler sees the ping, and its context names what it is.
    assert answers == [({"ran": True, "kind": "warmup"}, None)]
    assert _marks(tmp_path / "marks") == [PINGS["lambda-warmer"]]
    assert not any(key.startswith("worker_warmup_total") for key in metrics.counters)
    await pool.drain(0.5)


def test_the_setting_is_on_or_off() -> None:
    assert Config.from_env({}).warmup == "on"
    assert Config.from_env({"WORKER_WARMUP": "OFF"}).warmup == "off"
    with pytest.raises(ValueError, match="WORKER_WARMUP"):
        Config.from_env({"WORKER_WARMUP": "sometimes"})


async def _metric(port: int, name: str, labels: str) -> float:
    text = (await request(port, "GET", "/_worker/metrics")).body.decode()
    match = re.search(rf"^{name}{{{re.escape(labels)}}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def test_serve_answers_pings_itself_and_counts_them_apart(serve, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    srv = serve(APP, "--workers", "1", env={"WARMUP_MARKS": str(marks)})
    for event in [*PINGS.values(), FANNED_OUT]:
        answer = await invoke(srv.port, event)
        assert (answer.status, answer.json()) == (200, WARMED)
    work = await invoke(srv.port, {"action": "work"})
    assert work.json() == {"ran": True, "kind": "direct"}
    # Each ping was answered before the next request went out: a ping that reached the
    # handler would have left its mark before its answer.
    assert _marks(marks) == [{"action": "work"}]
    # Each worker publishes its counts at least once a second: wait for the invocation.
    admin = srv.admin_port
    while await _metric(admin, "worker_invocations_total", 'lane="sprinter"') < 1:
        await asyncio.sleep(0.05)
    assert await _metric(admin, "worker_invocations_total", 'lane="sprinter"') == 1
    assert await _metric(admin, "worker_warmup_total", 'source="lambda-warmer"') == 2
    assert await _metric(admin, "worker_warmup_total", 'source="serverless-plugin-warmup"') == 1
    assert await _metric(admin, "worker_warmup_total", 'source="worker"') == 1


async def test_serve_with_warmup_off_passes_pings_to_the_handler(serve, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    srv = serve(APP, "--workers", "1", env={"WARMUP_MARKS": str(marks), "WORKER_WARMUP": "off"})
    answer = await invoke(srv.port, PINGS["worker"])
    assert answer.json() == {"ran": True, "kind": "warmup"}
    assert _marks(marks) == [PINGS["worker"]]


async def test_lambda_mode_answers_pings_itself_and_counts_them_apart(
    emulate, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    emu = emulate(APP, env={"WARMUP_MARKS": str(marks), "POWERTOOLS_SERVICE_NAME": "warm"})
    for event in [*PINGS.values(), FANNED_OUT]:
        answer = await invoke(emu.port, event)
        assert (answer.status, answer.json()) == (200, WARMED)
    assert (await invoke(emu.port, {"action": "work"})).json() == {"ran": True, "kind": "direct"}
    assert _marks(marks) == [{"action": "work"}]
    emu.stop()  # the last EMF values are flushed at exit
    lines = [json.loads(x) for x in emu.logs().splitlines() if x.startswith('{"_aws"')]
    pings: dict[str, float] = {}
    for line in lines:
        if "WarmupPings" in line:
            pings[line["source"]] = pings.get(line["source"], 0) + sum(line["WarmupPings"])
    assert pings == {"serverless-plugin-warmup": 1, "lambda-warmer": 2, "worker": 1}
    # Only the real event was an invocation of a lane.
    assert sum(sum(line.get("Invocations", [])) for line in lines) == 1
