"""A worker process: one uvloop event loop for its whole life, serving HTTP or the Runtime API."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable

import uvloop

from worker import aws, jobs, scratch
from worker.config import Config
from worker.handler import Handler
from worker.inference import host as inference
from worker.lanes import Lane, Lanes
from worker.pool import Pool
from worker.profiles import MARATHON, SPRINTER, Profiles, parse_overrides
from worker.sources.http import Front, HttpProtocol
from worker.sources.runtime_api import RuntimeApiSource
from worker.sources.sqs import SqsSource
from worker.telemetry import logs
from worker.telemetry.metrics import Metrics, SnapshotStore, merge, render

log = logging.getLogger("worker.process")

#: How often the Date header, connection deadlines and the metrics snapshot are refreshed.
TICK = 0.5


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
    ) -> None:
        self.index = index
        self.config = config
        self.handler = handler
        self.sock = sock
        self.root = root
        self.name = f"worker-{index}"
        self.store = SnapshotStore(os.path.join(root, "metrics"))
        self.metrics = Metrics()
        self.stopping: asyncio.Event | None = None

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
        worker_tmp = scratch.enter_worker_dir(self.root)
        slots = self.config.slots_for(self.index)
        lanes = self._lanes(slots)
        pool = Pool(
            self.handler,
            lanes,
            self.config,
            worker_tmp=worker_tmp,
            metrics=self.metrics,
        )
        cfg = self.config
        models = inference.start(self.metrics, cfg.worker_processes, cfg.model_threads)
        pool.start()
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
        if self.config.mode == "lambda":
            code, finished = await self._serve_runtime_api(pool, slots)
        elif self.config.mode == "sqs":
            code, finished = await self._serve_sqs(pool, lanes, clients)
        else:
            code, finished = await self._serve_http(pool)
        if models is not None:
            inference.stop()
        await clients.close()
        self.store.write(self.name, self.metrics.snapshot() | {"gauges": {}})
        log.info("worker stopped", extra={"fields": {"pid": os.getpid(), "drained": finished}})
        return code

    def _lanes(self, slots: int) -> Lanes:
        cfg = self.config
        if cfg.mode == "lambda":
            # One poller per slot: the lane never holds more than its slots.
            return Lanes([Lane(SPRINTER, slots, slots)])
        if cfg.mode == "sqs":
            # One queue, one route: one lane, whose queued places let the pollers fetch the
            # next batches while the slots are busy (one per slot unless set).
            return Lanes(
                [Lane(SPRINTER, slots, cfg.queue_for(self.index) if cfg.queue_size else slots)]
            )
        sprint, marathon = cfg.lane_slots(self.index)
        queue = cfg.queue_for(self.index)
        lanes = [Lane(SPRINTER, sprint, queue)]
        if marathon:
            lanes.append(Lane(MARATHON, marathon, queue))
        profiles = Profiles(
            slow_seconds=cfg.marathon_seconds,
            large_bytes=cfg.marathon_bytes,
            overrides=parse_overrides(cfg.routes),
        )
        return Lanes(lanes, profiles)

    async def _serve_sqs(self, pool: Pool, lanes: Lanes, clients: aws.Clients) -> tuple[int, bool]:
        """Poll the queue, and serve HTTP too (health, readiness, metrics, the Invoke API)."""
        assert self.stopping is not None
        cfg = self.config
        source = SqsSource(
            queue_url=cfg.queue_url,
            submit=pool.submit,
            room=sum(lane.slots + lane.queue_size for lane in lanes.all),
            clients=clients,
            metrics=self.metrics,
            batch_size=cfg.batch_size,
            pollers=cfg.pollers,
            wait_seconds=cfg.wait_seconds,
            visibility_timeout=cfg.visibility_timeout,
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
        assert self.stopping is not None and self.sock is not None
        loop = asyncio.get_running_loop()
        front = Front(self.config, pool.submit, metrics_text=self.metrics_text, pid=os.getpid())
        server = await loop.create_server(lambda: HttpProtocol(front), sock=self.sock, backlog=2048)
        ticker = asyncio.ensure_future(self._tick(front))
        await self.stopping.wait()
        if before_drain is not None:
            await before_drain()
        # Drain: stop accepting, refuse new requests on open connections (503 and
        # `connection: close`), let everything accepted finish within the grace period.
        front.draining = True
        server.close()
        front.close_idle()
        finished = await pool.drain(max(0.1, self.config.grace - 0.5))
        await self._flush_writes(front)
        for conn in list(front.connections):
            conn.close()
        ticker.cancel()
        return 0, finished

    async def _serve_runtime_api(self, pool: Pool, slots: int) -> tuple[int, bool]:
        assert self.stopping is not None
        source = RuntimeApiSource(
            self.config.runtime_api,
            pool.submit,
            slots=slots,
            attempts=self.config.runtime_api_attempts,
        )
        polling = asyncio.ensure_future(source.run())
        ticker = asyncio.ensure_future(self._tick(None))
        stop = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait([polling, stop], return_when=asyncio.FIRST_COMPLETED)
        # Drain: no new /next. The lanes stay open until every poller is done, so an event
        # fetched just before the signal still runs; pollers end once their answer is posted.
        source.stop()
        done, _ = await asyncio.wait([polling], timeout=max(0.1, self.config.grace - 0.5))
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

    async def _tick(self, front: Front | None) -> None:
        beats = 0
        while True:
            await asyncio.sleep(TICK)
            if front is not None:
                front.tick()
            beats += 1
            if beats % 2 == 0:
                try:
                    self.store.write(self.name, self.metrics.snapshot())
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


def run(
    *, index: int, config: Config, handler: Handler, sock: socket.socket | None, root: str
) -> int:
    """Body of a forked worker process; returns its exit code."""
    # The supervisor blocks its signals to wait on them; a worker takes them normally.
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the supervisor, which drains
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    jobs.reseed()
    logs.configure(config.log_level, config.log_format)
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    worker = WorkerProcess(index=index, config=config, handler=handler, sock=sock, root=root)
    try:
        return loop.run_until_complete(worker.main())
    except Exception:
        log.exception("worker failed")
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
