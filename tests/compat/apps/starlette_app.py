"""A Starlette app behind Mangum."""

from __future__ import annotations

import logging

from mangum import Mangum
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

log = logging.getLogger(__name__)


async def item(request: Request) -> JSONResponse:
    log.warning("item %s", request.path_params["item_id"])
    return JSONResponse(
        {
            "item_id": request.path_params["item_id"],
            "q": request.query_params.getlist("q"),
            "cookie": request.cookies.get("a"),
        }
    )


async def echo(request: Request) -> Response:
    body = await request.body()
    return Response(body[::-1], status_code=202, media_type=request.headers.get("content-type"))


async def cookies(request: Request) -> PlainTextResponse:
    response = PlainTextResponse("cookies set", headers={"x-multi": "1"})
    response.set_cookie("one", "1")
    response.set_cookie("two", "2", path="/two", secure=True)
    response.headers.append("x-multi", "2")
    return response


async def teapot(request: Request) -> PlainTextResponse:
    return PlainTextResponse("short and stout", status_code=418)


app = Starlette(
    routes=[
        Route("/items/{item_id}", item),
        Route("/echo", echo, methods=["POST"]),
        Route("/cookies", cookies),
        Route("/teapot", teapot),
    ]
)
handler = Mangum(app, lifespan="off")
