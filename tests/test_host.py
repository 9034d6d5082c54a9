"""Models in real environments: loaded once, shared by the workers, batched, bounded."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import orjson

from tests.client import invoke
from tests.test_batcher import Model
from tests.test_supervisor import wait_for
from worker.inference.host import Host
from worker.inference.registry import ModelSpec
from worker.telemetry.metrics import Metrics

MB = 1024 * 1024


def smaps(pid: int) -> dict[str, int]:
    """kB figures of /proc/PID/smaps_rollup."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        out[name] = int(value.split()[0])
    return out


def metric(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert m is not None, f"{name} not in metrics"
    return float(m.group(1))


def anon_pss(serve, weights: int, calls: Path) -> tuple[int, list[int]]:  # type: ignore[no-untyped-def]
    """Total anonymous PSS of a two-worker environment holding `weights` bytes of model."""
    env = {"MODEL_CALLS": str(calls), "MODEL_BYTES": str(weights)}
    srv = serve("tests.apps.models.handler", "--workers", "2", env=env)
    wait_for(lambda: len(srv.children()) == 2, "two workers")
    for i in range(40):  # reach both workers; each answers from the shared weights
        assert asyncio.run(invoke(srv.port, {"x": i})).json()["out"] == 2 * i  # type: ignore[index]
    assert calls.read_text().splitlines()[-1] == f"load {srv.pid}"  # in the supervisor
    tree = [srv.pid, *srv.children()]
    total = sum(smaps(pid)["Pss_Anon"] for pid in tree) * 1024
    private = [smaps(pid)["Private_Dirty"] * 1024 for pid in srv.children()]
    srv.stop()
    return total, private


def test_two_workers_share_one_copy_of_the_model(serve, tmp_path: Path) -> None:
    weights = 128 * MB
    calls = tmp_path / "calls"
    base, _ = anon_pss(serve, 0, calls)
    total, private = anon_pss(serve, weights, calls)
    assert len(calls.read_text().splitlines()) == 2  # one load per environment
    # One copy: the weights add their size once to the whole tree, not once per process.
    assert total - base < 1.5 * weights, (total - base) / MB
    assert all(p < weights / 4 for p in private)  # no worker copied them


async def test_concurrent_requests_are_batched(serve) -> None:
    srv = serve("tests.apps.models.handler", "--workers", "1", "--concurrency", "64")
    answers = await asyncio.gather(*(invoke(srv.port, {"x": i}) for i in range(64)))
    assert [a.json()["out"] for a in answers] == [2 * i for i in range(64)]  # type: ignore[index]
    text = srv.get("/_worker/metrics")[1].decode()
    batches = metric(text, 'worker_batch_size_count{model="double"}')
    items = metric(text, 'worker_batch_size_sum{model="double"}')
    assert items == 64  # the warm-up batch ran in the init phase, outside the batcher
    assert items / batches > 1  # batches larger than one


async def test_sync_handlers_reach_the_model_from_their_threads(serve) -> None:
    srv = serve("tests.apps.models.sync_handler", "--workers", "1", "--concurrency", "8")
    answers = await asyncio.gather(*(invoke(srv.port, {"x": i}) for i in range(16)))
    assert [a.json()["out"] for a in answers] == [2 * i for i in range(16)]  # type: ignore[index]


async def test_sync_handler_in_lambda_mode(emulate) -> None:
    emu = emulate("tests.apps.models.sync_handler")  # one slot: no inline run with models
    assert (await invoke(emu.port, {"x": 21})).json()["out"] == 42  # type: ignore[index]


async def test_a_full_model_queue_answers_429(serve, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    srv = serve("tests.apps.models.narrow", "--workers", "1", env={"NARROW_GATE": str(gate)})
    running = asyncio.ensure_future(invoke(srv.port, {"x": 1}))
    while not Path(f"{gate}.entered").exists():  # the first batch is in the model
        await asyncio.sleep(0.01)
    waiting = asyncio.ensure_future(invoke(srv.port, {"x": 2}))
    depth = 'worker_inference_queue_depth{model="narrow"}'
    while metric(srv.get("/_worker/metrics")[1].decode(), depth) < 1:  # the second waits
        await asyncio.sleep(0.01)
    refused = await invoke(srv.port, {"x": 3})
    assert refused.status == 429
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["errorType"] == "TooManyRequestsException"  # type: ignore[index]
    gate.touch()
    assert (await running).json() == 1
    assert (await waiting).json() == 2


async def test_an_unknown_model_is_a_clear_error(serve) -> None:
    srv = serve("tests.apps.models.unknown", "--workers", "1")
    answer = await invoke(srv.port, {})
    assert answer.headers["x-amz-function-error"] == "Unhandled"
    body = answer.json()
    assert body["errorType"] == "Runtime.ModelNotFound"  # type: ignore[index]
    assert "double" in body["errorMessage"]  # type: ignore[index]


def test_a_loader_that_raises_fails_init(serve) -> None:
    srv = serve("tests.apps.models.handler", env={"MODEL_LOAD": "raise"}, ready=False)
    assert srv.proc.wait(timeout=30) == 1
    line = next(x for x in srv.logs().splitlines() if x.startswith('{"errorMessage"'))
    error = orjson.loads(line)
    assert error["errorType"] == "RuntimeError"
    assert error["errorMessage"] == "Model 'double' failed to load: weights are corrupt"


def test_a_loader_past_the_init_timeout_fails_init(serve) -> None:
    srv = serve(
        "tests.apps.models.handler",
        "--init-timeout",
        "0.5",
        env={"MODEL_LOAD": "hang"},
        ready=False,
    )
    assert srv.proc.wait(timeout=30) == 1
    assert "Runtime.InitTimeout" in srv.logs()


async def test_a_loader_that_raises_is_lambdas_init_error(emulate) -> None:
    emu = emulate("tests.apps.models.handler", env={"MODEL_LOAD": "raise"}, ready=False)
    while "the runtime exited" not in emu.logs():
        await asyncio.sleep(0.02)
    answer = await invoke(emu.port, {"x": 1})
    assert answer.json()["errorType"] == "RuntimeError"  # type: ignore[index]


def test_models_load_with_progress_lines(serve) -> None:
    srv = serve("tests.apps.models.handler", "--workers", "1")
    line = next(x for x in srv.logs().splitlines() if '"model loaded"' in x)
    fields = orjson.loads(line)
    assert fields["model"] == "double"
    assert fields["device"] == "cpu"
    assert {"seconds", "bytes", "warmup_seconds"} <= set(fields)


async def test_sync_callers_on_threads_share_batches_with_the_loop() -> None:
    model = Model()
    spec = ModelSpec(name="m", loader=lambda: model, max_batch_size=16)
    spec.fn = model
    host = Host([spec], Metrics(), asyncio.get_running_loop())
    await model.hold()
    first = asyncio.ensure_future(host.infer("m", 0, None))
    await model.wait_inside()
    threads = [asyncio.ensure_future(asyncio.to_thread(host.infer, "m", i, None)) for i in (1, 2)]
    while len(host.batchers["m"].queue) < 2:
        await asyncio.sleep(0.005)
    model.gate.set()
    assert await first == 0
    assert await asyncio.gather(*threads) == [10, 20]
    assert sorted(model.batches[1]) == [1, 2]  # both threads' items in one batch
    host.close()
