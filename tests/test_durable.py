"""worker.durable: steps run once, waits hold no slot, executions survive a kill -9 and
refuse to replay changed code; on the embedded SQLite store and on DynamoDB (moto)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.apps import durable_apps as apps
from tests.client import Answer, invoke
from tests.conftest import ROOT, Moto, Proc
from worker import aws, state
from worker.config import Config
from worker.context import LambdaContext
from worker.durable import Durable, durable
from worker.environment import function
from worker.jobs import Job

FLOW = "tests.apps.durable_apps.flow"
NAME = "X-Amz-Durable-Execution-Name"


def durable_table(moto: Moto) -> str:
    name = f"durable-{uuid.uuid4().hex[:8]}"
    moto.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


@pytest.fixture(params=["sqlite", "dynamodb"])
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """A service's environment: its store, a short lease, the file steps log their runs to."""
    env = {
        "WORKER_STATE_DIR": str(tmp_path / "state"),
        "WORKER_DURABLE_LEASE": "1",
        "DURABLE_LOG": str(tmp_path / "runs"),
    }
    if request.param == "dynamodb":
        moto: Moto = request.getfixturevalue("moto")
        env |= moto.env | {"WORKER_DURABLE_STORE": f"dynamodb:{durable_table(moto)}"}
    return env


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return {
        "WORKER_STATE_DIR": str(tmp_path / "state"),
        "WORKER_DURABLE_LEASE": "1",
        "DURABLE_LOG": str(tmp_path / "runs"),
    }


def runs(env: dict[str, str]) -> list[tuple[str, int]]:
    """(step, pid) of every run of a step, in order."""
    path = Path(env["DURABLE_LOG"])
    text = path.read_text() if path.exists() else ""
    return [(step, int(pid)) for step, pid in (line.split() for line in text.splitlines())]


def steps_ran(env: dict[str, str], step: str) -> int:
    return sum(1 for name, _ in runs(env) if name == step)


def shown(srv: Proc, name: str) -> dict[str, Any]:
    status, body = srv.admin(f"/_worker/executions/{name}")
    assert status == 200, body
    result: dict[str, Any] = orjson.loads(body)
    return result


async def until_status(srv: Proc, name: str, *statuses: str, within: float = 10.0) -> Any:
    """The execution once it has one of `statuses` (looked at until it does, bounded)."""
    end = time.monotonic() + within
    last: Any = None
    while time.monotonic() < end:
        status, body = await asyncio.to_thread(srv.admin, f"/_worker/executions/{name}")
        if status == 200:
            last = orjson.loads(body)
            if last["status"] in statuses:
                return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never reached {statuses}; last seen: {last}")


def error_type(answer: Answer) -> str:
    assert answer.headers.get("x-amz-function-error") == "Unhandled", answer
    body: Any = answer.json()
    return str(body["errorType"])


# -- real services ---------------------------------------------------------------------------


async def test_two_steps_and_a_wait_give_the_result(
    serve: Callable[..., Proc], store_env: dict[str, str]
) -> None:
    srv = serve(FLOW, "--workers", "1", env=store_env)
    answer = await invoke(srv.port, {"amount": 7, "wait": 0.5}, {NAME: "order-1"})
    assert answer.status == 200
    result: Any = answer.json()
    assert result["charged"] == 7 and result["shipped"] is True
    assert result["execution"] == "order-1"
    execution = shown(srv, "order-1")
    assert execution["status"] == "SUCCEEDED" and execution["result"] == result
    history = [(s["kind"], s["name"], s["status"]) for s in execution["steps"]]
    assert history == [
        ("now", "now", "SUCCEEDED"),
        ("step", "charge", "SUCCEEDED"),
        ("wait", "wait", "SUCCEEDED"),
        ("step", "ship", "SUCCEEDED"),
    ]
    # The result came from the replay after the wait: ctx.now() gave it the recorded
    # time, from before the first step, not the time of the replay.
    now_op, charge_op, wait_op = execution["steps"][:3]
    assert result["now"] == now_op["value"] <= charge_op["started"]
    assert wait_op["ended"] >= result["now"] + 0.5
    assert steps_ran(store_env, "charge") == 1 and steps_ran(store_env, "ship") == 1


async def test_the_same_name_twice_is_one_execution(
    serve: Callable[..., Proc], store_env: dict[str, str]
) -> None:
    srv = serve(FLOW, "--workers", "2", env=store_env)
    first, second = await asyncio.gather(
        invoke(srv.port, {"amount": 3, "wait": 0.5}, {NAME: "twice"}),
        invoke(srv.port, {"amount": 3, "wait": 0.5}, {NAME: "twice"}),
    )
    assert first.status == second.status == 200
    assert first.json() == second.json()
    later = await invoke(srv.port, {"amount": 99}, {NAME: "twice"})
    assert later.json() == first.json()  # finished: its result, whatever the new payload
    assert steps_ran(store_env, "charge") == 1 and steps_ran(store_env, "ship") == 1


async def test_a_killed_execution_resumes_and_its_first_step_runs_once(
    serve: Callable[..., Proc], store_env: dict[str, str], tmp_path: Path
) -> None:
    srv = serve(FLOW, "--workers", "1", env=store_env)
    stall = tmp_path / "stall"
    event = {"wait": 0.1, "stall": str(stall)}
    cut = asyncio.ensure_future(invoke(srv.port, event, {NAME: "crash"}))
    end = time.monotonic() + 10
    while not (stall.exists() and stall.read_text()) and time.monotonic() < end:
        await asyncio.sleep(0.02)
    victim = int(stall.read_text())  # the worker running the second step, stalled in it
    os.kill(victim, signal.SIGKILL)
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await cut
    # A new worker resumes it once the lease expires; asking again attaches to it.
    answer = await invoke(srv.port, {}, {NAME: "crash"})
    assert answer.status == 200
    result: Any = answer.json()
    assert result["shipped"] is True
    assert steps_ran(store_env, "charge") == 1
    ships = [pid for step, pid in runs(store_env) if step == "ship"]
    assert len(ships) == 2 and ships[0] == victim and ships[1] != victim
    ship = shown(srv, "crash")["steps"][-1]
    assert ship["name"] == "ship" and ship["attempts"] == 2 and ship["failures"] == 0


async def test_changed_code_is_refused_by_the_pin_and_fails_as_nondeterministic(
    serve: Callable[..., Proc], sqlite_env: dict[str, str]
) -> None:
    started = serve(
        "tests.apps.durable_apps.flow_ab", "--workers", "1", "--timeout", "1", env=sqlite_env
    )
    # The wait ends after this invocation's deadline: 202 at once, with the name.
    accepted = await invoke(started.port, {"wait": 1.5}, {NAME: "changed"})
    assert accepted.status == 202
    assert accepted.json() == {"executionName": "changed", "status": "WAITING"}
    started.stop()
    # The code changed (its steps in another order). Pinned: refused, left as it was.
    pinned = serve(
        "tests.apps.durable_apps.flow_ba", "--workers", "1", "--timeout", "1", env=sqlite_env
    )
    end = time.monotonic() + 10
    answer = await invoke(pinned.port, {}, {NAME: "changed"})
    while answer.status == 202 and time.monotonic() < end:  # until the wait is over
        answer = await invoke(pinned.port, {}, {NAME: "changed"})
    assert error_type(answer) == "Durable.VersionMismatchError"
    assert shown(pinned, "changed")["status"] == "WAITING"
    pinned.stop()
    # Allowed: the replay asks for step "b" where "a" was recorded, and the execution fails.
    allowed = serve(
        "tests.apps.durable_apps.flow_ba",
        "--workers",
        "1",
        env=sqlite_env | {"WORKER_DURABLE_VERSION_POLICY": "allow"},
    )
    failed = await until_status(allowed, "changed", "FAILED")
    assert failed["error"]["errorType"] == "Durable.NonDeterministicError"
    assert "step 'b'" in failed["error"]["errorMessage"]
    assert "step 'a'" in failed["error"]["errorMessage"]
    again = await invoke(allowed.port, {}, {NAME: "changed"})
    assert error_type(again) == "Durable.NonDeterministicError"
    assert [step for step, _ in runs(sqlite_env)] == ["a"]  # nothing ran out of order


async def test_a_wait_holds_no_slot(serve: Callable[..., Proc], sqlite_env: dict[str, str]) -> None:
    srv = serve(FLOW, "--workers", "1", "--concurrency", "2", env=sqlite_env)
    waiting = asyncio.ensure_future(invoke(srv.port, {"wait": 2}, {NAME: "patient"}))
    await until_status(srv, "patient", "WAITING")
    # Both slots are free while it waits: two calls hold both at the same time.
    holds = await asyncio.gather(invoke(srv.port, {"hold": 2}), invoke(srv.port, {"hold": 2}))
    assert [h.json() for h in holds] == [{"together": True}] * 2
    assert not waiting.done()
    answer = await waiting
    assert answer.status == 200
    assert (answer.json())["shipped"] is True  # type: ignore[index]


async def test_the_cli_and_the_admin_endpoint_show_an_execution(
    serve: Callable[..., Proc], sqlite_env: dict[str, str]
) -> None:
    srv = serve(FLOW, "--workers", "1", "--timeout", "1", env=sqlite_env)
    accepted = await invoke(srv.port, {"wait": 1.2}, {NAME: "shown"})
    assert accepted.status == 202
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "AWS_"))}
    cli = subprocess.run(
        [sys.executable, "-m", "worker", "executions", "show", "shown"],
        cwd=ROOT,
        env=environ | sqlite_env | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=30,
    )
    assert cli.returncode == 0, cli.stderr
    printed = orjson.loads(cli.stdout)
    assert printed["status"] == "WAITING" and printed["wakeAt"] is not None
    assert [s["name"] for s in printed["steps"]] == ["now", "charge", "wait"]
    assert printed["steps"][1]["durationMs"] >= 0
    done = await until_status(srv, "shown", "SUCCEEDED")
    assert done["result"]["shipped"] is True
    answer = await invoke(srv.port, {}, {NAME: "shown"})
    assert answer.json() == done["result"]
    assert srv.admin("/_worker/executions/missing")[0] == 404
    missing = subprocess.run(
        [sys.executable, "-m", "worker", "executions", "show", "missing"],
        cwd=ROOT,
        env=environ | sqlite_env | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=30,
    )
    assert missing.returncode == 1 and b"missing" in missing.stderr


async def test_a_queue_message_resumes_the_wait_in_another_environment(
    serve: Callable[..., Proc],
    sqs_worker: Callable[..., Proc],
    moto: Moto,
    sqlite_env: dict[str, str],
) -> None:
    queue = moto.client("sqs").create_queue(QueueName=f"durable-{uuid.uuid4().hex[:8]}")
    env = (
        sqlite_env
        | moto.env
        | {
            "WORKER_DURABLE_QUEUE_URL": queue["QueueUrl"],
            "WORKER_DURABLE_LEASE": "30",  # no sweep steps in: only the queue resumes it
            "WORKER_SQS_WAIT_SECONDS": "1",
        }
    )
    srv = serve(FLOW, "--workers", "1", env=env)
    consumer = sqs_worker(FLOW, queue["QueueUrl"], "--workers", "1", env=env)
    answer = await invoke(srv.port, {"wait": 1}, {NAME: "queued"})
    assert answer.status == 200 and (answer.json())["shipped"] is True  # type: ignore[index]
    (charge_pid,), (ship_pid,) = (
        [pid for step, pid in runs(env) if step == name] for name in ("charge", "ship")
    )
    assert charge_pid in srv.children() and ship_pid in consumer.children()


# -- in this process: the replay itself ---------------------------------------------------


@pytest.fixture
async def memory_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[Path]:
    monkeypatch.setenv("WORKER_DURABLE_STORE", "memory:")
    monkeypatch.setenv("DURABLE_LOG", str(tmp_path / "runs"))
    state.reset()
    clients = aws.reset(4)
    yield tmp_path / "runs"
    await clients.close()
    state.reset()


def context(request_id: str) -> LambdaContext:
    job = Job({}, None, request_id)
    return LambdaContext(function(Config(), "/tmp"), job, time.time() + 30, "sprinter")


async def test_a_replay_returns_recorded_results_without_running(memory_store: Path) -> None:
    ctx = context("replayed")
    pending = await apps.flow({"wait": 0.05}, ctx)
    # No service here to park on: the status, as Lambda-mode callers get it.
    assert pending == {"executionName": "replayed", "status": "WAITING"}
    await asyncio.sleep(0.06)
    resumed = await apps.flow({"worker.durable.resume": "replayed"}, ctx)
    assert resumed is None  # a resume answers nobody: its result is the execution's
    result = await apps.flow({}, ctx)
    assert result["shipped"] is True
    assert [line.split()[0] for line in memory_store.read_text().splitlines()] == [
        "charge",
        "ship",
    ]


async def test_a_step_retries_then_its_failure_is_the_execution_s(memory_store: Path) -> None:
    attempts: list[int] = []

    async def flaky(fail_times: int) -> int:
        attempts.append(1)
        if len(attempts) <= fail_times:
            raise ConnectionError(f"attempt {len(attempts)}")
        return len(attempts)

    @durable
    async def retried(event: Any, ctx: Any) -> Any:
        return await ctx.step("flaky", flaky, event["fail"], retries=2)

    assert await retried({"fail": 2}, context("retried")) == 3
    attempts.clear()
    with pytest.raises(Durable.StepFailedError) as failed:
        await retried({"fail": 5}, context("exhausted"))
    assert failed.value.step_error_type == "ConnectionError"
    assert len(attempts) == 3
    # Asking again answers the stored failure; nothing runs.
    with pytest.raises(Exception) as again:
        await retried({"fail": 0}, context("exhausted"))
    assert getattr(again.value, "error_type", "") == "Durable.StepFailedError"
    assert len(attempts) == 3


async def test_swallowing_the_nondeterministic_error_still_fails(memory_store: Path) -> None:
    order = ["one", "two"]

    @durable
    async def fickle(event: Any, ctx: Any) -> Any:
        try:
            first = await ctx.step(order[0], step_a_or_b, order[0])
            await ctx.wait(0.01)
            return [first, await ctx.step(order[1], step_a_or_b, order[1])]
        except Exception:
            return "swallowed"

    async def step_a_or_b(name: str) -> str:
        return name

    assert (await fickle({}, context("fickle")))["status"] == "WAITING"
    order.reverse()
    await asyncio.sleep(0.02)
    await fickle({"worker.durable.resume": "fickle"}, context("fickle"))
    with pytest.raises(Durable.NonDeterministicError):
        await fickle({}, context("fickle"))
    with pytest.raises(Exception) as again:
        await fickle({}, context("fickle"))
    assert getattr(again.value, "error_type", "") == "Durable.NonDeterministicError"


async def test_recorded_values_are_the_same_on_replay(memory_store: Path) -> None:
    @durable
    async def values(event: Any, ctx: Any) -> Any:
        seen = [ctx.now(), ctx.random(), ctx.uuid()]
        await ctx.wait(0.01)
        return [*seen, ctx.replaying]

    await values({}, context("values"))
    first = (await state.durable_store().get("values")).ops  # type: ignore[union-attr]
    await asyncio.sleep(0.02)
    await values({"worker.durable.resume": "values"}, context("values"))
    result = await values({}, context("values"))
    assert result[:3] == [orjson.loads(op.value) for op in first[:3]]  # type: ignore[arg-type]
    assert result[3] is False  # past the recorded operations: no longer replaying


def test_a_sync_handler_cannot_be_durable() -> None:
    with pytest.raises(TypeError, match="async"):
        durable(lambda event, ctx: None)  # type: ignore[arg-type]
