"""handlers/api.py and handlers/echo.py through the proxy and invoke paths."""

from __future__ import annotations

from tests.client import invoke, request


async def test_echo(inproc) -> None:
    srv = await inproc("handlers.echo.handler")
    assert (await invoke(srv.port, {"hello": "world"})).json() == {"hello": "world"}


async def test_api_routes(inproc) -> None:
    srv = await inproc("handlers.api.handler")
    assert (await request(srv.port, "GET", "/hello?name=ada")).json() == {"message": "hello, ada"}
    created = await request(
        srv.port, "POST", "/items", {"id": "a1", "n": 1}, {"content-type": "application/json"}
    )
    assert created.status == 201
    got = await request(srv.port, "GET", "/items/a1")
    assert got.status == 200 and got.json() == {"id": "a1", "n": 1}
    assert (await request(srv.port, "GET", "/items")).json() == {"items": [{"id": "a1", "n": 1}]}
    assert (await request(srv.port, "GET", "/items/zz")).status == 404
    assert (await request(srv.port, "GET", "/nope")).status == 404
    bad = await request(
        srv.port, "POST", "/items", b"{not json", {"content-type": "application/json"}
    )
    assert bad.status == 400 and "not valid JSON" in bad.json()["message"]  # type: ignore[index]
    assert (await request(srv.port, "DELETE", "/items/a1")).status == 204
