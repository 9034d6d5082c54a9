"""The model host: one process that owns models and serves the worker processes over IPC.

CUDA state does not survive a fork, so a model on a GPU cannot be loaded in the
supervisor and inherited by the workers as the CPU's models are. The supervisor instead
forks this process during the init phase, before anything has touched CUDA; it loads the
models it is given (progress lines, warm-up), says "ready" over a control socket, and
serves them on a Unix socket in the environment's scratch root. Every worker process
keeps one connection to it (`remote.py`), and one batcher per model here batches the
requests of every slot of every worker together.

`WORKER_MODEL_HOST=process` puts every model here, CPU ones too; by default only models
on a GPU come here (`docs/architecture.md` has the CPU measurements behind that).

The host ignores SIGTERM and SIGINT: the supervisor ends it after the last worker has
drained (an in-flight invocation may still be waiting on a batch), by closing the control
socket, which also ends it when the supervisor itself dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import socket
import sys
from typing import Any

import orjson
import uvloop

from worker.config import cores
from worker.errors import LambdaError, from_exception
from worker.inference import registry, wire
from worker.inference.batcher import Batcher
from worker.telemetry.metrics import Metrics, SnapshotStore

log = logging.getLogger("worker.inference")

#: The host's name among the environment's metrics snapshots.
NAME = "model-host"
#: Seconds the host gets to finish once the supervisor lets it go, before SIGKILL.
STOP_TIMEOUT = 5.0


def socket_path(root: str) -> str:
    return os.path.join(root, "models.sock")


class ModelHost:
    """The supervisor's handle on the model host process."""

    def __init__(self, pid: int, control: socket.socket, path: str) -> None:
        self.pid = pid
        self.control = control
        self.path = path

    @classmethod
    def start(
        cls,
        specs: list[registry.ModelSpec],
        root: str,
        threads: int = 0,
        inherited: tuple[int, ...] = (),
    ) -> ModelHost:
        """Fork the host; it starts loading `specs` at once (see `wait_ready`).

        `inherited`: descriptors of the supervisor the host must not keep open (the
        listening sockets: a copy held here would keep accepting into a backlog nobody
        serves once the supervisor closes its own)."""
        for spec in specs:
            spec.hosted = True  # the workers forked later reach it through the host
        ours, theirs = socket.socketpair()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the model host
            code = 1
            try:
                ours.close()
                for fd in inherited:
                    if fd >= 0 and fd != theirs.fileno():
                        with contextlib.suppress(OSError):
                            os.close(fd)
                code = _main(specs, socket_path(root), theirs, root, threads)
            except BaseException:  # reported, then the process ends
                log.exception("the model host failed")
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        theirs.close()
        return cls(pid, ours, socket_path(root))

    def wait_ready(self) -> None:
        """Block until the models are loaded; their load error is raised as this one."""
        line = b""
        while not line.endswith(b"\n"):
            chunk = self.control.recv(65536)
            if not chunk:
                self.kill()
                raise LambdaError("Runtime.ExitError", "The model host exited during init")
            line += chunk
        if line != b"ready\n":
            self.kill()
            body = orjson.loads(line)
            raise LambdaError(body["errorType"], body["errorMessage"], body["stackTrace"])

    def forget(self) -> None:
        """Drop this process's copy of the control socket: in a forked worker (only the
        supervisor's copy may keep the host alive), or once the host is dead."""
        self.control.close()

    def stop(self) -> None:
        """Let the host go (called once the workers are gone, so nothing waits on it) and
        wait up to STOP_TIMEOUT for it to exit, then kill it."""
        self.control.close()
        with contextlib.suppress(ChildProcessError, ProcessLookupError):
            fd = os.pidfd_open(self.pid)
            try:
                if not select.select([fd], [], [], STOP_TIMEOUT)[0]:
                    log.error("the model host did not stop in time, killing it")
                    os.kill(self.pid, signal.SIGKILL)
            finally:
                os.close(fd)
            os.waitpid(self.pid, 0)

    def kill(self) -> None:
        self.control.close()
        with contextlib.suppress(ChildProcessError, ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)


def _main(
    specs: list[registry.ModelSpec], path: str, control: socket.socket, root: str, threads: int
) -> int:
    """The host process: load, say ready, serve until the supervisor lets go."""
    # Forked from a supervisor that blocks its signals and handles them itself.
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    for each in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(each, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        for spec in specs:
            registry.load(spec)
    except LambdaError as exc:
        control.sendall(orjson.dumps(exc.body()) + b"\n")
        return 1
    torch = sys.modules.get("torch")
    if torch is not None:
        # The host runs the batches; the workers' loops need a core of their own.
        torch.set_num_threads(threads or max(1, cores() - 1))
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(_serve(specs, path, control, root))
    finally:
        loop.close()
    return 0


async def _serve(
    specs: list[registry.ModelSpec], path: str, control: socket.socket, root: str
) -> None:
    loop = asyncio.get_running_loop()
    metrics = Metrics()
    store = SnapshotStore(os.path.join(root, "metrics"))
    batchers = {spec.name: Batcher(spec, metrics) for spec in specs}
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a dead predecessor's

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                rid, name, item, deadline = await wire.read(reader)
                task = loop.create_task(answer(writer, rid, name, item, deadline))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the worker went away; its requests' answers have nobody to go to
        finally:
            writer.close()

    async def answer(
        writer: asyncio.StreamWriter, rid: int, name: str, item: Any, deadline: float | None
    ) -> None:
        batcher = batchers.get(name)
        try:
            if batcher is None:
                raise LambdaError("Runtime.ModelNotFound", f"No model named '{name}' is hosted")
            reply = (rid, True, await batcher.infer(item, deadline))
        except Exception as exc:
            reply = (rid, False, wire.portable(exc))
        if writer.is_closing():
            return
        try:
            frame = wire.pack(reply)
        except Exception as exc:  # an output pickle cannot carry
            frame = wire.pack((rid, False, from_exception(exc)))
        writer.write(frame)

    server = await asyncio.start_unix_server(connection, path)
    os.chmod(path, 0o600)
    control.setblocking(False)
    await loop.sock_sendall(control, b"ready\n")
    log.info("model host ready", extra={"fields": {"models": list(batchers), "pid": os.getpid()}})

    async def snapshots() -> None:
        while True:
            with contextlib.suppress(OSError):
                store.write(NAME, metrics.snapshot())
            await asyncio.sleep(1.0)

    ticker = loop.create_task(snapshots())
    try:
        while await loop.sock_recv(control, 1):
            pass  # nothing is sent this way: the end of the stream is the message
    except OSError:
        pass
    ticker.cancel()
    server.close()
    for batcher in batchers.values():
        batcher.close()
    with contextlib.suppress(OSError):
        store.write(NAME, metrics.snapshot() | {"gauges": {}})
