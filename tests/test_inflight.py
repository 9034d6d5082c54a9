"""Invocations a dead worker held: the shared table, and their answers."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import orjson

from tests.client import invoke
from worker.inflight import Inflight, exit_error


def test_a_childs_holds_are_read_by_its_parent() -> None:
    table = Inflight(4)
    pid = os.fork()
    if pid == 0:  # the worker: holds two, releases one, dies without a word
        table.hold(0, b"aaaa-1")
        table.hold(2, b"cccc-3")
        table.hold(3, b"dddd-4")
        table.release(3)
        os._exit(9)
    os.waitpid(pid, 0)
    assert sorted(table.held()) == ["aaaa-1", "cccc-3"]
    table.close()


def test_an_id_longer_than_a_slot_is_cut_not_spilled() -> None:
    table = Inflight(2)
    table.hold(0, b"x" * 200)
    table.hold(1, b"short")
    assert table.held() == ["x" * 63, "short"]


def test_the_exit_error_is_lambdas() -> None:
    err = exit_error("rid-1", "exit status 3")
    assert err.error_type == "Runtime.ExitError"
    assert err.message == "RequestId: rid-1 Error: Runtime exited with error: exit status 3"


async def test_lambda_mode_answers_a_dead_workers_invocations_with_exit_error(
    emulate, tmp_path: Path
) -> None:
    emu = emulate("tests.apps.basic.gate_or_exit", "--concurrency", "8", "--timeout", "120")
    held = [asyncio.ensure_future(invoke(emu.port, {"dir": str(tmp_path)})) for _ in range(5)]
    while len(list(tmp_path.glob("started-*"))) < 5:
        await asyncio.sleep(0.01)
    dying = await invoke(emu.port, {"exit": 3})
    answers = [await call for call in held]
    for answer in [dying, *answers]:
        body = answer.json()
        assert answer.headers["x-amz-function-error"] == "Unhandled"
        assert body["errorType"] == "Runtime.ExitError"  # type: ignore[index]
        assert re.fullmatch(
            r"RequestId: \S+ Error: Runtime exited with error: exit status 3",
            body["errorMessage"],  # type: ignore[index]
        )
    # The environment lives on: a fresh worker takes the next invocation.
    (tmp_path / "release").touch()
    after = await invoke(emu.port, {"dir": str(tmp_path)})
    assert after.status == 200 and "done" in after.json()  # type: ignore[operator]
    assert "a worker died holding invocations" in emu.logs()


async def test_serve_counts_the_invocations_that_died_with_a_worker(serve, tmp_path: Path) -> None:
    srv = serve("tests.apps.basic.gate_or_exit", "--workers", "1", "--concurrency", "8")
    held = [asyncio.ensure_future(invoke(srv.port, {"dir": str(tmp_path)})) for _ in range(3)]
    while len(list(tmp_path.glob("started-*"))) < 3:
        await asyncio.sleep(0.01)
    # The supervisor reads the worker's last snapshot: wait for one that shows all three.
    snapshots = f"runtime-worker-{srv.pid}-*/metrics/worker-0.json"
    while max((_in_flight(path) for path in Path("/tmp").glob(snapshots)), default=0) < 3:
        await asyncio.sleep(0.05)
    dying = asyncio.ensure_future(invoke(srv.port, {"exit": 1}))
    for call in [dying, *held]:
        try:
            answer = await call
        except (ConnectionError, asyncio.IncompleteReadError):
            continue  # the connection ended with the process: what serve documents
        raise AssertionError(f"an answer came from a dead worker: {answer}")
    lost = 0.0
    while lost < 3:
        text = srv.admin("/_worker/metrics")[1].decode()
        match = re.search(r"^worker_invocations_lost_total (\S+)$", text, re.M)
        lost = float(match.group(1)) if match else 0.0
        await asyncio.sleep(0.05)
    assert lost in (3.0, 4.0)  # the three held, and the one exiting if the snapshot had it


def _in_flight(snapshot: Path) -> float:
    try:
        gauges = orjson.loads(snapshot.read_bytes()).get("gauges", {})
    except (OSError, orjson.JSONDecodeError):
        return 0.0
    return float(sum(v for k, v in gauges.items() if k.startswith("worker_in_flight|")))
