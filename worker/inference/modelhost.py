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

The host runs up to K batches of each model at once over its one copy of the weights
(`batches_in_flight`): on the CPU K launch threads split the cores (torch's intra-op
threads per batch = cores ÷ K), on a GPU each launch thread queues on its own CUDA
stream. Each thread also pickles its batch's outputs, so the loop here only reads
requests and writes finished frames.

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

from worker.config import SETTINGS, cores
from worker.errors import LambdaError, from_exception
from worker.inference import registry, wire
from worker.inference.batcher import Batcher
from worker.telemetry.metrics import Metrics, SnapshotStore

log = logging.getLogger("worker.inference")

#: The host's name among the environment's metrics snapshots.
NAME = "model-host"
#: Seconds the host gets to finish once the supervisor lets it go, before SIGKILL.
STOP_TIMEOUT = 5.0


#: Batches in flight per model on a GPU by default: while one batch's host work runs
#: (tokenising, copying back), the others' kernels keep the device busy.
GPU_BATCHES = 4
#: The CPU's default K is one batch per core up to this; past it the cores are shared out
#: as more intra-op threads per batch rather than more, smaller batches.
CPU_MAX_BATCHES = 8


def batches_in_flight(spec: registry.ModelSpec, override: int = 0) -> int:
    """K for `spec`: `override` (WORKER_MODEL_CONCURRENT_BATCHES), else the model's
    `max_concurrent_batches`, else by device: a batch per core on the CPU (each on one
    core, as the copy-on-write placement's one batch per worker process), GPU_BATCHES on
    a GPU."""
    if override > 0:
        return override
    if spec.max_concurrent_batches is not None:
        return spec.max_concurrent_batches
    if spec.resolved_device.startswith("cuda"):
        return GPU_BATCHES
    return max(1, min(cores(), CPU_MAX_BATCHES))


def threads_per_batch(k: int, threads: int = 0) -> int:
    """torch's intra-op threads for each of `k` launch threads: the host's threads
    (`threads`, else the cores) split over them, at least one each. One batch alone
    leaves a core to the loops, as in a worker process (`host.start`)."""
    total = threads or cores()
    return max(1, min(total // k, total - 1))


def concurrency_override() -> int:
    """WORKER_MODEL_CONCURRENT_BATCHES, as the supervisor's config read (and checked) it
    from the environment this process inherited."""
    setting = SETTINGS["model_concurrent_batches"]
    raw = os.environ.get(setting.env, "")
    return max(0, int(setting.parse(raw))) if raw else 0


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
    override = concurrency_override()
    plans = {spec.name: batches_in_flight(spec, override) for spec in specs}
    torch = sys.modules.get("torch")
    if torch is not None:
        # Each launch thread sets its own share (`Batcher`); this is the loop thread's,
        # and the share of any thread torch starts on its own.
        torch.set_num_threads(threads_per_batch(max(plans.values(), default=1), threads))
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(_serve(specs, path, control, root, plans, threads))
    finally:
        loop.close()
    return 0


async def _serve(
    specs: list[registry.ModelSpec],
    path: str,
    control: socket.socket,
    root: str,
    plans: dict[str, int],
    threads: int,
) -> None:
    loop = asyncio.get_running_loop()
    metrics = Metrics()
    store = SnapshotStore(os.path.join(root, "metrics"))
    batchers = {
        spec.name: Batcher(
            spec,
            metrics,
            concurrency=plans[spec.name],
            threads=threads_per_batch(plans[spec.name], threads),
            encode=wire.encode,
        )
        for spec in specs
    }
    answering: set[asyncio.Task[None]] = set()
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
                answering.add(task)
                task.add_done_callback(answering.discard)
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
            ok, payload = await batcher.infer(item, deadline)  # encoded on its launch thread
            reply = (rid, ok, payload)
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
    log.info(
        "model host ready",
        extra={
            "fields": {"models": list(batchers), "batches_in_flight": plans, "pid": os.getpid()}
        },
    )

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
    # Normally nothing is left (the workers drained first), but a batch still running
    # ends and is answered before the process does.
    await asyncio.gather(*(batcher.drain() for batcher in batchers.values()))
    if answering:
        await asyncio.wait(list(answering))
    with contextlib.suppress(OSError):
        store.write(NAME, metrics.snapshot() | {"gauges": {}})
