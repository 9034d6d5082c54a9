"""The admin listener: the operator's endpoints off the service port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.client import invoke, request
from tests.conftest import ROOT, _environ
from tests.ports import free_port
from worker.config import Config


async def test_the_service_port_answers_health_and_ready_and_nothing_of_the_operators(
    serve,
) -> None:
    srv = serve("handlers.echo.handler", "--workers", "1")
    assert (await invoke(srv.port, {"n": 1})).status == 200
    assert (await request(srv.port, "GET", "/_worker/health")).status == 200
    assert (await request(srv.port, "GET", "/_worker/ready")).status == 200
    for path in ("/_worker/metrics", "/_worker/stats", "/_worker/dashboard"):
        # On the service port the path is the function's, like any other: the echo
        # handler gets it as a proxy event, and no figure of ours is in the answer.
        answer = await request(srv.port, "GET", path)
        assert b"worker_invocations_total" not in answer.body
        assert b"<canvas" not in answer.body
        assert orjson.loads(answer.body)["rawPath"] == path


async def test_the_admin_listener_serves_metrics_stats_and_the_dashboard(serve) -> None:
    srv = serve("handlers.echo.handler", "--workers", "2")
    assert (await invoke(srv.port, {"n": 1})).status == 200
    metrics = await request(srv.admin_port, "GET", "/_worker/metrics")
    assert metrics.status == 200 and b"worker_invocations_total" in metrics.body
    stats = await request(srv.admin_port, "GET", "/_worker/stats")
    assert stats.status == 200 and orjson.loads(stats.body)
    page = await request(srv.admin_port, "GET", "/_worker/dashboard")
    assert page.status == 200 and b"<canvas" in page.body
    assert (await request(srv.admin_port, "GET", "/_worker/health")).status == 200


async def test_no_invocation_runs_on_the_admin_listener(serve) -> None:
    srv = serve("handlers.echo.handler", "--workers", "1")
    answer = await invoke(srv.admin_port, {"n": 1})
    assert answer.status == 404
    assert answer.json()["errorType"] == "ResourceNotFoundException"
    other = await request(srv.admin_port, "GET", "/items/1")
    assert other.status == 404
    # The connection and the server go on.
    assert (await request(srv.admin_port, "GET", "/_worker/metrics")).status == 200


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process `pid` listens on (its sockets' inodes in /proc/net/tcp)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


async def test_admin_port_0_turns_the_listener_off(serve) -> None:
    on = serve("handlers.echo.handler", "--workers", "1")
    assert listening_ports(on.pid) == {on.port, on.admin_port}
    off = serve("handlers.echo.handler", "--workers", "1", env={"WORKER_ADMIN_PORT": "0"})
    assert (await invoke(off.port, {"n": 1})).status == 200
    assert listening_ports(off.pid) == {off.port}


def test_a_busy_admin_port_ends_the_start_with_a_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _environ({"WORKER_ADMIN_PORT": str(port)})
        service = str(free_port())
        run = subprocess.run(
            [sys.executable, "-m", "worker", "serve", "handlers.echo.handler", "--port", service],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port} for the admin endpoints" in run.stderr + run.stdout


def test_the_admin_port_is_a_setting_with_a_range() -> None:
    assert Config().admin_port == 8081 and Config().admin_host == "127.0.0.1"
    assert Config.from_env({"WORKER_ADMIN_PORT": "9100"}).admin_port == 9100
    with pytest.raises(ValueError, match="admin_port must be 0-65535"):
        Config.from_env({"WORKER_ADMIN_PORT": "70000"})
