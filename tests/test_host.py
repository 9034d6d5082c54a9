"""Models in real environments: loaded once, shared by the workers, batched, bounded.

Every environment test runs twice: with the models in the supervisor, shared by the
workers copy-on-write (`auto` on a CPU), and in the model host process (`process`)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import orjson
import pytest

from tests.client import invoke
from tests.test_batcher import Model
from tests.test_supervisor import wait_for
from worker.inference.host import Host
from worker.inference.registry import ModelSpec
from worker.telemetry.metrics import Metrics

MB = 1024 * 1024


@pytest.fixture(params=["auto", "process"])
def placement(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _placed(start, placement: str):  # type: ignore[no-untyped-def]
    def placed(*args: str, env: dict[str, str] | None = None, **kwargs: bool):  # type: ignore[no-untyped-def]
        return start(*args, env={"WORKER_MODEL_HOST": placement, **(env or {})}, **kwargs)

    return placed


@pytest.fixture
def models(serve, placement: str):  # type: ignore[no-untyped-def]
    """`serve`, with the models placed as `placement` says."""
    return _placed(serve, placement)


@pytest.fixture
def models_emulated(emulate, placement: str):  # type: ignore[no-untyped-def]
    """`emulate`, with the models placed as `placement` says."""
    return _placed(emulate, placement)


def smaps(pid: int) -> dict[str, int]:
    """kB figures of /proc/PID/smaps_rollup."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        out[name] = int(value.split()[0])
    return out


def metric(text: str, name: str, default: float | None = None) -> float:
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    if m is None and default is not None:
        return default
    assert m is not None, f"{name} not in metrics"
    return float(m.group(1))


def anon_pss(models, weights: int, calls: Path) -> tuple[int, list[int], bool]:  # type: ignore[no-untyped-def]
    """Total anonymous PSS of a two-worker environment holding `weights` bytes of model,
    its workers' private memory, and whether the supervisor itself loaded the model."""
    env = {"MODEL_CALLS": str(calls), "MODEL_BYTES": str(weights)}
    srv = models("tests.apps.models.handler", "--workers", "2", env=env)
    loader = int(calls.read_text().splitlines()[-1].split()[1])
    wait_for(lambda: len(set(srv.children()) - {loader}) == 2, "two workers")

    async def together() -> list[object]:
        answers = await asyncio.gather(*(invoke(srv.port, {"x": i}) for i in range(40)))
        return [a.json()["out"] for a in answers]  # type: ignore[index]

    # Both workers, and in the model host its launch threads (`double` runs two batches
    # at once there), answer from the one copy.
    assert asyncio.run(together()) == [2 * i for i in range(40)]
    workers = set(srv.children()) - {loader}
    assert loader == srv.pid or loader in srv.children()  # the supervisor or its model host
    total = sum(smaps(pid)["Pss_Anon"] for pid in [srv.pid, *srv.children()]) * 1024
    private = [smaps(pid)["Private_Dirty"] * 1024 for pid in workers]
    srv.stop()
    return total, private, loader == srv.pid


def test_two_workers_share_one_copy_of_the_model(models, placement: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    weights = 128 * MB
    calls = tmp_path / "calls"
    base, _, _ = anon_pss(models, 0, calls)
    total, private, in_supervisor = anon_pss(models, weights, calls)
    assert len(calls.read_text().splitlines()) == 2  # one load per environment
    assert in_supervisor == (placement == "auto")
    # One copy: the weights add their size once to the whole tree, not once per process.
    assert total - base < 1.5 * weights, (total - base) / MB
    assert all(p < weights / 4 for p in private)  # no worker copied them


async def test_concurrent_requests_are_batched(models) -> None:  # type: ignore[no-untyped-def]
    srv = models("tests.apps.models.handler", "--workers", "1", "--concurrency", "64")
    answers = await asyncio.gather(*(invoke(srv.port, {"x": i}) for i in range(64)))
    assert [a.json()["out"] for a in answers] == [2 * i for i in range(64)]  # type: ignore[index]
    items = 'worker_batch_size_sum{model="double"}'
    # The model host's figures reach /metrics with its next snapshot (once a second).
    wait_for(lambda: metric(srv.admin("/_worker/metrics")[1].decode(), items, 0) == 64, "64 items")
    text = srv.admin("/_worker/metrics")[1].decode()
    batches = metric(text, 'worker_batch_size_count{model="double"}')
    # 64 exactly: the warm-up batch ran in the init phase, outside the batcher.
    assert metric(text, items) / batches > 1  # batches larger than one


async def test_sync_handlers_reach_the_model_from_their_threads(models) -> None:  # type: ignore[no-untyped-def]
    srv = models("tests.apps.models.sync_handler", "--workers", "1", "--concurrency", "8")
    answers = await asyncio.gather(*(invoke(srv.port, {"x": i}) for i in range(16)))
    assert [a.json()["out"] for a in answers] == [2 * i for i in range(16)]  # type: ignore[index]


async def test_sync_handler_in_lambda_mode(models_emulated) -> None:  # type: ignore[no-untyped-def]
    emu = models_emulated("tests.apps.models.sync_handler")  # one slot: no inline run with models
    assert (await invoke(emu.port, {"x": 21})).json()["out"] == 42  # type: ignore[index]


async def test_a_full_model_queue_answers_429(models, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gate = tmp_path / "gate"
    srv = models("tests.apps.models.narrow", "--workers", "1", env={"NARROW_GATE": str(gate)})
    running = asyncio.ensure_future(invoke(srv.port, {"x": 1}))
    while not Path(f"{gate}.entered").exists():  # the first batch is in the model
        await asyncio.sleep(0.01)
    waiting = asyncio.ensure_future(invoke(srv.port, {"x": 2}))
    depth = 'worker_inference_queue_depth{model="narrow"}'
    while metric(srv.admin("/_worker/metrics")[1].decode(), depth, 0) < 1:  # the second waits
        await asyncio.sleep(0.01)
    refused = await invoke(srv.port, {"x": 3})
    assert refused.status == 429
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["errorType"] == "TooManyRequestsException"  # type: ignore[index]
    gate.touch()
    assert (await running).json() == 1
    assert (await waiting).json() == 2


async def test_an_unknown_model_is_a_clear_error(models) -> None:  # type: ignore[no-untyped-def]
    srv = models("tests.apps.models.unknown", "--workers", "1")
    answer = await invoke(srv.port, {})
    assert answer.headers["x-amz-function-error"] == "Unhandled"
    body = answer.json()
    assert body["errorType"] == "Runtime.ModelNotFound"  # type: ignore[index]
    assert "double" in body["errorMessage"]  # type: ignore[index]


def test_a_loader_that_raises_fails_init(models) -> None:  # type: ignore[no-untyped-def]
    srv = models("tests.apps.models.handler", env={"MODEL_LOAD": "raise"}, ready=False)
    assert srv.proc.wait(timeout=30) == 1
    # The init error's report, as awslambdaric writes one (Text, the default format).
    report = next(x for x in srv.logs().splitlines() if x.startswith("[ERROR] "))
    assert report.split("\r")[0] == (
        "[ERROR] RuntimeError: Model 'double' failed to load: weights are corrupt"
    )


def test_a_loader_past_the_init_timeout_fails_init(models) -> None:  # type: ignore[no-untyped-def]
    srv = models(
        "tests.apps.models.handler",
        "--init-timeout",
        "0.5",
        env={"MODEL_LOAD": "hang"},
        ready=False,
    )
    assert srv.proc.wait(timeout=30) == 1
    assert "Runtime.InitTimeout" in srv.logs()


async def test_a_loader_that_raises_is_lambdas_init_error(models_emulated) -> None:  # type: ignore[no-untyped-def]
    emu = models_emulated("tests.apps.models.handler", env={"MODEL_LOAD": "raise"}, ready=False)
    while "the runtime exited" not in emu.logs():
        await asyncio.sleep(0.02)
    answer = await invoke(emu.port, {"x": 1})
    assert answer.json()["errorType"] == "RuntimeError"  # type: ignore[index]


def test_models_load_with_progress_lines(models) -> None:  # type: ignore[no-untyped-def]
    srv = models("tests.apps.models.handler", "--workers", "1")
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
