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


async def test_pipelined_requests_get_their_own_responses_in_order() -> None:
    server = await asyncio.start_server(_echo_paths, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = await ClientConnection.open("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    waiters: list[asyncio.Future[Response]] = [loop.create_future() for _ in range(3)]
    conn.send([conn.encode(b"GET", b"/%d" % i) for i in range(3)], *waiters)
    bodies = [(await w).body for w in waiters]
    assert bodies == [b"/0", b"/1", b"/2"]
    assert (await conn.request(b"POST", b"/after", b"x")).body == b"/after"
    conn.close()
    server.close()


async def test_a_lost_connection_fails_every_waiting_request() -> None:
    server = await asyncio.start_server(_echo_paths, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = await ClientConnection.open("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    waiters: list[asyncio.Future[Response]] = [loop.create_future() for _ in range(3)]
    paths = (b"/first", b"/close", b"/never")
    conn.send([conn.encode(b"GET", p) for p in paths], *waiters)
    assert (await waiters[0]).body == b"/first"
    for waiter in waiters[1:]:
        with pytest.raises(HttpClientError):
            await waiter
    assert conn.closed
    with pytest.raises(HttpClientError):
        conn.send([conn.encode(b"GET", b"/")], loop.create_future())
    server.close()
