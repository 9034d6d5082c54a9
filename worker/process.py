"""A worker process: one uvloop event loop for its whole life, around the source it serves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson
import uvloop

from worker import aws, initprofile, jobs, scratch
from worker.config import Config
from worker.errors import LambdaError
from worker.handler import Handler
from worker.inference import registry
from worker.inflight import Inflight
from worker.initphase import EXIT_INIT_FAILED, init_failed
from worker.lanes import Lanes
from worker.pool import Pool
from worker.profiles import Profiles, parse_overrides
from worker.sources import auto
from worker.telemetry import egress, utilisation
from worker.telemetry.emf import Emf
from worker.telemetry.metrics import Metrics, SnapshotStore, merge, render

if TYPE_CHECKING:
    from worker import offload
    from worker.sources.asgi import AsgiApp
    from worker.telemetry import outlook

log = logging.getLogger("worker.process")

#: How often the Date header, connection deadlines and the metrics snapshot are refreshed.
TICK = 0.5
#: Exit status of a worker that recycled itself (invocation or memory limit), drained.
EXIT_RECYCLE = 76


class WorkerProcess:
    """Everything one worker process runs around its source (`worker.sources.auto`): the
    loop's signals, the pool, the models' connection, the ticks, the telemetry."""

    def __init__(
        self,
        *,
        index: int,
        config: Config,
        handler: Handler,
        sock: socket.socket | None,
        root: str,
        admin_sock: socket.socket | None = None,
        inflight: Inflight | None = None,
    ) -> None:
        self.index = index
        self.inflight = inflight
        self.config = config
        self.handler = handler
        self.sock = sock
        self.admin_sock = admin_sock
        self.root = root
        self.name = f"worker-{index}"
        self.store = SnapshotStore(os.path.join(root, "metrics"))
        self.metrics = Metrics()
        self.stopping: asyncio.Event | None = None
        self.emf: Emf | None = None
        self.usage: utilisation.Utilisation | None = None  # busy slots ÷ slots, as EMF
        self.recycle = ""  # why this worker is recycling itself, once it is
        self.outlook: outlook.History | None = None  # Mission Control's samples
        self.offload: offload.Offload | None = None  # the offload lane's sender, when set
        self.clients: aws.Clients | None = None  # pooled AWS clients, once serving
        self.source = auto.choose(config.mode)

    def stats_json(self) -> bytes:
        """Every process's registry, by process (the dashboard's feed)."""
        processes = self.store.read_named(skip=self.name)
        processes[self.name] = self.metrics.snapshot()
        from worker.telemetry import outlook

        if self.outlook is not None:
            processes[self.name]["outlook"] = self.outlook.summary()
        ahead = outlook.combine(
            (snap.get("outlook", {}) for snap in processes.values()),
            self.config.outlook_window,
            memory_mb=self.config.memory_mb,
        )
        now = time.time()
        if self.config.forecast_file:
            from worker.telemetry import forecast_feed

            feed = forecast_feed.feed(self.config.forecast_file)
            ahead["forecast"] = feed.outlook(now, self.config.outlook_window, ahead)
        return orjson.dumps({"time": now, "processes": processes, "outlook": ahead})

    def metrics_text(self) -> str:
        return render(merge([self.metrics.snapshot(), *self.store.read_all(skip=self.name)]))

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        loop.add_signal_handler(signal.SIGINT, self.stopping.set)
        previous = self.store.read(self.name)
        if previous:
            self.metrics.restore(previous)
        source = self.source
        cfg = self.config
        if source.emf and cfg.emf:
            self.emf = Emf.from_env(cfg.function_name)
            self.metrics.listen(self.emf.record, self.emf.record_invocations)
        worker_tmp = scratch.enter_worker_dir(self.root)
        # An ASGI app's lifespan startup: once per worker, on its own loop, before it serves.
        app: AsgiApp | None = self.handler.fn if self.handler.app_kind == "asgi" else None  # type: ignore[assignment]
        if app is not None:
            try:
                if not await self._started(app):
                    return 0  # stopped during its startup: nothing was served
            except LambdaError as exc:
                init_failed(cfg, exc)
                return EXIT_INIT_FAILED
        slots = cfg.slots_for(self.index)
        lanes = self.lanes(slots)
        self.usage = utilisation.start(cfg, lanes.all, self.metrics)
        if source.observed:
            from worker.telemetry import outlook

            self.outlook = outlook.History(
                cfg.outlook_window,
                {lane.name: (lane.slots, lane.queue_size) for lane in lanes.all},
            )
        pool = Pool(self.handler, lanes, cfg, worker_tmp=worker_tmp, metrics=self.metrics)
        models = None
        if registry.MODELS:  # the batchers and the model host's connection, when it has models
            from worker.inference import host as inference
            from worker.inference import modelhost

            models = inference.start(
                self.metrics,
                cfg.worker_processes,
                cfg.model_threads,
                modelhost.socket_path(self.root),
            )
        pool.start()
        if cfg.max_invocations:
            pool.limit(cfg.max_invocations, lambda: self._recycle("max_invocations"))
        # Threads cannot be stopped: a process whose spare threads are all held by hung
        # sync handlers is replaced after a drain; one whose every slot waits on one at
        # once (its queued work answered at once, not after the grace).
        pool.when_stuck(self._recycle)
        if cfg.max_rss_mb:
            # Read every 8 answers (a few µs each) as well as on every tick: a fast leak
            # must not outrun the check.
            pool.check_every(8, self._check_memory)
        log.info(
            "worker started",
            extra={
                "fields": {
                    "pid": os.getpid(),
                    "lanes": {lane.name: [lane.slots, lane.queue_size] for lane in lanes.all},
                }
            },
        )
        self.clients = aws.reset(slots)
        if cfg.mode in ("serve", "lambda") and cfg.offload_queue_url:
            from worker import offload

            self.offload = offload.start(
                queue_url=cfg.offload_queue_url,
                profiles=lanes.profiles,
                clients=self.clients,
                metrics=self.metrics,
            )
        # The state stores' settings; resumes of durable executions, when there are any.
        durables = None
        # Idempotency and durable functions are decorated at the handler's import, which
        # loads their modules; a function without either loads no state store here.
        if "worker.durable.engine" in sys.modules or "worker.idempotency" in sys.modules:
            from worker.durable import service as durable_service

            durables = durable_service.start(cfg, pool.submit, self.stopping)
        if self.index == 0:
            # The cold start's one line: the supervisor's phases (inherited) and this one's.
            initprofile.mark("worker_start")
            initprofile.emit(self.emf)
        code, finished = await source.serve(self, pool)
        if self.offload is not None:
            await self.offload.drain(1.0)
        if app is not None:
            await app.shutdown()
        if models is not None:
            from worker.inference import host as inference

            inference.stop()
        if durables is not None:
            from worker.durable import service as durable_service

            await durable_service.stop()
        await self.clients.close()
        self._flush_emf()
        if self.usage is not None:
            self.usage.close()
        self.store.write(self.name, self.metrics.snapshot() | {"gauges": {}})
        log.info("worker stopped", extra={"fields": {"pid": os.getpid(), "drained": finished}})
        if self.recycle:
            return EXIT_RECYCLE
        return code

    def lanes(self, slots: int) -> Lanes:
        """The lanes the source forms of this process's `slots`."""
        cfg = self.config
        profiles = Profiles(
            slow_seconds=cfg.marathon_seconds,
            large_bytes=cfg.marathon_bytes,
            overrides=parse_overrides(cfg.routes),
        )
        return self.source.lanes(self, slots, profiles)

    async def _started(self, app: AsgiApp) -> bool:
        """Run the app's lifespan startup; False when the worker is told to stop first (a
        sibling's startup failed, say) rather than waiting out WORKER_INIT_TIMEOUT."""
        assert self.stopping is not None
        startup = asyncio.ensure_future(app.startup(self.config.init_timeout))
        stop = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait([startup, stop], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not startup.done():
            startup.cancel()
            await asyncio.wait([startup])
            return False
        startup.result()
        return True

    async def drain_offload(self) -> None:
        """Offload sends under way end first, while the lanes still take what falls back."""
        if self.offload is not None:
            await self.offload.drain(max(0.1, self.config.grace / 2))

    def _recycle(self, reason: str) -> None:
        """Leave gracefully for a fresh process: drain, then exit EXIT_RECYCLE."""
        if self.recycle or self.stopping is None or self.stopping.is_set():
            return
        self.recycle = reason
        log.info("recycling", extra={"fields": {"pid": os.getpid(), "reason": reason}})
        self.stopping.set()

    def _check_memory(self) -> None:
        if _rss_mb() > self.config.max_rss_mb:
            self._recycle("max_rss_mb")

    def _flush_emf(self) -> None:
        """Write the EMF lines of what was recorded since the last flush: the lanes'
        buffered invocations first."""
        if self.emf is not None:
            self.metrics.fold_lanes()
            self.emf.flush()

    async def tick(self, also: Callable[[], None] | None = None) -> None:
        """The process's periodic work while its source serves: `also` (the HTTP front's
        clock and deadlines), memory, EMF, utilisation, the metrics snapshot."""
        beats = 0
        while True:
            await asyncio.sleep(TICK)
            if also is not None:
                also()
            beats += 1
            if self.config.max_rss_mb:
                self._check_memory()
            self._flush_emf()  # what the slots finished since the last tick
            if self.usage is not None:
                self.usage.tick()
            if beats % 2 == 0:
                snap = self.metrics.snapshot()
                if self.outlook is not None:
                    snap["outlook"] = self.outlook.sample(snap)
                try:
                    self.store.write(self.name, snap)
                except OSError:
                    log.warning("could not write the metrics snapshot")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


#: prctl(2)'s option: the signal this process gets when its parent dies.
PR_SET_PDEATHSIG = 1


def end_with(supervisor: int) -> None:
    """Have the kernel send this process SIGTERM (a drain) when `supervisor` dies.

    A worker that outlived a killed supervisor would go on serving with nobody left to
    replace it, collect its metrics or end it."""
    import ctypes  # here: only the fork needs it

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
    if os.getppid() != supervisor:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def run(
    *,
    index: int,
    config: Config,
    handler: Handler,
    sock: socket.socket | None,
    root: str,
    supervisor: int = 0,
    admin_sock: socket.socket | None = None,
    inflight: Inflight | None = None,
) -> int:
    """Body of a forked worker process; returns its exit code."""
    # On LMI this worker's stdout and stderr become streams of their own, before it writes
    # anything. Its logging is the supervisor's, inherited as it is (`logs.install`).
    egress.connect_streams()
    # The supervisor blocks its signals to wait on them; a worker takes them normally.
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the supervisor, which drains
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    if supervisor:
        end_with(supervisor)
    jobs.reseed()
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    worker = WorkerProcess(
        index=index,
        config=config,
        handler=handler,
        sock=sock,
        root=root,
        admin_sock=admin_sock,
        inflight=inflight,
    )
    try:
        return loop.run_until_complete(worker.main())
    except Exception:
        log.exception("worker failed")
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
