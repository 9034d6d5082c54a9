"""ASGI apps served natively: a request as an ASGI 3 `http` scope on the worker's loop, the
app's messages as a whole response or a stream, and the lifespan protocol per worker.

No server stack around the app: the HTTP front parses the request, the job goes through
its lane to a slot like any invocation, and the slot runs `run_asgi` (an `AsgiApp` is the
handler). A response whose first body message is also its last is answered whole, with a
content-length; one sent in several messages streams through the job's `ResponseStream`
as it is sent (chunked in `serve`), or is gathered where the source cannot stream.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from worker.errors import LambdaError, stack_of
from worker.httpmsg import HttpRequest, HttpResponse, lambda_adapter
from worker.streaming import STREAMED, Headers, ResponseStream, stream_of

log = logging.getLogger("worker.asgi")

Scope = dict[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

#: How long an app's lifespan shutdown may take once the worker has drained (s). It runs
#: after the drain's grace, within the margin the supervisor leaves before it kills
#: stragglers (`supervisor.KILL_MARGIN`).
SHUTDOWN_TIMEOUT = 1.0

_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]


def server_error() -> HttpResponse:
    """What a client gets when the app failed before its response started (as uvicorn)."""
    return HttpResponse(500, list(_TEXT), b"Internal Server Error")


class AsgiApp:
    """An ASGI app as a handler: an `HttpRequest` event (from `worker serve`) is served
    natively; any other event (API Gateway, ALB, Function URL) goes to the Lambda HTTP
    adapter. `state` is what the app's lifespan startup put in its scope's state, of
    which every request's scope gets a shallow copy."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self.lifespan: Lifespan | None = None

    def __call__(self, event: Any, context: Any) -> Awaitable[Any]:
        # Returns the coroutine rather than being one: one frame fewer per request.
        if type(event) is HttpRequest:
            return run_asgi(self.app, event, stream_of(context), self.state)
        return self._adapt(event, context)

    async def _adapt(self, event: Any, context: Any) -> Any:
        answer = lambda_adapter().handle_asgi(self.app, event, context, self.state)
        return await answer if inspect.isawaitable(answer) else answer

    async def startup(self, timeout: float) -> None:
        """The lifespan startup, once per worker process, before it serves. An app that
        does not speak lifespan is served without it; one whose startup fails raises an
        init error (LambdaError)."""
        self.lifespan = Lifespan(self.app, self.state)
        await self.lifespan.startup(timeout)

    async def shutdown(self, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        """The lifespan shutdown, once the worker has drained."""
        if self.lifespan is not None:
            await self.lifespan.shutdown(timeout)
            self.lifespan = None

    def __repr__(self) -> str:
        return f"AsgiApp({self.app!r})"


class Lifespan:
    """The lifespan protocol with one app: startup, then shutdown, on the worker's loop.

    As uvicorn's "auto" mode: an app that raises before it has taken the startup message
    (it refuses the `lifespan` scope), or returns without answering, does not support
    lifespan and is served without it. An app that answers `lifespan.startup.failed`, or
    raises after taking the startup message, has a failing startup: an init error.
    """

    def __init__(self, app: App, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state
        self.supported = False
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._taken = 0  # messages the app has received
        self._started: asyncio.Future[str | None] | None = None  # failure message or None
        self._stopped: asyncio.Future[str | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    async def startup(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        self._started = loop.create_future()
        self._stopped = loop.create_future()
        self._inbox.put_nowait({"type": "lifespan.startup"})
        self._task = loop.create_task(self._main())
        try:
            failure = await asyncio.wait_for(asyncio.shield(self._started), timeout)
        except asyncio.CancelledError:
            self._task.cancel()
            raise
        except TimeoutError:
            self._task.cancel()
            raise LambdaError(
                "Runtime.InitTimeout",
                f"ASGI lifespan startup did not complete within {timeout:.2f} seconds"
                " (WORKER_INIT_TIMEOUT)",
            ) from None
        if failure is None:
            return
        if failure == _UNSUPPORTED:
            log.debug("the app does not support the ASGI lifespan protocol: served without it")
            return
        # Starlette answers `failed` and then raises: the exception tells the type.
        await asyncio.wait([self._task], timeout=1.0)
        error = self._error
        if error is not None:
            raise LambdaError(
                type(error).__name__,
                f"ASGI lifespan startup failed: {error}",
                stack_of(error),
            )
        lines = failure.strip().splitlines()
        raise LambdaError(
            "Runtime.LifespanStartupFailed",
            f"ASGI lifespan startup failed: {lines[-1] if lines else 'lifespan.startup.failed'}",
            failure.splitlines(keepends=True),
        )

    async def shutdown(self, timeout: float) -> None:
        if not self.supported or self._task is None or self._stopped is None:
            return
        self._inbox.put_nowait({"type": "lifespan.shutdown"})
        try:
            failure = await asyncio.wait_for(asyncio.shield(self._stopped), timeout)
        except TimeoutError:
            log.error("ASGI lifespan shutdown did not complete within %.2f seconds", timeout)
            self._task.cancel()
            return
        if failure is not None:
            lines = failure.strip().splitlines()
            log.error("ASGI lifespan shutdown failed: %s", lines[-1] if lines else "")
        await asyncio.wait([self._task], timeout=timeout)

    async def _main(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self.app(scope, self._receive, self._send)
        except Exception as exc:
            self._error = exc
            if self._taken == 0 and not self.supported:
                _settle(self._started, _UNSUPPORTED)  # it refused the scope
            else:
                text = f"{type(exc).__name__}: {exc}"
                _settle(self._started, text)
                _settle(self._stopped, text)
        finally:
            # Returned (or failed) without answering: nothing more will come.
            _settle(self._started, _UNSUPPORTED)
            _settle(self._stopped, None)

    async def _receive(self) -> Message:
        self._taken += 1
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self.supported = True
            _settle(self._started, None)
        elif kind == "lifespan.startup.failed":
            _settle(self._started, message.get("message") or "")
        elif kind == "lifespan.shutdown.complete":
            _settle(self._stopped, None)
        elif kind == "lifespan.shutdown.failed":
            _settle(self._stopped, message.get("message") or "")
        else:
            raise RuntimeError(f"Unexpected ASGI lifespan message '{kind}'")


_UNSUPPORTED = "\0unsupported"


def _settle(future: asyncio.Future[str | None] | None, value: str | None) -> None:
    if future is not None and not future.done():
        future.set_result(value)


async def run_asgi(
    app: App, request: HttpRequest, stream: ResponseStream | None, state: dict[str, Any]
) -> HttpResponse | Any:
    """Serve one request with an ASGI app: an `HttpResponse`, or `STREAMED` once the answer
    went out through `stream` (None: a streamed body is gathered).

    An exception before the response started is a 500 (logged with its traceback); after
    a streamed head went out it propagates, and the source aborts the answer. Cancellation
    (a deadline, a drain out of time) always propagates.
    """
    cycle = _Cycle(request.body, stream)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": request.http_version,
        "server": request.server,
        "client": request.client,
        "scheme": request.scheme,
        "method": request.method,
        "root_path": request.root_path,
        "path": request.path,
        "raw_path": request.raw_path,
        "query_string": request.query_string,
        "headers": request.headers,
        "state": state.copy(),
    }
    try:
        await app(scope, cycle.receive, cycle.send)
    except Exception as exc:
        if cycle.complete:
            # After the whole response (Starlette's error middleware sends its 500, then
            # raises; a background task fails): the client keeps what the app sent.
            log.error("Exception in ASGI application", exc_info=exc)
            return STREAMED if cycle.streaming else cycle.response
        if cycle.streaming:
            raise
        log.error("Exception in ASGI application", exc_info=exc)
        return server_error()
    finally:
        cycle.unwatch()
    if cycle.response is not None:
        return cycle.response
    if cycle.streaming:
        if cycle.complete:
            return STREAMED
        raise LambdaError(
            "Runtime.IncompleteResponse", "The ASGI app returned without completing its response"
        )
    if not cycle.disconnected:
        log.error(
            "ASGI callable returned without %s response",
            "completing" if cycle.status else "starting",
        )
    return server_error()


class _Cycle:
    """One request's `receive` and `send`."""

    __slots__ = (
        "body",
        "complete",
        "disconnected",
        "headers",
        "parts",
        "response",
        "status",
        "stream",
        "streaming",
        "waiter",
        "watched",
    )

    def __init__(self, body: bytes, stream: ResponseStream | None) -> None:
        self.body: bytes | None = body  # until the app has received it
        self.stream = stream
        self.status = 0  # of `http.response.start`, once sent
        self.headers: Headers = []
        self.parts: list[bytes] = []  # a body in several messages, gathered
        self.response: HttpResponse | None = None
        self.streaming = False
        self.complete = False
        self.disconnected = False
        self.waiter: asyncio.Future[None] | None = None  # a receive() after the body
        self.watched: asyncio.Future[None] | None = None  # the stream's disconnection

    async def receive(self) -> Message:
        body = self.body
        if body is not None:
            self.body = None
            return {"type": "http.request", "body": body, "more_body": False}
        if not self.complete and not self.disconnected:
            # Nothing more to read: what comes next is the client leaving, or the end of
            # the response (after which the request is over), as uvicorn has it.
            waiter = self.waiter
            if waiter is None:
                waiter = self.waiter = asyncio.get_running_loop().create_future()
                self._watch()
            # Shielded: a receiver that is cancelled (Starlette stops its disconnect
            # listener so) must not cancel the wait of another.
            await asyncio.shield(waiter)
        return {"type": "http.disconnect"}

    def _watch(self) -> None:
        if self.watched is not None or self.stream is None:
            return
        disconnected = getattr(self.stream, "disconnected", None)
        if disconnected is None:
            return
        watched: asyncio.Future[None] = disconnected()
        if watched.done():
            self._gone(watched)
        else:
            self.watched = watched
            watched.add_done_callback(self._gone)

    def unwatch(self) -> None:
        # The connection outlives the request (keep-alive): take the callback back.
        if self.watched is not None:
            self.watched.remove_done_callback(self._gone)
            self.watched = None

    def _gone(self, _: asyncio.Future[None]) -> None:
        self.disconnected = True
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def send(self, message: Message) -> None:
        if self.disconnected:
            return  # the client is gone: dropped without error, as uvicorn does
        kind = message["type"]
        if not self.status:
            if kind != "http.response.start":
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.start', but got '{kind}'."
                )
            self.status = int(message["status"])
            headers = message.get("headers") or []
            self.headers = headers if type(headers) is list else list(headers)
            return
        if self.complete:
            raise RuntimeError(
                f"Unexpected ASGI message '{kind}' sent, after response already completed."
            )
        if kind != "http.response.body":
            raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{kind}'.")
        body = message.get("body", b"")
        if type(body) is not bytes:
            body = bytes(body)
        more = message.get("more_body", False)
        stream = self.stream
        if not self.streaming:
            if not more:
                # The usual case: the whole body in one message.
                if self.parts:
                    self.parts.append(body)
                    body = b"".join(self.parts)
                self.response = HttpResponse(self.status, self.headers, body)
                self._finish()
                return
            if stream is None:
                self.parts.append(body)
                return
            stream.start(self.status, self.headers)
            self.streaming = True
        assert stream is not None
        if body:
            wait = stream.write(body)
            if wait is not None:
                await wait
        if not more:
            stream.end()
            self._finish()

    def _finish(self) -> None:
        self.complete = True
        self._wake()
