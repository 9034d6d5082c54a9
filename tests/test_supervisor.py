"""The supervisor with real processes: init phase, restarts, scratch cleanup, drain."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import orjson
import pytest

from tests.client import invoke


def wait_for(predicate, what: str, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    """Poll for the state that proves a step happened (bounded, never a fixed sleep)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_ready_is_503_until_the_init_phase_is_done(serve, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    srv = serve("tests.apps.slow_init.handler", env={"SLOW_INIT_GATE": str(gate)}, ready=False)
    wait_for(lambda: _answers(srv, "/_worker/health") == 200, "health during init")
    assert srv.get("/_worker/ready")[0] == 503
    status, body = srv.get("/anything")
    assert status == 503 and b"initializing" in body
    gate.touch()
    srv.wait_ready()
    assert asyncio.run(invoke(srv.port)).json() == {"initialised": True}


def _answers(srv, path: str) -> int:  # type: ignore[no-untyped-def]
    try:
        return int(srv.get(path, timeout=1.0)[0])
    except OSError:
        return 0


@pytest.mark.parametrize(
    ("handler", "error_type"),
    [
        ("no_such_module_xyz.handler", "Runtime.ImportModuleError"),
        ("tests.apps.basic.nothing_here", "Runtime.HandlerNotFound"),
        ("tests.apps.broken_syntax.handler", "Runtime.UserCodeSyntaxError"),
        ("nodot", "Runtime.MalformedHandlerName"),
    ],
)
def test_init_errors_exit_non_zero_with_the_lambda_error(
    serve, handler: str, error_type: str
) -> None:
    srv = serve(handler, ready=False)
    assert srv.proc.wait(timeout=30) == 1
    # As awslambdaric reports it (Text, the default format): the platform's warning, then
    # the error report, its lines joined by "\r" so it stays one event.
    lines = srv.logs().splitlines()
    warning = next(i for i, x in enumerate(lines) if "LAMBDA_WARNING: Unhandled" in x)
    assert lines[warning].startswith("[WARNING]\t")
    report = next(x for x in lines if x.startswith("[ERROR] "))
    assert report.startswith(f"[ERROR] {error_type}: ") and lines.index(report) > warning


def test_an_init_error_in_json_format_is_one_json_report(serve) -> None:
    srv = serve("no_such_module_xyz.handler", env={"AWS_LAMBDA_LOG_FORMAT": "JSON"}, ready=False)
    assert srv.proc.wait(timeout=30) == 1
    reports = [
        orjson.loads(x)
        for x in srv.logs().splitlines()
        if x.startswith("{") and '"errorType"' in x and '"logger"' not in x
    ]
    assert [r["errorType"] for r in reports] == ["Runtime.ImportModuleError"]
    assert reports[0]["level"] == "ERROR" and reports[0]["stackTrace"] == []


def test_init_timeout_is_a_clear_init_error(serve, tmp_path: Path) -> None:
    srv = serve(
        "tests.apps.slow_init.handler",
        "--init-timeout",
        "0.5",
        env={"SLOW_INIT_GATE": str(tmp_path / "never")},
        ready=False,
    )
    assert srv.proc.wait(timeout=30) == 1
    assert "Runtime.InitTimeout" in srv.logs()


def test_a_killed_worker_is_replaced_and_its_tmpdir_removed(serve) -> None:
    srv = serve("tests.apps.basic.whoami", "--workers", "2")
    seen: dict[int, str] = {}
    wait_for(lambda: len(srv.children()) == 2, "two workers")
    for _ in range(500):  # new connections land on either worker
        info = asyncio.run(invoke(srv.port)).json()
        seen[info["pid"]] = info["tmpdir"]  # type: ignore[index]
        if len(seen) == 2:
            break
    assert len(seen) == 2
    victim, tmpdir = next(iter(seen.items()))
    assert os.path.isdir(tmpdir) and os.stat(tmpdir).st_mode & 0o777 == 0o700
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in srv.children() and len(srv.children()) == 2, "a replacement")
    wait_for(lambda: not os.path.exists(tmpdir), "the dead worker's TMPDIR to go")
    replacement = (set(srv.children()) - set(seen)).pop()
    served: set[int] = set()
    for _ in range(500):
        served.add(asyncio.run(invoke(srv.port)).json()["pid"])  # type: ignore[index]
        if replacement in served:
            break
    assert replacement in served
    assert "worker died, replacing it" in srv.logs()


async def test_sigterm_lets_50_in_flight_requests_finish_then_exits_0(
    serve, tmp_path: Path
) -> None:
    # 64 slots per process: all 50 run at once however the kernel spreads the connections.
    srv = serve("tests.apps.basic.gate", "--workers", "2", "--concurrency", "128")
    calls = [asyncio.ensure_future(invoke(srv.port, {"dir": str(tmp_path)})) for _ in range(50)]
    while len(list(tmp_path.glob("started-*"))) < 50:
        await asyncio.sleep(0.01)
    srv.proc.send_signal(signal.SIGTERM)
    # Draining: the listening socket closes, so new connections are refused.
    while True:
        try:
            await invoke(srv.port)
        except OSError:
            break
        await asyncio.sleep(0.01)
    (tmp_path / "release").touch()
    answers = await asyncio.gather(*calls)
    assert [a.status for a in answers] == [200] * 50
    assert all("done" in a.json() for a in answers)  # type: ignore[operator]
    assert await asyncio.to_thread(srv.proc.wait, 30) == 0


async def test_a_sigterm_taken_by_another_thread_still_drains(serve, tmp_path: Path) -> None:
    trigger = tmp_path / "sigterm"
    srv = serve(
        "tests.apps.threaded_init.handler",
        "--workers",
        "2",
        env={"THREAD_SIGTERM": str(trigger)},
    )
    call = asyncio.ensure_future(invoke(srv.port, {"dir": str(tmp_path)}))
    while not list(tmp_path.glob("started-*")):
        await asyncio.sleep(0.01)
    trigger.touch()  # the init phase's thread, not the main one, receives the SIGTERM
    while "draining" not in srv.logs():
        assert srv.proc.poll() is None, "killed by the signal instead of draining"
        await asyncio.sleep(0.01)
    (tmp_path / "release").touch()
    assert (await call).status == 200  # the in-flight request was let finish
    assert await asyncio.to_thread(srv.proc.wait, 30) == 0


async def test_drain_past_grace_still_answers_every_accepted_request(serve, tmp_path: Path) -> None:
    srv = serve("tests.apps.basic.gate", "--workers", "1", "--grace", "1")
    call = asyncio.ensure_future(invoke(srv.port, {"dir": str(tmp_path)}))
    while not list(tmp_path.glob("started-*")):
        await asyncio.sleep(0.01)
    srv.proc.send_signal(signal.SIGTERM)
    ans = await call  # never released: the grace period runs out
    assert ans.headers["x-amz-function-error"] == "Unhandled"
    assert ans.json()["errorType"] == "Runtime.ExitError"  # type: ignore[index]
    assert await asyncio.to_thread(srv.proc.wait, 30) == 0
