"""ASGI apps the tests serve natively: FastAPI, Starlette and raw ASGI callables.

In-process tests run these on the test's loop, so the apps wait on `gate(name)` events the
test sets (a chunk is sent only after the test has read the one before) and record what
they saw in `seen`. `reset()` starts each test afresh.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import StreamingResponse
from mangum import Mangum
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route

_gates: dict[str, asyncio.Event] = {}
#: What the apps saw, by name, for the tests to check.
seen: dict[str, Any] = {}


def gate(name: str) -> asyncio.Event:
    """An event on the running loop, made on first use by the app or the test."""
    event = _gates.get(name)
    if event is None:
        event = _gates[name] = asyncio.Event()
    return event


def reset() -> None:
    _gates.clear()
    seen.clear()


# -- FastAPI ----------------------------------------------------------------------------


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "hello from startup", "pid": os.getpid()}
    marker = os.environ.get("TEST_SHUTDOWN_MARKER")
    if marker:
        with open(f"{marker}.{os.getpid()}", "w") as f:
            f.write("shut down")


app = FastAPI(lifespan=_lifespan)


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
    return {"item_id": item_id, "q": q}


@app.post("/items")
async def create_item(item: dict[str, Any]) -> dict[str, Any]:
    return {"created": item}


@app.get("/state")
async def state(request: Request) -> dict[str, Any]:
    return {"greeting": request.state.greeting, "pid": request.state.pid}


@app.get("/cookies")
async def cookies(response: Response) -> dict[str, Any]:
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    return {"ok": True}


@app.get("/boom")
async def boom() -> dict[str, Any]:
    raise RuntimeError("the app failed")


@app.get("/slow/{name}")
async def slow(name: str) -> dict[str, Any]:
    seen.setdefault("slow", []).append(name)
    gate(f"slow-{name}-started").set()
    await gate(f"slow-{name}").wait()
    return {"slow": name}


async def _gated_chunks(prefix: str, count: int) -> AsyncIterator[str]:
    for n in range(count):
        if n:
            await gate(f"{prefix}-{n}").wait()  # sent once the test read the one before
        yield f"{prefix} {n}\n"
        gate(f"{prefix}-sent-{n}").set()


@app.get("/stream")
async def stream() -> StreamingResponse:
    return StreamingResponse(_gated_chunks("chunk", 3), media_type="text/plain")


async def _events() -> AsyncIterator[str]:
    for n in range(3):
        if n:
            await gate(f"sse-{n}").wait()
        yield f"event: tick\ndata: {n}\n\n"


@app.get("/sse")
async def sse() -> StreamingResponse:
    return StreamingResponse(_events(), media_type="text/event-stream")


async def _until_disconnect() -> AsyncIterator[str]:
    try:
        yield "first\n"
        await gate("never").wait()  # the client leaves first
        yield "unreachable\n"
    finally:
        gate("stream-closed").set()


@app.get("/forever")
async def forever() -> StreamingResponse:
    return StreamingResponse(_until_disconnect(), media_type="text/plain")


async def _ticks(count: int, pause: float) -> AsyncIterator[str]:
    for n in range(count):
        yield f"tick {n}\n"
        await asyncio.sleep(pause)  # the app's own work between chunks


@app.get("/ticks")
async def ticks(count: int = 5, pause: float = 0.2) -> StreamingResponse:
    return StreamingResponse(_ticks(count, pause), media_type="text/plain")


@app.get("/held")
async def held() -> dict[str, Any]:
    seen["held"] = seen.get("held", 0) + 1
    gate("held-started").set()
    await gate("held").wait()
    return {"held": True}


# -- Starlette --------------------------------------------------------------------------


async def _user(request: Request) -> JSONResponse:
    return JSONResponse({"user": request.path_params["user_id"]})


async def _file(request: Request) -> PlainTextResponse:
    return PlainTextResponse("0123456789")


async def _letters_body() -> AsyncIterator[str]:
    for letter in "abc":
        yield letter


async def _letters(request: Request) -> StreamingResponse:
    return StreamingResponse(_letters_body(), media_type="text/plain")


sub = Starlette(routes=[Route("/orders/{order_id:int}", _user)])

starlette_app = Starlette(
    routes=[
        Route("/users/{user_id}", _user),
        Route("/file", _file),
        Route("/letters", _letters),
        Mount("/api", routes=[Route("/things/{thing}", _user)]),
        Mount("/shop", app=sub),
    ]
)


# -- raw ASGI ---------------------------------------------------------------------------


async def raw_scope(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the scope it got (bytes as latin-1 text) and the body it received."""
    if scope["type"] != "http":
        raise RuntimeError("http only")  # no lifespan: served without it
    message = await receive()
    shown = {k: v for k, v in scope.items() if k not in ("headers", "state")}
    shown = {k: v.decode("latin-1") if isinstance(v, bytes) else v for k, v in shown.items()}
    shown["headers"] = [[k.decode(), v.decode()] for k, v in scope["headers"]]
    shown["state"] = scope["state"]
    shown["body"] = message["body"].decode("latin-1")
    import orjson

    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": orjson.dumps(shown)})


async def raw_disconnect(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Streams one chunk, then waits for the client to leave; its later sends must be
    dropped without error."""
    if scope["type"] != "http":
        return
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"one", "more_body": True})
    message = await receive()
    seen["after"] = message["type"]
    try:
        await send({"type": "http.response.body", "body": b"two", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        seen["sends"] = "dropped without error"
    except Exception as exc:  # pragma: no cover - the failure the test would report
        seen["sends"] = repr(exc)
    gate("raw-done").set()


async def raw_endless(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Sends without pause for as long as it is let: only flow control stops it (without
    it this loop would never give the event loop back), and only the deadline ends it."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    chunk = b"x" * 65536
    try:
        while True:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except asyncio.CancelledError:
        gate("endless-cancelled").set()
        raise


async def raw_fails_mid_stream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise RuntimeError("failed mid-stream")


async def raw_length(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A body in several messages under the app's own content-length."""
    if scope["type"] != "http":
        return
    headers = [(b"content-length", b"6"), (b"x-kind", b"sized")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"abc", "more_body": True})
    await send({"type": "http.response.body", "body": b"def", "more_body": False})


# -- lifespan ---------------------------------------------------------------------------


@asynccontextmanager
async def _failing(app: Starlette) -> AsyncIterator[None]:
    raise ConnectionError("database unreachable")
    yield  # pragma: no cover


failing_startup = Starlette(lifespan=_failing)


async def refuses_lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Raises on any scope but http, as apps without lifespan support do."""
    assert scope["type"] == "http", "http only"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"served"})


async def says_failed(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers lifespan.startup.failed with a message of its own, and raises nothing."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no config found"})
        return


# -- what detection must tell apart ----------------------------------------------------------


class ClassApp:
    """An ASGI app as an object whose `__call__` is a coroutine function."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"class app"})


class_app = ClassApp()


class AsyncHandler:
    """An async Lambda handler object: two parameters, not an app."""

    async def __call__(self, event: Any, context: Any) -> Any:
        return event


async_handler_object = AsyncHandler()


async def three_with_default(event: Any, context: Any, extra: Any = None) -> Any:
    """Three parameters, one with a default: a Lambda handler, not an ASGI app."""
    return event


mangum_handler = Mangum(app, lifespan="off")
