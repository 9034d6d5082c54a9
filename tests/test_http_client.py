"""The Runtime API's client connection: pipelined requests, answered in order."""

from __future__ import annotations

import asyncio

import pytest

from worker.sources.http_client import ClientConnection, HttpClientError, Response


async def _echo_paths(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer every request with its path as the body; close at `/close`."""
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return
        path = head.split(b" ")[1]
        if path == b"/close":
            writer.close()
            return
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(path), path))


async def _pipelined(
    paths: list[bytes],
) -> tuple[asyncio.Server, ClientConnection, list[asyncio.Future[Response]]]:
    """A connection to `_echo_paths` with a GET for each path written in one write, and
    each request's waiter."""
    server = await asyncio.start_server(_echo_paths, "127.0.0.1", 0)
    conn = await ClientConnection.open("127.0.0.1", server.sockets[0].getsockname()[1])
    loop = asyncio.get_running_loop()
    waiters: list[asyncio.Future[Response]] = [loop.create_future() for _ in paths]
    conn.send([conn.encode(b"GET", p) for p in paths], *waiters)
    return server, conn, waiters


async def test_pipelined_requests_get_their_own_responses_in_order() -> None:
    server, conn, waiters = await _pipelined([b"/0", b"/1", b"/2"])
    bodies = [(await w).body for w in waiters]
    assert bodies == [b"/0", b"/1", b"/2"]
    assert (await conn.request(b"POST", b"/after", b"x")).body == b"/after"
    conn.close()
    server.close()


async def test_a_lost_connection_fails_every_waiting_request() -> None:
    server, conn, waiters = await _pipelined([b"/first", b"/close", b"/never"])
    assert (await waiters[0]).body == b"/first"
    for waiter in waiters[1:]:
        with pytest.raises(HttpClientError):
            await waiter
    assert conn.closed
    with pytest.raises(HttpClientError):
        conn.send([conn.encode(b"GET", b"/")], asyncio.get_running_loop().create_future())
    server.close()
