"""A cold start's phases: one init line per environment (and EMF in Lambda mode), and
`worker init-profile HANDLER`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from tests.client import invoke
from tests.conftest import ROOT, Proc
from worker import initprofile

PHASES = ["runtime_import", "handler_import", "model_load", "worker_start"]


def records(proc: Proc) -> list[dict[str, Any]]:
    out = []
    for line in proc.logs().splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def wait_for(done: Callable[[], bool], what: str, proc: Proc, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < end, f"no {what}:\n{proc.logs()[-3000:]}"
        time.sleep(0.05)


def init_lines(proc: Proc) -> list[dict[str, Any]]:
    return [r for r in records(proc) if r.get("message") == "init"]


def test_a_start_logs_its_phases_once_and_a_replacement_does_not(
    serve: Callable[..., Proc],
) -> None:
    srv = serve("handlers.echo.handler", "--workers", "2")
    wait_for(lambda: len(init_lines(srv)) == 1, "init line", srv)
    line = init_lines(srv)[0]
    assert list(line["phases_ms"]) == PHASES
    assert all(ms >= 0 for ms in line["phases_ms"].values())
    assert line["phases_ms"]["runtime_import"] > 0  # Python's start at least
    assert line["total_ms"] == round(sum(line["phases_ms"].values()), 1)
    # A worker killed and replaced is not a cold start: no second line.
    started = lambda: [r for r in records(srv) if r.get("message") == "worker started"]  # noqa: E731
    wait_for(lambda: len(started()) == 2, "two workers", srv)
    os.kill(srv.children()[0], signal.SIGKILL)
    wait_for(lambda: len(started()) == 3, "a replacement worker", srv)
    assert len(init_lines(srv)) == 1


async def test_lambda_mode_sends_the_phases_as_emf(emulate: Callable[..., Proc]) -> None:
    emu = emulate("handlers.echo.handler")
    answer = await invoke(emu.port, {"hello": 1})
    assert answer.status == 200
    wait_for(lambda: len(init_lines(emu)) == 1, "init line", emu)

    def init_metrics() -> list[dict[str, Any]]:
        return [r for r in records(emu) if "InitTotal" in r]

    wait_for(lambda: bool(init_metrics()), "the init EMF line", emu)
    emf = init_metrics()[0]
    names = {m["Name"] for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"InitRuntimeImport", "InitHandlerImport", "InitModelLoad", "InitWorkerStart"} <= names
    assert emf["InitTotal"] == [init_lines(emu)[0]["total_ms"]]


def run_profile(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "AWS_"))}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "worker", "init-profile", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_init_profile_prints_the_phases_and_the_slowest_imports() -> None:
    done = run_profile("handlers.echo.handler", "--top", "5")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:5]] == [*PHASES[:3], "total"]
    own = lines.index(next(line for line in lines if "runtime's own modules" in line))
    listed = [line.split()[-1] for line in lines[own + 1 : own + 6]]
    assert len(listed) == 5 and all(name.startswith("worker") for name in listed)
    assert any("everything else" in line for line in lines)


def test_init_profile_names_a_handler_that_does_not_import() -> None:
    done = run_profile("tests.apps.no_such_module.handler")
    assert done.returncode == 1
    assert "Unable to import module 'tests.apps.no_such_module'" in done.stderr


def test_importtime_lines_are_parsed_and_header_skipped() -> None:
    text = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       120 |        120 |   _io\n"
        "import time:      2000 |       5000 | worker.config\n"
        "not an import line\n"
    )
    assert initprofile.parse_importtime(text) == [("_io", 120, 120), ("worker.config", 2000, 5000)]
