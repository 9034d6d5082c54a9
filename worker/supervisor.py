"""The supervisor: init once, open the socket, fork workers, replace the dead, drain on SIGTERM.

The supervisor runs no event loop and, once init is done, no threads: it forks workers
from a quiet process, so every worker inherits the loaded handler (and, on the CPU,
whatever the init phase loaded) copy-on-write, and a replacement starts in milliseconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import sys
import time
from typing import TYPE_CHECKING

from worker import environment, initprofile, process, scratch, syncloop
from worker import handler as handlers
from worker.config import Config
from worker.errors import LambdaError
from worker.handler import Handler
from worker.inference import registry
from worker.inflight import Inflight, post_exit_errors
from worker.initphase import EXIT_INIT_FAILED, InitResponder, init_failed, run_init
from worker.sockets import Listeners
from worker.sources.runtime_api import EXIT_API_GONE
from worker.telemetry import lines, logs
from worker.telemetry.metrics import Metrics, SnapshotStore

if TYPE_CHECKING:
    from worker import snapstart
    from worker.inference import modelhost

log = logging.getLogger("worker.supervisor")

SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
#: A worker that dies sooner than this after its start counts as a crash loop.
FAST_FAILURE = 1.0
#: The longest the supervisor sleeps between looks at its workers (s).
WAKE = 0.25
#: Time after the grace period before stragglers are killed.
KILL_MARGIN = 2.0
#: The respawn plan's index for the model host, and how long after its death it restarts
#: (its load fails again at once if a file it needs is gone: no hot loop).
MODEL_HOST = -1
MODEL_HOST_DELAY = 1.0


class Supervisor:
    """Owns the environment: its socket, its scratch root and its worker processes."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.workers: dict[int, tuple[int, float]] = {}  # pid -> (index, started)
        self.failures = 0
        self.stopping = False
        self.metrics = Metrics()
        self.root = ""
        self.api_gone = False
        self.init_failed = False  # a worker's own init failed (initphase.EXIT_INIT_FAILED)
        self.model_host: modelhost.ModelHost | None = None
        self.hosted: list[registry.ModelSpec] = []
        self.listeners: Listeners | None = None
        #: Lambda mode: each worker's invocations in flight, by pid (`worker.inflight`).
        self.inflight: dict[int, Inflight] = {}
        #: SnapStart's snapshot and restore, when the platform asks for it.
        self.snapstart: snapstart.Lifecycle | None = None
        if config.mode == "lambda" and config.initialization_type == "snap-start":
            from worker import snapstart

            self.snapstart = snapstart.start(config)

    def run(self) -> int:
        cfg = self.config
        # Once, before the handler's module is imported, as awslambdaric does; the workers
        # inherit it as it is then (with what the handler's code added to it).
        # Whole lines whichever slot prints them, set before the handler's module keeps
        # a reference to sys.stdout.
        lines.install()
        logs.install(cfg.log_level, cfg.log_format)
        lambda_mode = cfg.mode == "lambda"
        if lambda_mode and not cfg.runtime_api:
            log.error("Lambda mode needs AWS_LAMBDA_RUNTIME_API (host:port of the Runtime API)")
            return 2
        try:
            # Lambda mode listens on nothing: the Runtime API is polled, not served.
            count = 0 if lambda_mode else cfg.worker_processes
            listeners = Listeners.open(cfg.host, cfg.port, count)
        except OSError as exc:
            log.error("cannot listen on %s:%s: %s", cfg.host, cfg.port, exc)
            return 1
        if count:
            from worker import admin  # serve and sqs: the operator's listener

            try:
                listeners.admin = admin.open_socket(cfg.admin_host, cfg.admin_port)
            except OSError as exc:
                listeners.close()
                log.error(
                    "cannot listen on %s:%s for the admin endpoints: %s (WORKER_ADMIN_PORT=0 "
                    "turns them off)",
                    cfg.admin_host,
                    cfg.admin_port,
                    exc,
                )
                return 1
        self.root = scratch.make_root()
        self.store = SnapshotStore(os.path.join(self.root, "metrics"))
        # SIGTERM during init: leave cleanly (the finally below removes the scratch root).
        signal.signal(signal.SIGTERM, _raise_exit)
        try:
            responder = InitResponder(listeners.sockets) if listeners.sockets else None
            with responder or contextlib.nullcontext():
                handler = run_init(lambda: self._init(cfg, listeners), cfg.init_timeout)
        except LambdaError as exc:
            init_failed(cfg, exc)
            listeners.close()
            scratch.remove(self.root)
            return 1
        except SystemExit:
            listeners.close()
            scratch.remove(self.root)
            return 0
        try:
            return self._supervise(listeners, handler)
        finally:
            listeners.close()
            scratch.remove(self.root)

    def _init(self, cfg: Config, listeners: Listeners) -> Handler:
        """The init phase: import the handler, then load every model it registered: the
        model host's first (it is forked before this process loads anything), then the
        ones the workers will share."""
        # Code run at import may ask for an event loop and read Lambda's variables, as
        # under the official runtime.
        syncloop.install()
        environment.export(cfg)
        initprofile.mark("runtime_import")
        handler = handlers.load(cfg.handler)
        initprofile.mark("handler_import")
        models = registry.MODELS.values()
        self.hosted = [s for s in models if registry.needs_host(s, cfg.model_host)]
        self.listeners = listeners
        try:
            if self.hosted:
                self._start_model_host()
                assert self.model_host is not None
                self.model_host.wait_ready()
            registry.load_all()
            initprofile.mark("model_load")
            if handler.runs_a_framework:
                self.config = dataclasses.replace(self.config, frameworks=True)
            if any(spec.fn is not None for spec in registry.MODELS.values()):
                # Each worker batches on its own share of the cores (config.py says why).
                self.config = dataclasses.replace(self.config, local_models=True)
        except BaseException:
            if self.model_host is not None:
                self.model_host.kill()
                self.model_host = None
            raise
        return handler

    def _start_model_host(self) -> None:
        # Looked up at each start: the listening sockets open now (closed on a drain).
        inherited = self.listeners.descriptors if self.listeners else ()
        from worker.inference.modelhost import ModelHost

        self.model_host = ModelHost.start(
            self.hosted, self.root, self.config.model_threads, inherited
        )

    def _supervise(self, listeners: Listeners, handler: Handler) -> int:
        # The signals are taken synchronously (sigtimedwait), so the main thread blocks
        # them. But threads the init phase started (torch's pool) do not block them, and
        # the kernel hands a process-wide signal to any thread that does not: a SIGCHLD
        # or SIGTERM arriving while this thread is not inside sigtimedwait would then be
        # lost (SIGCHLD) or kill the process without a drain (SIGTERM's default). So each
        # has a handler that only records it; the loop takes it from `caught`, and reaps
        # on every wake-up besides, so a dead worker is never missed.
        caught: list[int] = []
        for each in SIGNALS:
            signal.signal(each, lambda number, _frame: caught.append(number))
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        cfg = self.config
        listeners.shrink(cfg.worker_processes)
        log.info(
            "serving",
            extra={
                "fields": {
                    "address": cfg.runtime_api
                    if cfg.mode == "lambda"
                    else f"http://{cfg.host}:{listeners.port}",
                    "handler": cfg.handler,
                    "processes": cfg.worker_processes,
                    "concurrency": cfg.total_concurrency,
                }
            },
        )
        for index in range(cfg.worker_processes):
            self._spawn(index, handler, listeners)
        initprofile.seal()  # a worker forked from now on is a replacement: no init line
        respawn: list[tuple[float, int]] = []  # (when, index)
        kill_at = 0.0
        if self.snapstart is not None and self.snapstart.run(caught) == "failed":
            self.init_failed = self.stopping = True  # reported: the environment ends
            for pid in self.workers:
                _kill(pid, signal.SIGTERM)
            kill_at = time.monotonic() + cfg.grace + KILL_MARGIN
        while self.workers or (respawn and not self.stopping):
            now = time.monotonic()
            for when, index in [r for r in respawn if r[0] <= now]:
                respawn.remove((when, index))
                if self.stopping:
                    continue
                if index == MODEL_HOST:
                    self._start_model_host()  # it loads while the workers serve on
                else:
                    self._spawn(index, handler, listeners)
            waits = [when - now for when, _ in respawn] + ([kill_at - now] if kill_at else [])
            info = signal.sigtimedwait(SIGNALS, max(0.01, min([WAKE, *waits])))
            if kill_at and time.monotonic() >= kill_at:
                for pid in self.workers:
                    log.error(
                        "worker did not drain in time, killing it", extra={"fields": {"pid": pid}}
                    )
                    _kill(pid, signal.SIGKILL)
                kill_at = 0.0
            signo: int = info.si_signo if info is not None else (caught.pop(0) if caught else 0)
            if signo in (signal.SIGTERM, signal.SIGINT) and not self.stopping:
                self.stopping = True
                log.info("draining", extra={"fields": {"grace": cfg.grace}})
                listeners.close()
                for pid in self.workers:
                    _kill(pid, signal.SIGTERM)
                kill_at = time.monotonic() + cfg.grace + KILL_MARGIN
            else:  # SIGCHLD, or a wake-up: collect whatever died meanwhile
                respawn.extend(self._reap())
        if self.model_host is not None:
            # Last: a draining worker's invocations may still be waiting on a batch.
            self.model_host.stop()
            self.model_host = None
        self._record()
        log.info("stopped")
        return 1 if self.api_gone or self.init_failed else 0

    def _spawn(self, index: int, handler: Handler, listeners: Listeners) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        supervisor = os.getpid()
        lambda_mode = self.config.mode == "lambda"
        inflight = Inflight(self.config.slots_for(index)) if lambda_mode else None
        if self.snapstart is not None:
            self.snapstart.before_fork()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                if self.model_host is not None:
                    self.model_host.forget()
                if self.snapstart is not None:
                    self.snapstart.in_worker()
                code = process.run(
                    index=index,
                    config=self.config,
                    handler=handler,
                    sock=listeners.keep_only(index) if listeners.sockets else None,
                    admin_sock=listeners.admin,
                    root=self.root,
                    supervisor=supervisor,
                    inflight=inflight,
                )
            finally:
                os._exit(code)
        self.workers[pid] = (index, time.monotonic())
        if self.snapstart is not None:
            self.snapstart.in_supervisor(pid)
        if inflight is not None:
            self.inflight[pid] = inflight
        self._record()

    def _reap(self) -> list[tuple[float, int]]:
        """Collect dead workers, clean their TMPDIRs, and plan their replacements."""
        plans = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if self.model_host is not None and pid == self.model_host.pid:
                self.model_host.forget()
                self.model_host = None
                if not self.stopping:
                    log.error(
                        "the model host died, starting another",
                        extra={"fields": {"pid": pid, "status": _describe(status)}},
                    )
                    self.metrics.inc("worker_restarts_total", (("process", "model-host"),))
                    plans.append((time.monotonic() + MODEL_HOST_DELAY, MODEL_HOST))
                continue
            if pid not in self.workers:
                continue
            index, started = self.workers.pop(pid)
            scratch.remove(scratch.worker_dir(self.root, pid))
            self._answer_orphans(pid, index, status)
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == EXIT_API_GONE:
                # Replacing the worker would not bring the Runtime API back: end it all.
                self.api_gone = True
                if not self.stopping:
                    self.stopping = True
                    for other in self.workers:
                        _kill(other, signal.SIGTERM)
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == EXIT_INIT_FAILED:
                # Its init (an ASGI app's lifespan startup) failed and said why: every
                # replacement would fail alike, so the environment ends, as when the
                # supervisor's own init fails.
                self.init_failed = True
                if not self.stopping:
                    log.error("a worker's init failed: stopping", extra={"fields": {"pid": pid}})
                    self.stopping = True
                    for other in self.workers:
                        _kill(other, signal.SIGTERM)
            if self.stopping:
                continue
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == process.EXIT_RECYCLE:
                # It reached its invocation or memory limit and drained: a fresh one now.
                log.info("worker recycled", extra={"fields": {"pid": pid}})
                self.metrics.inc("worker_recycles_total")
                plans.append((time.monotonic(), index))
                continue
            lived = time.monotonic() - started
            # A crash loop is a worker failing by itself as soon as it starts; one killed
            # from outside (kill -9, SIGTERM to the worker alone) is replaced at once.
            killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) in (
                signal.SIGKILL,
                signal.SIGTERM,
            )
            self.failures = self.failures + 1 if lived < FAST_FAILURE and not killed else 0
            # Replace at once; back off only when workers die as fast as they start.
            delay = 0.0 if self.failures <= 1 else min(5.0, 0.1 * 2 ** (self.failures - 1))
            log.error(
                "worker died, replacing it",
                extra={"fields": {"pid": pid, "status": _describe(status), "delay": delay}},
            )
            self.metrics.inc("worker_restarts_total")
            plans.append((time.monotonic() + delay, index))
        self._record()
        return plans

    def _answer_orphans(self, pid: int, index: int, status: int) -> None:
        """Account for the invocations a dead worker held. In Lambda mode each is answered
        `Runtime.ExitError`, as Lambda answers them when a runtime exits, instead of waiting
        out its deadline. In `serve` the kernel closed the worker's connections as it died
        (their callers see the connection end); the count comes from its last metrics
        snapshot, at most a tick old."""
        table = self.inflight.pop(pid, None)
        if table is not None:
            ids = table.held()
            table.close()
            lost = float(len(ids))
        else:
            ids = []
            snap = self.store.read(f"worker-{index}") or {}
            gauges = snap.get("gauges", {})
            lost = sum(v for k, v in gauges.items() if k.startswith("worker_in_flight|"))
        if not lost:
            return
        self.metrics.inc("worker_invocations_lost_total", (), lost)
        fields: dict[str, object] = {"pid": pid, "invocations": int(lost)}
        if ids:
            how = (
                f"signal: {signal.Signals(os.WTERMSIG(status)).name.removeprefix('SIG').lower()}"
                if os.WIFSIGNALED(status)
                else f"exit status {os.waitstatus_to_exitcode(status)}"
            )
            fields["posted"] = post_exit_errors(self.config.runtime_api, ids, how)
        log.error("a worker died holding invocations", extra={"fields": fields})

    def _record(self) -> None:
        snap = self.metrics.snapshot()
        snap["gauges"] = {"worker_processes|": float(len(self.workers))}
        with contextlib.suppress(OSError):
            self.store.write("supervisor", snap)


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit {os.waitstatus_to_exitcode(status)}"
