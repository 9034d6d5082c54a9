"""The web apps the web benchmarks serve: one route in FastAPI and in Starlette, the
FastAPI app behind Mangum (as it runs on Lambda today), and a streamed response."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from mangum import Mangum
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

#: The work before each streamed chunk (seconds): what time to first byte is compared with.
CHUNK_WORK = 0.05
CHUNKS = 10

fastapi_app = FastAPI()


@fastapi_app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
    return {"item_id": item_id, "q": q}


async def _item(request: Request) -> JSONResponse:
    return JSONResponse(
        {"item_id": int(request.path_params["item_id"]), "q": request.query_params.get("q")}
    )


starlette_app = Starlette(routes=[Route("/items/{item_id:int}", _item)])

# On Lambda today: Mangum runs lifespan and a loop per invocation unless told not to.
mangum_handler = Mangum(fastapi_app, lifespan="off")


async def _chunks() -> AsyncIterator[bytes]:
    for n in range(CHUNKS):
        await asyncio.sleep(CHUNK_WORK)  # the work that produces this chunk
        yield b"chunk %d\n" % n


stream_app = FastAPI()


@stream_app.get("/stream")
async def stream() -> StreamingResponse:
    return StreamingResponse(_chunks(), media_type="text/plain")
