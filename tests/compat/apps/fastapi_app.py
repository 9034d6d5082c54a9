"""A FastAPI app behind Mangum, the most common way a Python web app runs on Lambda."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

from fastapi import FastAPI, Response
from fastapi.responses import StreamingResponse
from mangum import Mangum
from pydantic import BaseModel

log = logging.getLogger(__name__)
app = FastAPI()


class Order(BaseModel):
    item: str
    quantity: int


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, object]:
    await asyncio.sleep(0)
    log.warning("read item %d", item_id)
    return {"item_id": item_id, "q": q, "route": "async"}


@app.get("/sync/{name}")
def read_sync(name: str, n: int = 1) -> dict[str, object]:
    print(f"sync route {name}")
    return {"name": name, "n": n, "route": "sync"}


@app.post("/orders", status_code=201)
async def create_order(order: Order) -> dict[str, object]:
    return {"item": order.item, "quantity": order.quantity, "total": order.quantity * 3}


@app.get("/cookies")
def cookies(response: Response) -> dict[str, str]:
    response.set_cookie("session", "abc", httponly=True)
    response.set_cookie("theme", "dark", max_age=60)
    response.headers["x-custom"] = "yes"
    return {"set": "2"}


@app.get("/binary")
def binary() -> Response:
    return Response(content=bytes(range(256)), media_type="application/octet-stream")


def _chunks() -> Iterator[bytes]:
    for i in range(5):
        yield f"chunk {i}\n".encode()


@app.get("/stream")
def stream() -> StreamingResponse:
    return StreamingResponse(_chunks(), media_type="text/plain")


handler = Mangum(app)
