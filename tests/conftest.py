"""Fixtures: an in-process HTTP front on the test's loop, and real `worker serve` processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ports import free_port
from worker import admin
from worker import handler as handlers
from worker.config import Config
from worker.lanes import Lane, Lanes
from worker.pool import Pool
from worker.sources.http import Front
from worker.telemetry.metrics import Metrics, merge, render

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def no_scratch_left_behind() -> Iterator[None]:
    """Tests kill supervisors (SIGKILL leaves their scratch roots): sweep them at the end."""
    yield
    from worker import scratch

    scratch.sweep("/tmp")  # where supervisors make them


def wait_answering(
    url: str, proc: subprocess.Popen[bytes], describe: Callable[[], str], timeout: float = 30.0
) -> None:
    """Poll `url` until it answers 2xx (the state that proves readiness); fail at once if
    `proc` exits, or after `timeout`, with `describe()` (its log) in the message."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"exited {proc.returncode} before {url} answered:\n{describe()}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s:\n{describe()}")


def gone(pid: int) -> bool:
    """Whether process `pid` has ended (a zombie has: only its parent's reaping is left)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


class InProc:
    """The HTTP front, a pool and one lane on the test's own loop (no fork)."""

    def __init__(
        self,
        port: int,
        front: Front,
        pool: Pool,
        lane: Lane,
        server: asyncio.Server,
        operator: asyncio.Server,
    ):
        self.port = port
        self.front = front
        self.pool = pool
        self.lane = lane
        self.server = server
        self.operator = operator  # the admin listener (`worker.admin`)
        self.admin_port = operator.sockets[0].getsockname()[1]


@pytest.fixture
async def inproc(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[InProc]]]:
    started: list[InProc] = []

    async def start(spec: str, *, slots: int = 4, queue: int = 8, **settings: Any) -> InProc:
        config = Config(handler=spec, **settings)
        handler = handlers.load(spec, task_root=str(ROOT))
        metrics = Metrics()
        lane = Lane("default", slots, queue)
        pool = Pool(handler, Lanes([lane]), config, worker_tmp=str(tmp_path), metrics=metrics)
        pool.start()
        front = Front(
            config,
            pool.submit,
            metrics_text=lambda: render(merge([metrics.snapshot()])),
            pid=os.getpid(),
            handler=handler,
        )
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: front.protocol(front), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        sock = admin.open_socket("127.0.0.1", free_port())
        assert sock is not None
        inst = InProc(port, front, pool, lane, server, await admin.serve(front, sock))
        started.append(inst)
        return inst

    yield start
    for inst in started:
        inst.server.close()
        inst.operator.close()
        for conn in list(inst.front.connections):
            conn.close()
        await inst.pool.drain(0.5)


class Proc:
    """A real `python -m worker serve …` environment (supervisor and workers)."""

    def __init__(
        self, args: list[str], env: dict[str, str], log_path: Path, port_flag_first: bool = False
    ) -> None:
        self.port = free_port()
        # Every environment's admin listener on a port of its own (`_environ` picks it).
        self.admin_port = int(env.get("WORKER_ADMIN_PORT", "0"))
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        port = ["--port", str(self.port)]
        # Flags must come before an emulator's `-- COMMAND`.
        argv = [args[0], *port, *args[1:]] if port_flag_first else [*args, *port]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "worker", *argv],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def get(self, path: str, timeout: float = 5.0, port: int = 0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port or self.port}{path}", timeout=timeout
            ) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def admin(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """GET an operator's endpoint (`/_worker/metrics`…) from the admin listener."""
        return self.get(path, timeout, port=self.admin_port)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait for the state that proves readiness: /_worker/ready answers 200."""
        url = f"http://127.0.0.1:{self.port}/_worker/ready"
        wait_answering(url, self.proc, self.logs, timeout)

    def logs(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [int(p) for p in path.read_text().split()] if path.exists() else []

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def _environ(env: dict[str, str] | None) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "AWS_"))}
    environ.update(env or {})
    environ["PYTHONPATH"] = str(ROOT)
    # Not the default 8081: environments started side by side would contend for it.
    environ.setdefault("WORKER_ADMIN_PORT", str(free_port()))
    return environ


class Procs:
    """Real environments started by one test, all stopped (by PID) when it ends."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.all: list[Proc] = []

    def start(
        self, argv: list[str], env: dict[str, str] | None, ready: bool, port_flag_first: bool
    ) -> Proc:
        log = self.tmp_path / f"{argv[0]}-{len(self.all)}.log"
        proc = Proc(argv, _environ(env), log, port_flag_first=port_flag_first)
        self.all.append(proc)
        if ready:
            proc.wait_ready()
        return proc

    def stop_all(self) -> None:
        for proc in self.all:
            proc.stop()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    started = Procs(tmp_path)
    yield started
    started.stop_all()


@pytest.fixture
def serve(procs: Procs) -> Callable[..., Proc]:
    """`worker serve HANDLER ARGS…` as a real environment, ready when returned."""

    def start(
        handler: str, *args: str, env: dict[str, str] | None = None, ready: bool = True
    ) -> Proc:
        return procs.start(["serve", handler, *args], env, ready, port_flag_first=False)

    return start


@pytest.fixture
def emulate(procs: Procs) -> Callable[..., Proc]:
    """`worker emulate ARGS…`: the emulator and the runtime it runs (`worker lambda` unless
    `command` is given), ready once the runtime first polls `/next`."""

    def start(
        *args: str,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
        ready: bool = True,
    ) -> Proc:
        argv = ["emulate", *args, *(["--", *command] if command else [])]
        # Flags go before `-- COMMAND`, so the port flag follows the subcommand.
        return procs.start(argv, env, ready, port_flag_first=True)

    return start


class Moto:
    """A real moto server on 127.0.0.1 (AWS's HTTP APIs), one per test session."""

    def __init__(self, port: int, proc: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.proc = proc
        self.endpoint = f"http://127.0.0.1:{port}"

    @property
    def env(self) -> dict[str, str]:
        """What a worker needs to talk to it."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        }

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_answering(f"http://127.0.0.1:{port}/moto-api/", proc, lambda: "moto server", 60)
        yield Moto(port, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture
def sqs_worker(procs: Procs, moto: Moto) -> Callable[..., Proc]:
    """`worker sqs HANDLER --queue-url URL ARGS…` against moto, ready when returned."""

    def start(handler: str, queue_url: str, *args: str, env: dict[str, str] | None = None) -> Proc:
        argv = ["sqs", handler, "--queue-url", queue_url, *args]
        return procs.start(argv, {**moto.env, **(env or {})}, True, port_flag_first=False)

    return start
