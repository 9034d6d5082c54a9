"""The same small web app in FastAPI, Starlette and Flask, for the Lambda HTTP adapter's tests.

Each answers the routes the compatibility cases need: an echo of what the app saw of the
request (path, query, headers, cookies, client, server, scheme, URL), path and query
parameters, a JSON body (FastAPI's 422 when it is invalid), 404, several cookies, a
repeated header, a binary body, a gzip body, an empty answer and a failing route. What the
app saw is part of its answer, so a difference in the request the adapter builds shows
up as a difference in the answer.

`stream_app` streams: `/stream` sends a first chunk, then waits for the file named by
the `gate` query parameter before the second (a test reads the first chunk before it
lets the app produce the next); `/stream-fail` fails after its first chunk. `generator`
is a plain handler that streams the same way by returning an async generator.
"""

from __future__ import annotations

import asyncio
import gzip
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from flask import Flask, jsonify
from flask import request as flask_request
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse as StarletteJSON
from starlette.responses import PlainTextResponse
from starlette.responses import Response as StarletteResponse
from starlette.routing import Route

#: The first bytes of a PNG and some that are not UTF-8: a body only base64 can carry.
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x00\x01"
#: gzip with a fixed mtime: the same bytes on every run.
GZIPPED = gzip.compress(b'{"compressed": true}', mtime=0)
TEXT = "héllo, wörld"


def _asgi_echo(request: StarletteRequest) -> dict[str, Any]:
    scope = request.scope
    return {
        "method": request.method,
        "path": scope["path"],
        "root_path": scope["root_path"],
        "query_string": scope["query_string"].decode(),
        "query": request.query_params.multi_items(),
        "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
        "cookies": request.cookies,
        "client": list(scope["client"]) if scope.get("client") else None,
        "server": list(scope["server"]) if scope.get("server") else None,
        "scheme": scope["scheme"],
        "url": str(request.url),
        "http_version": scope["http_version"],
        "aws_event": "aws.event" in scope,
        "aws_context": "aws.context" in scope,
    }


# -- FastAPI ------------------------------------------------------------------------------

fastapi_app = FastAPI()


class Order(BaseModel):
    item: str
    quantity: int


@fastapi_app.api_route("/echo/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"])
async def fastapi_echo(request: Request, rest: str) -> dict[str, Any]:
    answer = _asgi_echo(request)
    answer["rest"] = rest
    answer["body"] = (await request.body()).hex()
    return answer


@fastapi_app.get("/items/{item_id}")
async def fastapi_item(item_id: int, q: str | None = None) -> dict[str, Any]:
    return {"item_id": item_id, "q": q}


@fastapi_app.get("/sync/{name}")
def fastapi_sync(name: str, n: int = 1) -> dict[str, Any]:
    return {"name": name, "n": n}


@fastapi_app.post("/orders", status_code=201)
async def fastapi_order(order: Order) -> dict[str, Any]:
    return {"item": order.item, "total": order.quantity * 3}


@fastapi_app.get("/cookies")
def fastapi_cookies(response: Response) -> dict[str, str]:
    response.set_cookie("session", "abc", httponly=True)
    response.set_cookie("theme", "dark", max_age=60)
    response.set_cookie("lang", "fr")
    return {"set": "3"}


@fastapi_app.get("/multi")
def fastapi_multi() -> Response:
    response = JSONResponse({"multi": True})
    response.headers.append("x-multi", "one")
    response.headers.append("x-multi", "two")
    return response


@fastapi_app.get("/binary")
def fastapi_binary() -> Response:
    return Response(PNG, media_type="image/png")


@fastapi_app.get("/gzip")
def fastapi_gzip() -> Response:
    return Response(GZIPPED, media_type="application/json", headers={"content-encoding": "gzip"})


@fastapi_app.get("/text")
def fastapi_text() -> Response:
    return Response(TEXT, media_type="text/plain")


@fastapi_app.get("/empty")
def fastapi_empty() -> Response:
    return Response(status_code=204)


@fastapi_app.get("/boom")
def fastapi_boom() -> dict[str, str]:
    raise RuntimeError("boom")


# -- Starlette ------------------------------------------------------------------------------


async def _st_echo(request: StarletteRequest) -> StarletteResponse:
    answer = _asgi_echo(request)
    answer["rest"] = request.path_params["rest"]
    answer["body"] = (await request.body()).hex()
    return StarletteJSON(answer)


async def _st_item(request: StarletteRequest) -> StarletteResponse:
    return StarletteJSON(
        {"item_id": request.path_params["item_id"], "q": request.query_params.get("q")}
    )


async def _st_order(request: StarletteRequest) -> StarletteResponse:
    data = await request.json()
    return StarletteJSON({"item": data["item"], "total": data["quantity"] * 3}, status_code=201)


async def _st_cookies(request: StarletteRequest) -> StarletteResponse:
    response = StarletteJSON({"set": "3"})
    response.set_cookie("session", "abc", httponly=True)
    response.set_cookie("theme", "dark", max_age=60)
    response.set_cookie("lang", "fr")
    return response


async def _st_multi(request: StarletteRequest) -> StarletteResponse:
    response = StarletteJSON({"multi": True})
    response.headers.append("x-multi", "one")
    response.headers.append("x-multi", "two")
    return response


async def _st_binary(request: StarletteRequest) -> StarletteResponse:
    return StarletteResponse(PNG, media_type="image/png")


async def _st_gzip(request: StarletteRequest) -> StarletteResponse:
    return StarletteResponse(
        GZIPPED, media_type="application/json", headers={"content-encoding": "gzip"}
    )


async def _st_text(request: StarletteRequest) -> StarletteResponse:
    return PlainTextResponse(TEXT)


async def _st_empty(request: StarletteRequest) -> StarletteResponse:
    return StarletteResponse(status_code=204)


async def _st_boom(request: StarletteRequest) -> StarletteResponse:
    raise RuntimeError("boom")


starlette_app = Starlette(
    routes=[
        Route("/echo/{rest:path}", _st_echo, methods=["GET", "POST", "PUT", "DELETE"]),
        Route("/items/{item_id:int}", _st_item),
        Route("/orders", _st_order, methods=["POST"]),
        Route("/cookies", _st_cookies),
        Route("/multi", _st_multi),
        Route("/binary", _st_binary),
        Route("/gzip", _st_gzip),
        Route("/text", _st_text),
        Route("/empty", _st_empty),
        Route("/boom", _st_boom),
    ]
)


# -- Flask ----------------------------------------------------------------------------------

flask_app = Flask(__name__)


@flask_app.route("/echo/<path:rest>", methods=["GET", "POST", "PUT", "DELETE"])
def flask_echo(rest: str) -> Any:
    env = flask_request.environ
    return jsonify(
        {
            "rest": rest,
            "method": flask_request.method,
            "path": flask_request.path,
            "script_name": env.get("SCRIPT_NAME"),
            "path_info": env.get("PATH_INFO"),
            "query_string": env.get("QUERY_STRING"),
            "query": list(flask_request.args.items(multi=True)),
            "headers": sorted(flask_request.headers.items()),
            "cookies": flask_request.cookies,
            "remote_addr": flask_request.remote_addr,
            "server": [env.get("SERVER_NAME"), env.get("SERVER_PORT")],
            "scheme": flask_request.scheme,
            "url": flask_request.url,
            "protocol": env.get("SERVER_PROTOCOL"),
            "body": flask_request.get_data().hex(),
            "event": "apig_wsgi.full_event" in env,
            "request_context": "apig_wsgi.request_context" in env,
        }
    )


@flask_app.route("/items/<int:item_id>")
def flask_item(item_id: int) -> Any:
    return jsonify({"item_id": item_id, "q": flask_request.args.get("q")})


@flask_app.route("/orders", methods=["POST"])
def flask_order() -> Any:
    data = flask_request.get_json()
    return jsonify({"item": data["item"], "total": data["quantity"] * 3}), 201


@flask_app.route("/cookies")
def flask_cookies() -> Any:
    response = jsonify({"set": "3"})
    response.set_cookie("session", "abc", httponly=True)
    response.set_cookie("theme", "dark", max_age=60)
    response.set_cookie("lang", "fr")
    return response


@flask_app.route("/multi")
def flask_multi() -> Any:
    response = jsonify({"multi": True})
    response.headers.add("X-Multi", "one")
    response.headers.add("X-Multi", "two")
    return response


@flask_app.route("/binary")
def flask_binary() -> Any:
    return flask_app.response_class(PNG, mimetype="image/png")


@flask_app.route("/gzip")
def flask_gzip() -> Any:
    return flask_app.response_class(
        GZIPPED, mimetype="application/json", headers={"Content-Encoding": "gzip"}
    )


@flask_app.route("/text")
def flask_text() -> Any:
    return flask_app.response_class(TEXT, mimetype="text/plain")


@flask_app.route("/empty")
def flask_empty() -> Any:
    return "", 204


@flask_app.route("/boom")
def flask_boom() -> Any:
    raise RuntimeError("boom")


# -- streaming ------------------------------------------------------------------------------

stream_app = FastAPI()


async def _gate(path: str) -> None:
    """Until the test creates `path`: the app cannot produce its next chunk before that."""
    while not os.path.exists(path):
        await asyncio.sleep(0.01)


@stream_app.get("/stream")
async def stream(gate: str) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first\n"
        await _gate(gate)
        yield b"second\n"
        yield b"third\n"

    response = StreamingResponse(chunks(), media_type="text/event-stream")
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    return response


@stream_app.get("/stream-fail")
async def stream_fail(gate: str) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first\n"
        await _gate(gate)
        raise RuntimeError("failed mid-stream")

    return StreamingResponse(chunks(), media_type="text/plain")


@stream_app.get("/big")
async def big(mib: int) -> StreamingResponse:
    """`mib` MiB in 1 MiB chunks: past the streamed-response bound when it is large."""

    def chunks() -> Iterator[bytes]:
        block = b"x" * (1024 * 1024)
        for _ in range(mib):
            yield block

    return StreamingResponse(chunks(), media_type="application/octet-stream")


@stream_app.get("/whole")
async def whole() -> dict[str, str]:
    return {"whole": "yes"}


async def generator(event: Any, context: Any) -> AsyncIterator[Any]:
    """A plain handler that streams: the head, then its chunks, gated as `/stream`."""
    gate = (event.get("queryStringParameters") or {}).get("gate", "")
    yield {"statusCode": 201, "headers": {"content-type": "text/plain"}, "cookies": ["g=1"]}
    yield "first\n"
    await _gate(gate)
    yield b"second\n"
