"""SnapStart's lifecycle (`worker.snapstart`) through `worker emulate --snapstart`: hooks
before the snapshot and after the restore in every process, before any `/next`; failing
hooks reported as awslambdaric reports them; connections closed for the snapshot and
reopened after it; a restored model that is not loaded again."""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from tests.client import invoke
from tests.conftest import Moto, Proc
from worker import jobs, snapstart

APP = "tests.apps.snapstart_apps"
BEFORE = ["before_snapshot:first", "before_snapshot"]  # reverse order of registration
AFTER = "after_restore:db:2"


async def until(done: Callable[[], bool], what: str, proc: Proc, timeout: float = 60.0) -> None:
    """Wait for the state `done` proves (polled), or fail with the environment's log."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not done():
        if loop.time() > end:
            raise AssertionError(f"{what}: not seen in {timeout:.0f}s\n{proc.logs()[-4000:]}")
        await asyncio.sleep(0.02)


def hook_runs(record: Path) -> dict[int, list[str]]:
    """Each process's hook runs, in order, from the app's record file."""
    runs: dict[int, list[str]] = {}
    if record.exists():
        for line in record.read_text().splitlines():
            entry = json.loads(line)
            runs.setdefault(entry["pid"], []).append(entry["hook"])
    return runs


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def established(pid: int) -> list[int]:
    """The remote ports of the process's established TCP connections."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "01" and fields[9] in inodes:  # 01: ESTABLISHED
                ports.append(int(fields[2].rsplit(":", 1)[1], 16))
    return ports


def log_lines(proc: Proc) -> list[dict[str, Any]]:
    lines = []
    for line in proc.logs().splitlines():
        if line.startswith("{"):
            try:
                lines.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
    return lines


def messages(proc: Proc) -> list[str]:
    return [str(line.get("message", "")) for line in log_lines(proc)]


def runtime_api_port(proc: Proc) -> int:
    emulating = next(line for line in log_lines(proc) if line.get("message") == "emulating")
    return int(str(emulating["runtime_api"]).rsplit(":", 1)[1])


def tree(emu: Proc) -> tuple[int, list[int]]:
    """The runtime's supervisor and its worker processes."""
    (supervisor,) = [
        pid
        for pid in emu.children()
        if b"lambda" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    ]  # not the emulator's `criu check`
    return supervisor, children(supervisor)


async def test_hooks_run_around_the_restore_in_every_process_before_any_next(
    emulate: Any, tmp_path: Path
) -> None:
    record, gate = tmp_path / "hooks.jsonl", tmp_path / "gate"
    env = {"SNAPSTART_RECORD": str(record), "SNAPSTART_GATE": str(gate), "WORKER_PROCESSES": "2"}
    emu = emulate(f"{APP}.handler", "--snapstart", "--concurrency", "2", env=env)
    # Ready: the runtime waits in restore/next, held by the emulator as the snapshot.
    supervisor, workers = tree(emu)
    assert len(workers) == 2
    runs = hook_runs(record)
    assert runs == {pid: BEFORE for pid in (supervisor, *workers)}  # none after-restore yet
    # Quiet for the snapshot: no worker holds a connection; the supervisor only its
    # restore/next.
    assert all(established(pid) == [] for pid in workers)
    assert established(supervisor) == [runtime_api_port(emu)]

    call = asyncio.ensure_future(invoke(emu.port, {}))  # an invoke restores the environment
    await until(
        lambda: all(AFTER in runs for runs in hook_runs(record).values()),
        "after-restore hooks in every process",
        emu,
    )
    # Every process is inside its after-restore hook (held at the gate): nothing has
    # polled, and the invoke waits.
    assert "the runtime's first /next after the restore" not in messages(emu)
    assert not call.done()
    gate.touch()
    answer = await call
    assert answer.status == 200 and answer.json()["runs"] == [*BEFORE, AFTER]  # type: ignore[index]
    assert answer.json()["pid"] in workers  # type: ignore[index]
    assert hook_runs(record) == {pid: [*BEFORE, AFTER] for pid in (supervisor, *workers)}

    said = messages(emu)
    order = [
        "ready for the snapshot",
        "snapshot taken: the runtime waits in restore/next until the first invoke",
        "restoring: restore/next returns",
        "restored",
        "the runtime's first /next after the restore",
    ]
    assert [m for m in said if m in order] == order
    assert not any(m.startswith("refused a /next") for m in said)


async def test_a_failing_before_snapshot_hook_is_an_init_error(
    emulate: Any, tmp_path: Path
) -> None:
    emu = emulate(f"{APP}.handler", "--snapstart", env={"SNAPSTART_FAIL": "before"}, ready=False)
    await until(lambda: "the runtime exited" in messages(emu), "the runtime's exit", emu)
    logs = emu.logs()
    assert "runtime init failed (Runtime.BeforeSnapshotError): the pool would not close" in logs
    assert "snapshot taken" not in logs
    answer = await invoke(emu.port, {})
    assert answer.headers["x-amz-function-error"] == "Unhandled"
    body = answer.json()
    assert isinstance(body, dict)
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "the pool would not close"
    assert any("snapstart_apps.py" in frame for frame in body["stackTrace"])


async def test_a_failing_after_restore_hook_is_reported_to_restore_error(
    emulate: Any, tmp_path: Path
) -> None:
    emu = emulate(f"{APP}.handler", "--snapstart", env={"SNAPSTART_FAIL": "after"})
    answer = await invoke(emu.port, {})  # restores; the hook fails; the invoke sees it
    assert answer.headers["x-amz-function-error"] == "Unhandled"
    body = answer.json()
    assert isinstance(body, dict)
    # What the runtime posted, in Lambda's shape (the front adds the invoke's requestId).
    assert {"errorMessage", "errorType", "stackTrace"} <= set(body)
    assert body["errorType"] == "ConnectionError"
    assert body["errorMessage"] == "the database did not answer"
    assert any("in reconnect" in frame for frame in body["stackTrace"])
    await until(lambda: "the runtime exited" in messages(emu), "the runtime's exit", emu)
    said = messages(emu)
    assert (
        "runtime restore failed: Runtime.AfterRestoreError: ConnectionError: "
        "the database did not answer" in said
    )
    assert "the runtime's first /next after the restore" not in said
    again = (await invoke(emu.port, {})).json()  # every invoke sees it, as on Lambda
    assert isinstance(again, dict) and again["errorType"] == "ConnectionError"


async def test_pooled_clients_are_closed_for_the_snapshot_and_reopened_after(
    emulate: Any, moto: Moto, tmp_path: Path
) -> None:
    moto.client("s3").create_bucket(Bucket="snapstart-restored")
    record = tmp_path / "hooks.jsonl"
    env = {**moto.env, "SNAPSTART_PRIME": "s3", "SNAPSTART_RECORD": str(record)}
    emu = emulate(f"{APP}.s3_handler", "--snapstart", env=env)
    supervisor, workers = tree(emu)
    # The priming hook used a pooled client (connected to moto) in every process; the
    # runtime's own hook closed it before the snapshot.
    assert all("prime" in runs for runs in hook_runs(record).values())
    assert all(moto.port not in established(pid) for pid in (supervisor, *workers))
    answer = (await invoke(emu.port, {})).json()
    assert isinstance(answer, dict)
    assert "snapstart-restored" in answer["buckets"]
    assert answer["reused"] is False  # a client made again after the restore


async def test_a_restored_minilm_function_answers_without_loading_the_model_again(
    emulate: Any,
) -> None:
    """The model is loaded (in the model host) during init; the restored environment's
    first invocation is answered by it, through a connection made again after the
    restore, with no second load."""
    env = {"WORKER_MODEL_HOST": "process"}
    emu = emulate("handlers.embed.handler", "--snapstart", env=env)
    loads = lambda: [m for m in messages(emu) if m == "model loaded"]  # noqa: E731
    assert len(loads()) == 1
    answer = (await invoke(emu.port, {"text": "restored from a snapshot"})).json()
    assert isinstance(answer, dict)
    assert answer["dimensions"] == 384 and len(answer["embedding"]) == 384
    assert "restored" in messages(emu)
    assert len(loads()) == 1


async def test_after_restore_reseeds_random_and_request_ids() -> None:
    """Environments restored from one snapshot must not draw the same numbers or ids."""
    random.seed(7)
    before = random.getstate()
    prefix = jobs.new_request_id()[:24]
    await snapstart._call_all_async(snapstart._after)
    assert random.getstate() != before
    assert jobs.new_request_id()[:24] != prefix


def test_lifecycle_only_in_lambda_mode_when_the_platform_says_snap_start() -> None:
    from worker.config import Config

    assert snapstart.start(Config(mode="lambda", initialization_type="snap-start")) is not None
    assert snapstart.start(Config(mode="lambda", initialization_type="on-demand")) is None
    assert snapstart.start(Config(mode="serve", initialization_type="snap-start")) is None


def test_function_hooks_run_in_awslambdarics_order_and_async_ones_run_too() -> None:
    ran: list[str] = []

    async def later() -> None:
        ran.append("async")

    hooks: list[snapstart.Hook] = [
        (ran.append, ("first",), {}),
        (later, (), {}),
        (ran.append, ("last",), {}),
    ]
    snapstart._call_all(hooks[::-1])  # before the snapshot: reverse order of registration
    assert ran == ["last", "async", "first"]
