"""Warm-up pings (serverless-plugin-warmup's, lambda-warmer's, ours) are answered by the
runtime in every mode: never by the handler, never learned by a lane, counted apart. In
Lambda mode the runtime does lambda-warmer's fan-out and hold itself."""

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
from tests.ports import free_port
from worker import aws, warmup
from worker import handler as handlers
from worker.classify import classify
from worker.config import Config
from worker.errors import LambdaError
from worker.jobs import Job
from worker.lanes import Lane, Lanes
from worker.pool import Pool
from worker.profiles import MARATHON, SPRINTER, Profiles
from worker.telemetry.metrics import Metrics
from worker.warmup import WARMED

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
    # lambda-warmer's ping without a concurrency: nothing to fan out (that is below).
    for event in [*{**PINGS, "lambda-warmer": {"warmer": True}}.values(), FANNED_OUT]:
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


# -- lambda-warmer's fan-out and hold, in Lambda mode ---------------------------------------

FIRST = {"warmer": True, "concurrency": 4}


class _Body:
    """An aiobotocore StreamingBody, as far as the fan-out uses one."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aenter__(self) -> _Body:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def read(self) -> bytes:
        return self.data


class _Lambda:
    """A Lambda client that records each invoke; the `RequestResponse` one waits for
    `release`, `fail` makes every call raise, `error` makes them answer a function error."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.waiting = asyncio.Event()  # the RequestResponse call is under way
        self.release = asyncio.Event()
        self.fail = False
        self.error = False

    async def invoke(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        if self.fail:
            raise ConnectionError("endpoint unreachable")
        if self.error:
            return {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": _Body(b"{}")}
        if params["InvocationType"] == "RequestResponse":
            self.waiting.set()
            await self.release.wait()
            return {"StatusCode": 200, "Payload": _Body(orjson.dumps(WARMED))}
        return {"StatusCode": 202, "Payload": _Body(b"")}


class _Clients:
    def __init__(self, client: _Lambda) -> None:
        self.client = client

    async def get(self, service: str) -> _Lambda:
        assert service == "lambda"
        return self.client


@pytest.fixture
def fake_lambda(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> _Lambda:
    client = _Lambda()
    monkeypatch.setattr(aws, "current", _Clients(client))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "warm-fn")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_VERSION", "7")
    monkeypatch.setenv("WARMUP_MARKS", str(tmp_path / "marks"))
    return client


async def _answered(answers: list[Any], n: int = 1) -> None:
    while len(answers) < n:
        await asyncio.sleep(0.005)


async def test_a_first_ping_invokes_the_function_n_minus_1_times_then_answers(
    tmp_path: Path, fake_lambda: _Lambda
) -> None:
    pool, _, metrics = _pool(tmp_path, mode="lambda")
    answers: list[Any] = []
    first = _job(FIRST, answers)
    assert pool.submit(first)
    await fake_lambda.waiting.wait()
    # Every call went out at once; the ping waits for the one that is answered.
    assert len(fake_lambda.calls) == 3 and answers == []
    fake_lambda.release.set()
    await _answered(answers)
    assert answers == [({**WARMED, "fanout": {"sent": 3, "failed": 0}}, None)]
    # lambda-warmer's calls: name:version, Event for all but the last, its payloads.
    assert [(c["FunctionName"], c["InvocationType"]) for c in fake_lambda.calls] == [
        ("warm-fn:7", "Event"),
        ("warm-fn:7", "Event"),
        ("warm-fn:7", "RequestResponse"),
    ]
    assert [orjson.loads(c["Payload"]) for c in fake_lambda.calls] == [
        {
            "warmer": True,
            "__WARMER_INVOCATION__": i,
            "__WARMER_CONCURRENCY__": 4,
            "__WARMER_CORRELATIONID__": first.request_id,
        }
        for i in (2, 3, 4)
    ]
    assert metrics.counters == {
        "worker_warmup_total|source=lambda-warmer": 1.0,
        "worker_warmup_fanout_total|outcome=sent": 3.0,
    }
    assert _marks(tmp_path / "marks") == []
    await pool.drain(0.5)


async def test_an_extra_ping_holds_its_slot_for_the_delay_then_answers(
    tmp_path: Path, fake_lambda: _Lambda, monkeypatch: pytest.MonkeyPatch
) -> None:
    held: list[float] = []
    holding = asyncio.Event()
    release = asyncio.Event()

    async def hold(seconds: float) -> None:
        held.append(seconds)
        holding.set()
        await release.wait()

    monkeypatch.setattr(warmup, "sleep", hold)
    pool, _, metrics = _pool(tmp_path, mode="lambda", warmup_delay_ms=40)
    answers: list[Any] = []
    # An extra ping never fans out again, even with a concurrency of its own.
    assert pool.submit(_job({**FANNED_OUT, "concurrency": 3}, answers))
    await holding.wait()
    assert held == [0.04] and answers == []
    release.set()
    await _answered(answers)
    assert answers == [(WARMED, None)]
    assert fake_lambda.calls == []
    assert metrics.counters == {"worker_warmup_total|source=lambda-warmer": 1.0}
    await pool.drain(0.5)


async def test_outside_lambda_mode_nothing_is_fanned_out_or_held(
    tmp_path: Path, fake_lambda: _Lambda
) -> None:
    pool, _, _ = _pool(tmp_path, mode="serve")
    answers: list[Any] = []
    for event in (FIRST, FANNED_OUT):
        assert pool.submit(_job(event, answers))
    assert answers == [(WARMED, None)] * 2  # within submit
    assert fake_lambda.calls == []
    await pool.drain(0.5)


@pytest.mark.parametrize("failure", ["fail", "error"])
async def test_a_failed_fan_out_is_counted_and_the_ping_still_answered(
    tmp_path: Path, fake_lambda: _Lambda, failure: str
) -> None:
    setattr(fake_lambda, failure, True)
    pool, _, metrics = _pool(tmp_path, mode="lambda")
    answers: list[Any] = []
    assert pool.submit(_job(FIRST, answers))
    await _answered(answers)
    assert answers == [({**WARMED, "fanout": {"sent": 0, "failed": 3}}, None)]
    assert len(fake_lambda.calls) == 3
    assert metrics.counters["worker_warmup_fanout_total|outcome=failed"] == 3.0
    await pool.drain(0.5)


async def test_the_fan_out_is_bounded_by_the_pings_deadline(
    tmp_path: Path, fake_lambda: _Lambda
) -> None:
    pool, _, metrics = _pool(tmp_path, mode="lambda")
    answers: list[Any] = []
    first = _job(FIRST, answers)
    first.deadline = 1.0  # long past: no time to wait for the call that is answered
    assert pool.submit(first)
    await _answered(answers)
    # Answered while the RequestResponse call still waits: given up, counted failed (the
    # Event ones may or may not have been taken in the one loop turn there was).
    assert not fake_lambda.release.is_set()
    result, error = answers[0]
    assert error is None and result["warmed"] and result["fanout"]["failed"] >= 1
    assert result["fanout"]["sent"] + result["fanout"]["failed"] == 3
    assert metrics.counters["worker_warmup_fanout_total|outcome=failed"] >= 1.0
    await pool.drain(0.5)


async def test_a_drain_answers_pings_still_waiting(tmp_path: Path, fake_lambda: _Lambda) -> None:
    pool, _, _ = _pool(tmp_path, mode="lambda")
    answers: list[Any] = []
    assert pool.submit(_job(FIRST, answers))
    await fake_lambda.waiting.wait()
    await pool.drain(0.5)
    await _answered(answers)
    assert answers == [(WARMED, None)]


def _pings_logged(logs: str) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in logs.splitlines() if x.startswith("{")]
    return [x for x in lines if x.get("message") == "warm-up ping"]


def _aws_env(endpoint_port: int, marks: Path) -> dict[str, str]:
    return {
        "WARMUP_MARKS": str(marks),
        "POWERTOOLS_SERVICE_NAME": "warm",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{endpoint_port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        # One try per call: the unreachable endpoint fails at once, not after backoffs.
        "AWS_MAX_ATTEMPTS": "1",
    }


async def test_lambda_mode_fans_out_through_the_emulators_invoke_api(
    emulate, tmp_path: Path
) -> None:
    # The runtime's Lambda client points at the emulator's own Invoke front: the fan-out
    # comes back to the same emulated function. Its port must be known before the start.
    port = free_port()
    marks = tmp_path / "marks"
    emu = emulate(
        APP, "--concurrency", "4", "--port", str(port), env=_aws_env(port, marks), ready=False
    )
    emu.port = port  # the last --port is the one the emulator takes
    emu.wait_ready()
    answer = await invoke(port, FIRST)
    # Answered once the three invocations returned (the last one once it was answered).
    assert (answer.status, answer.json()) == (200, {**WARMED, "fanout": {"sent": 3, "failed": 0}})
    while len(_pings_logged(emu.logs())) < 4:  # the Event ones may still be on their way
        await asyncio.sleep(0.05)
    pings = _pings_logged(emu.logs())
    assert sorted(p["invocation"] for p in pings) == [1, 2, 3, 4]
    assert {p["concurrency"] for p in pings} == {4}
    assert len({p["correlation_id"] for p in pings}) == 1
    emu.stop()  # the last EMF values are flushed at exit
    lines = [json.loads(x) for x in emu.logs().splitlines() if x.startswith('{"_aws"')]
    answered = sum(sum(x["WarmupPings"]) for x in lines if "WarmupPings" in x)
    assert answered == 4  # the first ping and its three, all by the runtime
    assert _marks(marks) == []  # the handler never ran
    assert sum(sum(x.get("Invocations", [])) for x in lines) == 0


async def test_lambda_mode_with_the_endpoint_unreachable_still_answers(
    emulate, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    emu = emulate(APP, env=_aws_env(free_port(), marks))  # nothing listens there
    answer = await invoke(emu.port, FIRST)
    assert (answer.status, answer.json()) == (200, {**WARMED, "fanout": {"sent": 0, "failed": 3}})
    assert "warm-up fan-out: some invocations failed" in emu.logs()
    assert _marks(marks) == []
