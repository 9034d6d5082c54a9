"""A worker process: one uvloop event loop for its whole life, serving HTTP or the Runtime API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import orjson
import uvloop

from worker import aws, initprofile, jobs, scratch
from worker.config import Config
from worker.errors import LambdaError
from worker.handler import Handler
from worker.inference import registry
from worker.inflight import Inflight
from worker.initphase import init_failed
from worker.lanes import Lane, Lanes
from worker.pool import Pool
from worker.profiles import MARATHON, SPRINTER, Profiles, parse_overrides
from worker.telemetry import egress, utilisation
from worker.telemetry.emf import Emf
from worker.telemetry.metrics import Metrics, SnapshotStore, merge, render

if TYPE_CHECKING:
    # Each mode imports its own source where it starts it: a Lambda function's cold start
    # does not load the HTTP front, the admin listener or the SQS poller.
    from worker import offload
    from worker.sources.asgi import AsgiApp
    from worker.sources.http import Front
    from worker.telemetry import outlook

log = logging.getLogger("worker.process")

#: How often the Date header, connection deadlines and the metrics snapshot are refreshed.
TICK = 0.5
#: Exit status of a worker that recycled itself (invocation or memory limit), drained.
EXIT_RECYCLE = 76
#: Exit status of a worker whose own init failed (an ASGI app's lifespan startup): a
#: replacement would fail alike, so the supervisor ends the environment.
EXIT_INIT_FAILED = 77


#: The time bound's share of a typical invocation for a worker with models (see `_lanes`).
BATCHED_WAIT_SHARE = 2.0


class WorkerProcess:
    """Everything one worker process runs: the pool, the HTTP front, the drain."""

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
        if self.config.mode == "lambda" and self.config.emf:
            # Nobody scrapes a Lambda function: its metrics go out as EMF log lines.
            self.emf = Emf.from_env(self.config.function_name)
            self.metrics.listen(self.emf.record, self.emf.record_invocations)
        worker_tmp = scratch.enter_worker_dir(self.root)
        # An ASGI app's lifespan startup: once per worker, on its own loop, before it serves.
        app: AsgiApp | None = self.handler.fn if self.handler.app_kind == "asgi" else None  # type: ignore[assignment]
        if app is not None:
            try:
                if not await self._started(app):
                    return 0  # stopped during its startup: nothing was served
            except LambdaError as exc:
                init_failed(self.config, exc)
                return EXIT_INIT_FAILED
        slots = self.config.slots_for(self.index)
        lanes = self._lanes(slots)
        self.usage = utilisation.start(self.config, lanes.all, self.metrics)
        if self.config.mode != "lambda":  # Lambda mode has no admin listener to show it
            from worker.telemetry import outlook

            self.outlook = outlook.History(
                self.config.outlook_window,
                {lane.name: (lane.slots, lane.queue_size) for lane in lanes.all},
            )
        pool = Pool(
            self.handler,
            lanes,
            self.config,
            worker_tmp=worker_tmp,
            metrics=self.metrics,
        )
        cfg = self.config
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
        if self.config.max_invocations:
            pool.limit(self.config.max_invocations, lambda: self._recycle("max_invocations"))
        # Threads cannot be stopped: a process whose spare threads are all held by hung
        # sync handlers is replaced after a drain; one whose every slot waits on one at
        # once (its queued work answered at once, not after the grace).
        pool.when_stuck(self._recycle)
        if self.config.max_rss_mb:
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
        clients = aws.reset(slots)
        if cfg.mode in ("serve", "lambda") and cfg.offload_queue_url:
            from worker import offload

            self.offload = offload.start(
                queue_url=cfg.offload_queue_url,
                profiles=lanes.profiles,
                clients=clients,
                metrics=self.metrics,
            )
        # The state stores' settings; resumes of durable executions, when there are any.
        durables = None
        # Idempotency and durable functions are decorated at the handler's import, which
        # loads their modules; a function without either loads no state store here.
        if "worker.durable.engine" in sys.modules or "worker.idempotency" in sys.modules:
            from worker.durable import service as durable_service

            durables = durable_service.start(self.config, pool.submit, self.stopping)
        if self.index == 0:
            # The cold start's one line: the supervisor's phases (inherited) and this one's.
            initprofile.mark("worker_start")
            initprofile.emit(self.emf)
        if self.config.mode == "lambda":
            # SnapStart: quiet for the snapshot, restored, before the first `/next`.
            taken = "serve"
            if cfg.initialization_type == "snap-start":
                from worker import snapstart

                taken = await snapstart.checkpoint(self.stopping)
            if taken == "serve":
                code, finished = await self._serve_runtime_api(pool, slots)
            else:
                finished = await pool.drain(0.1)
                code = EXIT_INIT_FAILED if taken == "failed" else 0
        elif self.config.mode == "sqs":
            code, finished = await self._serve_sqs(pool, lanes, clients)
        else:
            code, finished = await self._serve_http(pool, before_drain=self._drain_offload)
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
        await clients.close()
        self._flush_emf()
        if self.usage is not None:
            self.usage.close()
        self.store.write(self.name, self.metrics.snapshot() | {"gauges": {}})
        log.info("worker stopped", extra={"fields": {"pid": os.getpid(), "drained": finished}})
        if self.recycle:
            return EXIT_RECYCLE
        return code

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

    async def _drain_offload(self) -> None:
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

    def _lanes(self, slots: int) -> Lanes:
        cfg = self.config
        profiles = Profiles(
            slow_seconds=cfg.marathon_seconds,
            large_bytes=cfg.marathon_bytes,
            overrides=parse_overrides(cfg.routes),
        )
        if cfg.mode == "lambda":
            # One poller per slot: the lane never holds more than its slots. The profiles
            # still learn the marathons: the offload lane's choice reads them.
            return Lanes([Lane(SPRINTER, slots, slots)], profiles)
        if cfg.mode == "sqs":
            # The lanes split the slots as in serve (offloaded events carry their routes);
            # the source bounds what the process holds, and each lane may queue all of it,
            # so neither refuses what the pollers took.
            from worker.sources.sqs import held_at_most

            held = held_at_most(self._sqs_room(slots), cfg.pollers)
            return self._partition(held, (0.0, 0.0), profiles)
        queue = cfg.queue_for(self.index)
        # Served requests also wait for a slot no longer than the time bound allows. With
        # models, queued requests are served together, a batch at a time: a wave of slots
        # waits one batch, not one call per request ahead. Two waves are admitted (the next
        # batch and the one after), since the kernel does not spread a burst's connections
        # evenly over the processes.
        share = cfg.queue_wait
        if share and registry.MODELS:
            share = max(share, BATCHED_WAIT_SHARE)
        return self._partition(queue, (share, cfg.queue_wait_min_ms / 1000), profiles)

    def _partition(self, queue: int, wait: tuple[float, float], profiles: Profiles) -> Lanes:
        """The sprinter and marathon lanes of this process's slots (one lane for one slot)."""
        cfg = self.config
        sprint, marathon = cfg.lane_slots(self.index)
        lanes = [Lane(SPRINTER, sprint, queue, *wait)]
        if marathon:
            lanes.append(Lane(MARATHON, marathon, queue, *wait))
            # Each lane borrows the other's idle slots (`Lane.lend`): marathons all but the
            # sprinters' reserve, sprinters (quick by definition) any idle marathon slot.
            lanes[1].lender, lanes[0].lender = lanes[0], lanes[1]
            lanes[0].reserve = max(1, int(sprint * cfg.lend_reserve))
        return Lanes(lanes, profiles)

    def _sqs_room(self, slots: int) -> int:
        """What `worker sqs` holds at once: its slots, and queued places that let the pollers
        fetch the next batches while the slots are busy (one per slot unless set)."""
        cfg = self.config
        return slots + (cfg.queue_for(self.index) if cfg.queue_size else slots)

    async def _serve_sqs(self, pool: Pool, lanes: Lanes, clients: aws.Clients) -> tuple[int, bool]:
        """Poll the queue, and serve HTTP too (health, readiness, metrics, the Invoke API)."""
        from worker.sources.pollgate import PollGate
        from worker.sources.sqs import SqsSource

        assert self.stopping is not None
        cfg = self.config
        source = SqsSource(
            queue_url=cfg.queue_url,
            submit=pool.submit,
            room=self._sqs_room(sum(lane.slots for lane in lanes.all)),
            clients=clients,
            metrics=self.metrics,
            batch_size=cfg.batch_size,
            pollers=cfg.pollers,
            wait_seconds=cfg.wait_seconds,
            visibility_timeout=cfg.visibility_timeout,
            slots=sum(lane.slots for lane in lanes.all),
            gate=PollGate(os.path.join(self.root, "sqs-poll.lock")),
        )
        try:
            await source.start()
        except Exception as exc:
            log.error("cannot consume %s: %s", cfg.queue_url, exc)
            await pool.drain(0.1)
            return 1, False

        async def stop_polling() -> None:
            unstarted = [job for lane in lanes.all for job in lane.drop_queued()]
            await source.stop(unstarted)

        code, finished = await self._serve_http(pool, before_drain=stop_polling)
        await source.settled()
        return code, finished

    async def _serve_http(
        self, pool: Pool, before_drain: Callable[[], Awaitable[None]] | None = None
    ) -> tuple[int, bool]:
        from worker import admin
        from worker.sources.http import Front

        assert self.stopping is not None and self.sock is not None
        loop = asyncio.get_running_loop()
        front = Front(
            self.config,
            pool.submit,
            metrics_text=self.metrics_text,
            stats_json=self.stats_json,
            pid=os.getpid(),
            handler=self.handler,
        )
        front.offload = self.offload
        protocol = front.protocol  # a web app's connections read HttpRequests (`Front`)
        server = await loop.create_server(lambda: protocol(front), sock=self.sock, backlog=2048)
        # The operator's endpoints: their own listener, closed with the service's.
        operator = await admin.serve(front, self.admin_sock) if self.admin_sock else None
        self.metrics.gauge("worker_open_connections", (), lambda: len(front.connections))
        self.metrics.gauge("worker_connections_refused", (), lambda: front.refused_connections)
        ticker = asyncio.ensure_future(self._tick(front))
        await self.stopping.wait()
        if self.recycle:
            # No new connections (they wait in the socket's backlog for the replacement);
            # requests on open ones are still served, each connection closing after its
            # answer, so no caller sees an error.
            front.recycling = True
            server.close()
            admin.stop(operator)
            front.close_idle(used_only=True)
            waits = 0 if self.recycle == "stuck_threads" else int(self.config.grace / 0.01)
            for _ in range(waits):
                if not front.connections:
                    break
                await asyncio.sleep(0.01)
        if before_drain is not None:
            await before_drain()
        # Drain: stop accepting, refuse new requests on open connections (503 and
        # `connection: close`), let everything accepted finish within the grace period.
        front.draining = True
        server.close()
        admin.stop(operator)
        front.close_idle()
        grace = 0.1 if self.recycle == "stuck_threads" else max(0.1, self.config.grace - 0.5)
        finished = await pool.drain(grace)
        await self._flush_writes(front)
        for conn in list(front.connections):
            conn.close()
        ticker.cancel()
        return 0, finished

    async def _serve_runtime_api(self, pool: Pool, slots: int) -> tuple[int, bool]:
        from worker.sources.runtime_api import RuntimeApiSource

        assert self.stopping is not None
        submit = pool.submit if self.offload is None else self.offload.submitter(pool.submit)
        source = RuntimeApiSource(
            self.config.runtime_api,
            submit,
            slots=slots,
            attempts=self.config.runtime_api_attempts,
            pipeline=bool(self.config.runtime_api_pipeline),
            streams=self.config.invoke_mode == "RESPONSE_STREAM",
            stream_limit=self.config.max_streamed_response,
            inflight=self.inflight,
        )
        polling = asyncio.ensure_future(source.run())
        ticker = asyncio.ensure_future(self._tick(None))
        stop = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait([polling, stop], return_when=asyncio.FIRST_COMPLETED)
        # Drain: no new /next. The lanes stay open until every poller is done, so an event
        # fetched just before the signal still runs; pollers end once their answer is posted.
        grace = max(0.1, self.config.grace - 0.5)
        if self.recycle:
            # The platform goes on sending events: a /next already asked for may be handed
            # one at any moment, and cancelling it could lose that event. Let each poller
            # take what its /next brings, answer it, and ask for no more.
            source.stop(cancel_waiting=False)
            await asyncio.wait([polling], timeout=grace)
        source.stop()
        done, _ = await asyncio.wait([polling], timeout=grace)
        finished = bool(done)
        # Whatever still runs now gets a shutdown error, which its poller posts.
        await pool.drain(0.0 if not finished else 1.0)
        code = 1
        try:
            code = await asyncio.wait_for(polling, timeout=5.0)
        except TimeoutError:
            log.error("answers could not be posted to the Runtime API in time")
        stop.cancel()
        ticker.cancel()
        return code, finished

    def _flush_emf(self) -> None:
        """Write the EMF lines of what was recorded since the last flush: the lanes'
        buffered invocations first."""
        if self.emf is not None:
            self.metrics.fold_lanes()
            self.emf.flush()

    async def _tick(self, front: Front | None) -> None:
        beats = 0
        while True:
            await asyncio.sleep(TICK)
            if front is not None:
                front.tick()
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

    async def _flush_writes(self, front: Front) -> None:
        """Give answers still in transport buffers a moment to reach their clients."""
        for _ in range(20):
            busy = [
                c
                for c in front.connections
                if c.transport is not None and c.transport.get_write_buffer_size()
            ]
            if not busy:
                return
            await asyncio.sleep(0.05)


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
