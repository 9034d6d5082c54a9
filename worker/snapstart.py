"""SnapStart: the snapshot and restore lifecycle of a Lambda environment, in every process.

When the platform sets `AWS_LAMBDA_INITIALIZATION_TYPE=snap-start`, the init phase ends
with a snapshot of the whole environment, and every environment that later serves is a
restore of it. So, once the handler is imported, the models are loaded and the worker
processes have started (each with its pool, its pooled clients and its loop, but no poller
yet):

1. every process runs its before-snapshot hooks, the function's (registered with AWS's
   `snapshot_restore_py`, in reverse order of registration, as awslambdaric runs them)
   and then the runtime's own (pooled AWS clients closed, the model host connection
   closed), and says so to the supervisor over its channel (a socket pair made at its fork);
2. the supervisor, once every process is quiet, calls `GET /runtime/restore/next`: the
   snapshot is taken while it waits, and it returns in a restored environment;
3. every process then runs its after-restore hooks, the runtime's first (`random` and the
   request ids reseeded, the clients that were open reopened from a fresh session, so
   credentials are read again, the model host reconnected), then the function's, in order
   of registration; only when every process has is any told to poll `/next`.

A failing before-snapshot hook is an init error (`Runtime.BeforeSnapshotError`, posted to
`/runtime/init/error`); a failing after-restore hook is posted to `/runtime/restore/error`
(`Runtime.AfterRestoreError`), as awslambdaric reports them; either way the environment
ends. Worker processes forked after the restore (replacements) take no part: their parent
is restored already.

Hooks run in the supervisor too: workers forked later inherit its state, and a connection
it holds would be in the snapshot. In a worker the function's hooks run on a thread of
their own, as sync code runs there (no running loop), and the runtime's on its loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import inspect
import logging
import random
import select
import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

import orjson

from worker import jobs
from worker.config import Config
from worker.errors import LambdaError, from_exception
from worker.sources.runtime_api import parse_address
from worker.telemetry import logs

log = logging.getLogger("worker.snapstart")

#: AWS_LAMBDA_INITIALIZATION_TYPE's value in an environment that will be snapshotted.
INIT_TYPE = "snap-start"
#: The error types awslambdaric reports a failing hook with (in the error-type header).
BEFORE_SNAPSHOT_ERROR = "Runtime.BeforeSnapshotError"
AFTER_RESTORE_ERROR = "Runtime.AfterRestoreError"
RESTORE_NEXT = "/2018-06-01/runtime/restore/next"
RESTORE_ERROR = "/2018-06-01/runtime/restore/error"
INIT_ERROR = "/2018-06-01/runtime/init/error"
#: How often the supervisor, waiting, looks for a SIGTERM (it holds its signals blocked).
WAKE = 0.25

#: (function, args, kwargs): a registration, as `snapshot_restore_py` keeps them.
Hook = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]
Outcome = Literal["restored", "stopped", "failed"]

# The runtime's own hooks, kept apart from the function's: they must run after the
# function's before the snapshot (a hook may still use a client) and before them after.
_before: list[Hook] = []
_after: list[Hook] = []


def register_before_snapshot(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A runtime hook to run before the snapshot (as `snapshot_restore_py`'s; it may
    return an awaitable, awaited on the worker's loop)."""
    _before.append((func, args, kwargs))
    return func


def register_after_restore(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A runtime hook to run after the restore (see `register_before_snapshot`)."""
    _after.append((func, args, kwargs))
    return func


def enabled(config: Config) -> bool:
    return config.mode == "lambda" and config.initialization_type == INIT_TYPE


def function_hooks() -> tuple[list[Hook], list[Hook]]:
    """The function's hooks: `snapshot_restore_py`'s registries, when its code imported it
    (none otherwise, and no import)."""
    module = sys.modules.get("snapshot_restore_py")
    if module is None:
        return [], []
    return list(module.get_before_snapshot()), list(module.get_after_restore())


def _call_all(hooks: list[Hook]) -> None:
    """The function's hooks, where no loop runs (a thread of their own, the supervisor)."""
    for func, args, kwargs in hooks:
        result = func(*args, **kwargs)
        if inspect.iscoroutine(result):
            # awslambdaric would leave an async hook's coroutine unrun: run it instead.
            asyncio.run(result)


async def _call_all_async(hooks: list[Hook]) -> None:
    for func, args, kwargs in hooks:
        result = func(*args, **kwargs)
        if inspect.isawaitable(result):
            await result


async def _on_thread(hooks: list[Hook]) -> None:
    """The function's hooks on a thread that ends with them: no thread is left mid-call at
    the snapshot, and sync code sees no running loop, as under awslambdaric."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def body() -> None:
        try:
            _call_all(hooks)
        except BaseException as exc:
            loop.call_soon_threadsafe(_settle, done, exc)
        else:
            loop.call_soon_threadsafe(_settle, done, None)

    thread = threading.Thread(target=body, name="snapstart-hooks")
    thread.start()
    try:
        await done
    finally:
        thread.join()


def _on_own_loop(hooks: list[Hook]) -> None:
    """The runtime's hooks in the supervisor, which runs no loop: on one of their own."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_call_all_async(hooks))
    finally:
        loop.close()


def _settle(done: asyncio.Future[None], exc: BaseException | None) -> None:
    if exc is None:
        done.set_result(None)
    else:
        done.set_exception(exc)


def _reseed() -> None:
    """Every environment restored from one snapshot would draw the same numbers and ids."""
    random.seed()
    jobs.reseed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()  # its global generator, when the function's code uses it


async def _close_clients() -> None:
    from worker import aws

    await aws.current.quiesce()


async def _reopen_clients() -> None:
    from worker import aws

    await aws.current.reopen()


async def _close_models() -> None:
    from worker.inference import host

    remote = host.current.remote if host.current is not None else None
    if remote is not None:
        remote.close()
        if remote.reader is not None:
            await asyncio.wait([remote.reader])


async def _reopen_models() -> None:
    from worker.inference import host

    remote = host.current.remote if host.current is not None else None
    if remote is not None:
        try:
            await remote.reconnect()
        except LambdaError as exc:  # restarting: the first request connects again
            log.warning("the model host is not reachable after the restore: %s", exc)


# The runtime's resources, in every process: its pooled AWS clients (a hook of the
# function's may have used them), and a worker's connection to the model host.
register_after_restore(_reseed)
register_before_snapshot(_close_clients)
register_after_restore(_reopen_clients)
register_before_snapshot(_close_models)
register_after_restore(_reopen_models)


# -- a worker process's side ---------------------------------------------------------------

#: This worker's end of its channel to the supervisor; None when there is no snapshot to
#: take part in (not snap-start, or forked after the restore).
_channel: socket.socket | None = None


async def checkpoint(stopping: asyncio.Event) -> Literal["serve", "stop", "failed"]:
    """In a worker, on its loop, before its first `/next`: take part in the snapshot.

    "serve": go on and poll (restored, or no snapshot here); "stop": told to stop first;
    "failed": a hook failed (the supervisor reports it)."""
    global _channel
    channel, _channel = _channel, None
    if channel is None:
        return "serve"
    channel.setblocking(False)
    words = _Words(channel)
    try:
        before, after = function_hooks()
        try:
            await _on_thread(before[::-1])
            await _call_all_async(_before[::-1])
        except Exception as exc:
            await words.send(b"failed " + _report(exc, BEFORE_SNAPSHOT_ERROR))
            return "failed"
        await words.send(b"quiesced")
        if await words.receive(stopping) != b"restore":
            return "stop"
        try:
            await _call_all_async(_after)
            await _on_thread(after)
        except Exception as exc:
            await words.send(b"failed " + _report(exc, AFTER_RESTORE_ERROR))
            return "failed"
        await words.send(b"restored")
        return "serve" if await words.receive(stopping) == b"go" else "stop"
    except OSError:  # the supervisor is gone
        return "stop"
    finally:
        channel.close()


def _report(exc: BaseException, kind: str) -> bytes:
    """Log a failed hook where it failed, as awslambdaric logs it; the error's body for
    the supervisor to post."""
    error = from_exception(exc)
    logs.report_error(error, "")
    log.error("a %s hook failed: %s: %s", _phase(kind), error.error_type, error.message)
    return orjson.dumps(error.body())


def _phase(kind: str) -> str:
    return "before-snapshot" if kind == BEFORE_SNAPSHOT_ERROR else "after-restore"


class _Words:
    """One-line messages over a worker's channel, on its loop."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    async def send(self, word: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, word + b"\n")

    async def receive(self, stopping: asyncio.Event) -> bytes:
        """The next line; b"" at the channel's end or once `stopping` is set."""
        loop = asyncio.get_running_loop()
        stop = asyncio.ensure_future(stopping.wait())
        try:
            while b"\n" not in self.buffer:
                read = asyncio.ensure_future(loop.sock_recv(self.sock, 4096))
                await asyncio.wait([read, stop], return_when=asyncio.FIRST_COMPLETED)
                if not read.done():
                    read.cancel()
                    return b""
                data = read.result()
                if not data:
                    return b""
                self.buffer += data
        finally:
            stop.cancel()
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line


# -- the supervisor's side -----------------------------------------------------------------


class _Stopped(Exception):
    """SIGTERM or SIGINT came while the supervisor waited."""


class Lifecycle:
    """The supervisor's part: the workers' channels, the restore, and the reports."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.channels: dict[int, socket.socket] = {}  # worker pid -> the supervisor's end
        self.pair: tuple[socket.socket, socket.socket] | None = None
        self.done = False

    def before_fork(self) -> None:
        """Make the channel of the worker about to be forked (none after the restore)."""
        self.pair = None if self.done else socket.socketpair()

    def in_worker(self) -> None:
        """In the forked worker: keep its own end; close every end that is not its own, so
        each channel ends when its worker does."""
        global _channel
        if self.pair is not None:
            self.pair[0].close()
            _channel = self.pair[1]
        for sock in self.channels.values():
            sock.close()
        self.channels.clear()

    def in_supervisor(self, pid: int) -> None:
        if self.pair is not None:
            self.pair[1].close()
            self.channels[pid] = self.pair[0]
        self.pair = None

    def run(self, caught: list[int]) -> Outcome:
        """Snapshot and restore, once every worker has started; `caught`: the signals the
        supervisor's handlers recorded (its loop takes them after this returns)."""
        started = time.monotonic()
        before, after = function_hooks()
        try:
            try:
                _call_all(before[::-1])
                _on_own_loop(_before[::-1])
            except Exception as exc:
                return self._fail(from_exception(exc), BEFORE_SNAPSHOT_ERROR)
            failed = self._collect(b"quiesced", caught)
            if failed is not None:
                return self._fail(failed, BEFORE_SNAPSHOT_ERROR)
            log.info(
                "ready for the snapshot",
                extra={
                    "fields": {
                        "processes": len(self.channels) + 1,
                        "seconds": round(time.monotonic() - started, 3),
                    }
                },
            )
            try:
                self._restore_next(caught)
            except (OSError, http.client.HTTPException, LambdaError) as exc:
                error = exc if isinstance(exc, LambdaError) else from_exception(exc)
                return self._fail(error, BEFORE_SNAPSHOT_ERROR)
            restored = time.monotonic()
            self._send_all(b"restore")
            try:
                _on_own_loop(_after)
                _call_all(after)
            except Exception as exc:
                return self._fail(from_exception(exc), AFTER_RESTORE_ERROR)
            failed = self._collect(b"restored", caught)
            if failed is not None:
                return self._fail(failed, AFTER_RESTORE_ERROR)
            self._send_all(b"go")
            log.info(
                "restored",
                extra={
                    "fields": {
                        "processes": len(self.channels) + 1,
                        "seconds": round(time.monotonic() - restored, 3),
                    }
                },
            )
            return "restored"
        except _Stopped:
            return "stopped"
        finally:
            self.close()

    def close(self) -> None:
        """The lifecycle is over: the workers' channels end (one still waiting stops)."""
        self.done = True
        for sock in self.channels.values():
            sock.close()

    def _send_all(self, word: bytes) -> None:
        for sock in self.channels.values():
            with contextlib.suppress(OSError):  # one that died is seen by _collect
                sock.sendall(word + b"\n")

    def _collect(self, word: bytes, caught: list[int]) -> LambdaError | None:
        """Wait until every worker has said `word`; the first failure otherwise (a failed
        hook, a worker that died or did not answer within the init timeout)."""
        deadline = time.monotonic() + self.config.init_timeout
        buffers = dict.fromkeys(self.channels, b"")
        waiting = set(self.channels)
        with selectors.DefaultSelector() as sel:
            for pid in waiting:
                sel.register(self.channels[pid], selectors.EVENT_READ, pid)
            while waiting:
                if _stop_requested(caught):
                    raise _Stopped
                left = deadline - time.monotonic()
                if left <= 0:
                    return LambdaError(
                        "Runtime.InitTimeout",
                        f"{len(waiting)} worker process(es) did not say {word.decode()} in time",
                    )
                for key, _ in sel.select(min(WAKE, left)):
                    pid = key.data
                    try:
                        data = self.channels[pid].recv(4096)
                    except OSError:
                        data = b""
                    if not data:
                        return LambdaError(
                            "Runtime.ExitError",
                            f"worker process {pid} exited before it said {word.decode()}",
                        )
                    buffers[pid] += data
                    while b"\n" in buffers[pid]:
                        line, _, buffers[pid] = buffers[pid].partition(b"\n")
                        if line.startswith(b"failed "):
                            return _error_of(line[len(b"failed ") :])
                        if line == word:
                            waiting.discard(pid)
                            sel.unregister(self.channels[pid])
        return None

    def _restore_next(self, caught: list[int]) -> None:
        """`GET /runtime/restore/next`: the snapshot is taken while it waits."""
        host, port = parse_address(self.config.runtime_api)
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            conn.request("GET", RESTORE_NEXT)
            assert conn.sock is not None
            # The wait has no bound (the platform restores when it needs an environment):
            # SIGTERM must still end it.
            while not select.select([conn.sock], [], [], WAKE)[0]:
                if _stop_requested(caught):
                    raise _Stopped
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise LambdaError(
                BEFORE_SNAPSHOT_ERROR, f"restore/next answered {resp.status}: {body[:200]!r}"
            )

    def _fail(self, error: LambdaError, kind: str) -> Outcome:
        """Report a failed lifecycle as awslambdaric does: the error in the log, then to
        `/init/error` (before the snapshot) or `/restore/error` (after the restore)."""
        log.error("snapstart failed %s: %s: %s", _phase(kind), error.error_type, error.message)
        logs.report_error(error, "")
        path = INIT_ERROR if kind == BEFORE_SNAPSHOT_ERROR else RESTORE_ERROR
        post_error(self.config.runtime_api, path, error, kind)
        return "failed"


def post_error(runtime_api: str, path: str, error: LambdaError, kind: str) -> int | None:
    """POST the error's Lambda body to `path`, its kind in the error-type header; the
    status, or None when the Runtime API could not be reached."""
    host, port = parse_address(runtime_api)
    headers = {
        "Lambda-Runtime-Function-Error-Type": kind,
        "Content-Type": "application/json",
    }
    try:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request("POST", path, orjson.dumps(error.body()), headers)
        status = conn.getresponse().status
        conn.close()
    except OSError as exc:
        log.error("could not report to %s: %s", path, exc)
        return None
    if status not in (202, 403):
        log.error("the Runtime API answered %d to %s", status, path)
    return status


def _error_of(body: bytes) -> LambdaError:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = {}
    stack = data.get("stackTrace") if isinstance(data, dict) else None
    return LambdaError(
        str(data.get("errorType", "Runtime.Unknown")) if isinstance(data, dict) else "",
        str(data.get("errorMessage", "")) if isinstance(data, dict) else "",
        [str(x) for x in stack] if isinstance(stack, list) else [],
    )


def _stop_requested(caught: list[int]) -> bool:
    """A SIGTERM or SIGINT pending (left for the supervisor's loop to take)."""
    stops = {signal.SIGTERM, signal.SIGINT}
    return any(sig in stops for sig in caught) or bool(signal.sigpending() & stops)


def start(config: Config) -> Lifecycle | None:
    """The supervisor's lifecycle when this environment will be snapshotted."""
    return Lifecycle(config) if enabled(config) else None
