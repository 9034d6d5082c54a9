"""The model host process: placement, its death and restart, the drain, errors across it,
K batches of one model at once."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from tests.client import invoke
from tests.conftest import gone
from tests.test_host import metric
from tests.test_supervisor import wait_for

HOSTED = {"WORKER_MODEL_HOST": "process"}


def loads(calls: Path) -> list[int]:
    """The pids that loaded model `double`, in order."""
    lines = calls.read_text().splitlines() if calls.exists() else []
    return [int(line.split()[1]) for line in lines if line.startswith("load ")]


def test_a_gpu_model_lives_in_the_model_host_and_a_cpu_one_in_the_supervisor(
    serve, tmp_path: Path
) -> None:
    calls = tmp_path / "calls"
    srv = serve("tests.apps.gpu_models.gpu_only", "--workers", "2", env={"MODEL_CALLS": str(calls)})
    lines = calls.read_text().splitlines()
    host = next(line.split() for line in lines if line.startswith("gpu-only"))
    assert int(host[1]) in srv.children()  # not the supervisor: CUDA must not be forked
    assert host[2] == "cuda"  # what the loader was given
    assert loads(calls) == [srv.pid]  # the CPU model: loaded once, before the fork
    for x in range(8):
        answer = asyncio.run(invoke(srv.port, {"x": x})).json()
        assert answer == {"gpu": x + 1, "cpu": 2 * x}


@pytest.mark.parametrize("placement", ["auto", "process"])
async def test_a_batch_functions_errors_reach_the_handler_alike(serve, placement: str) -> None:  # type: ignore[no-untyped-def]
    srv = serve("tests.apps.models.picky", "--workers", "1", env={"WORKER_MODEL_HOST": placement})
    failed = await invoke(srv.port, {"x": -1})
    assert failed.headers["x-amz-function-error"] == "Unhandled"
    assert failed.json()["errorType"] == "ValueError"  # type: ignore[index]
    assert failed.json()["errorMessage"] == "negative input in [-1]"  # type: ignore[index]
    # An exception that pickle cannot rebuild still arrives with its type and message.
    odd = (await invoke(srv.port, {"x": 13})).json()
    assert (odd["errorType"], odd["errorMessage"]) == ("Unpicklable", "unlucky")  # type: ignore[index]
    assert (await invoke(srv.port, {"x": 2})).json() == 4  # the model still serves


async def held_in_the_host(serve, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Two workers and a model host whose `narrow` model holds request {"x": 1} until the
    gate file exists: (environment, host pid, gate, the held request)."""
    calls, gate = tmp_path / "calls", tmp_path / "gate"
    env = {**HOSTED, "MODEL_CALLS": str(calls), "NARROW_GATE": str(gate)}
    srv = serve("tests.apps.models.narrow", "--workers", "2", env=env)
    [host] = loads(calls)
    held = asyncio.ensure_future(invoke(srv.port, {"x": 1}))
    while not Path(f"{gate}.entered").exists():
        await asyncio.sleep(0.01)
    return srv, host, gate, held


async def test_a_dead_model_host_fails_its_requests_and_is_replaced(serve, tmp_path: Path) -> None:
    srv, host, gate, in_model = await held_in_the_host(serve, tmp_path)
    calls = tmp_path / "calls"
    os.kill(host, signal.SIGKILL)
    lost = await in_model
    assert lost.status == 200
    assert lost.headers["x-amz-function-error"] == "Unhandled"
    assert lost.json()["errorType"] == "Runtime.ModelHostUnavailable"  # type: ignore[index]
    gate.touch()
    wait_for(lambda: len(loads(calls)) == 2, "a new model host")
    assert loads(calls)[1] in srv.children()
    while True:  # the new host is up once it answers; until then requests fail clearly
        answer = await invoke(srv.port, {"x": 5})
        if answer.json() == 5:
            break
        assert answer.json()["errorType"] == "Runtime.ModelHostUnavailable"  # type: ignore[index]
        await asyncio.sleep(0.05)
    text = srv.admin("/_worker/metrics")[1].decode()
    assert metric(text, 'worker_restarts_total{process="model-host"}') == 1
    assert metric(text, "worker_restarts_total", 0) == 0  # no worker died, only the host
    assert gone(host)


async def test_sigterm_lets_requests_waiting_on_the_host_finish(serve, tmp_path: Path) -> None:
    srv, host, gate, first = await held_in_the_host(serve, tmp_path)
    second = asyncio.ensure_future(invoke(srv.port, {"x": 2}))  # queued behind it
    depth = 'worker_inference_queue_depth{model="narrow"}'
    while metric(srv.admin("/_worker/metrics")[1].decode(), depth, 0) < 1:
        await asyncio.sleep(0.01)
    srv.proc.send_signal(signal.SIGTERM)
    while True:  # draining: the listening socket is closed
        try:
            await invoke(srv.port)
        except OSError:
            break
        await asyncio.sleep(0.01)
    assert not gone(host)  # the workers are still waiting on it
    gate.touch()
    assert [(await first).json(), (await second).json()] == [1, 2]
    assert await asyncio.to_thread(srv.proc.wait, 30) == 0
    assert gone(host)


async def test_a_request_past_its_deadline_never_reaches_the_hosted_model(
    serve, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    env = {**HOSTED, "NARROW_GATE": str(gate)}
    srv = serve("tests.apps.models.narrow", "--workers", "1", "--timeout", "1", env=env)
    first = asyncio.ensure_future(invoke(srv.port, {"x": 1}))
    while not Path(f"{gate}.entered").exists():
        await asyncio.sleep(0.01)
    late = await invoke(srv.port, {"x": 2})  # waits behind the first until its deadline
    assert late.json()["errorType"] == "Sandbox.Timedout"  # type: ignore[index]
    gate.touch()
    await first
    expired = 'worker_inference_expired_total{model="narrow"}'
    wait_for(lambda: metric(srv.admin("/_worker/metrics")[1].decode(), expired, 0) == 1, "drop")
    assert Path(f"{gate}.entered").read_text().split() == ["1"]  # only the first ran


async def two_held_in_the_host(serve, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Two workers and a model host whose `pair` model (K=2) holds both of two requests
    inside the model at once until the gate file exists: (environment, gate, requests)."""
    gate = tmp_path / "gate"
    env = {**HOSTED, "PAIR_GATE": str(gate)}
    srv = serve("tests.apps.models.pair", "--workers", "2", env=env)
    held = [asyncio.ensure_future(invoke(srv.port, {"x": x})) for x in (1, 2)]
    entered = Path(f"{gate}.entered")
    while len(entered.read_text().split() if entered.exists() else []) < 2:
        await asyncio.sleep(0.01)
    return srv, gate, held


async def test_the_model_host_runs_k_batches_at_once(serve, tmp_path: Path) -> None:
    srv, gate, held = await two_held_in_the_host(serve, tmp_path)
    text = lambda: srv.admin("/_worker/metrics")[1].decode()  # noqa: E731
    in_flight = 'worker_inference_batches_in_flight{model="pair"}'
    # The model host's figures reach /metrics with its next snapshot (once a second).
    wait_for(lambda: metric(text(), in_flight, 0) == 2, "two batches in flight")
    assert metric(text(), 'worker_inference_overlapped_batches_total{model="pair"}') == 1
    gate.touch()
    assert sorted([(await call).json() for call in held]) == [3, 6]
    wait_for(lambda: metric(text(), in_flight, -1) == 0, "none in flight")
    assert metric(text(), 'worker_inference_batches_in_flight_peak{model="pair"}') == 2


async def test_sigterm_waits_for_every_batch_in_flight_in_the_host(serve, tmp_path: Path) -> None:
    srv, gate, held = await two_held_in_the_host(serve, tmp_path)
    srv.proc.send_signal(signal.SIGTERM)
    while True:  # draining: the listening socket is closed
        try:
            await invoke(srv.port)
        except OSError:
            break
        await asyncio.sleep(0.01)
    assert not any(call.done() for call in held)
    gate.touch()
    assert sorted([(await call).json() for call in held]) == [3, 6]
    assert await asyncio.to_thread(srv.proc.wait, 30) == 0


def test_the_model_host_and_the_workers_end_with_their_supervisor(serve, tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    env = {**HOSTED, "MODEL_CALLS": str(calls)}
    srv = serve("tests.apps.models.handler", "--workers", "2", env=env)
    [host] = loads(calls)
    wait_for(lambda: len(srv.children()) == 3, "two workers and the model host")
    family = srv.children()
    srv.proc.kill()
    srv.proc.wait()
    try:
        wait_for(lambda: all(gone(pid) for pid in family), "the orphans to exit")
    finally:
        for pid in family:  # the test's own processes, if the assertion failed
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
    assert host in family
