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


_RESPONSES = (  # what a server might send back to five pipelined requests
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Lambda-Runtime-Aws-Request-Id: r1\r\nLambda-Runtime-Deadline-Ms: 9\r\n"
    b'content-length: 8\r\n\r\n{"a": 1}'
    b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n"
    b"HTTP/1.1 204 No Content\r\nx-a: b\r\n\r\n"  # not plain (no body by status): httptools
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    b"HTTP/1.1 413 Payload Too Large\r\nX-Dup: 1\r\nx-dup: 2\r\ncontent-length: 2\r\n\r\n{}"
)


class _Transport:
    def close(self) -> None:
        pass


async def _read(pieces: list[bytes], fast: bool) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    conn = ClientConnection("127.0.0.1", 9)
    conn.connection_made(_Transport())  # type: ignore[arg-type]
    if not fast:
        conn.scan = None
    loop = asyncio.get_running_loop()
    waiters: list[asyncio.Future[Response]] = [loop.create_future() for _ in range(5)]
    conn._waiters.extend(waiters)
    for piece in pieces:
        conn.data_received(piece)
    return [(r.status, r.headers, r.body) for r in [w.result() for w in waiters]]


async def test_the_fast_path_and_httptools_read_responses_alike() -> None:
    whole = await _read([_RESPONSES], fast=True)
    assert whole == await _read([_RESPONSES], fast=False)
    cut = [_RESPONSES[i : i + 5] for i in range(0, len(_RESPONSES), 5)]
    assert whole == await _read(cut, fast=True)
    assert [status for status, _, _ in whole] == [200, 202, 204, 200, 413]
    assert whole[0][1][b"lambda-runtime-aws-request-id"] == b"r1" and whole[0][2] == b'{"a": 1}'
    assert whole[3][2] == b"hi" and whole[4][1][b"x-dup"] == b"2"  # the last one wins


class _SlowReader(asyncio.Protocol):
    """A server that reads nothing until told to, then everything."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.received = 0
        self.expected = -1
        self.made = asyncio.Event()
        self.all_read = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.pause_reading()
        self.made.set()

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if self.received == self.expected:
            self.all_read.set()


async def test_a_progressive_request_waits_while_the_server_reads_slowly() -> None:
    """`write` returns a future once the server stops keeping up (flow control), done
    when it has read enough; the whole body arrives."""
    server_side = _SlowReader()
    server = await asyncio.get_running_loop().create_server(lambda: server_side, "127.0.0.1", 0)
    conn = await ClientConnection.open("127.0.0.1", server.sockets[0].getsockname()[1])
    await asyncio.wait_for(server_side.made.wait(), 5)
    head = b"POST /r HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
    conn.send([head])
    chunk = b"x" * (1024 * 1024)
    sent = len(head)
    waiting = None
    for _ in range(256):  # bounded: the kernel's buffers hold far less than 256 MiB
        parts = [b"%x\r\n" % len(chunk), chunk, b"\r\n"]
        waiting = conn.write(parts)
        sent += sum(map(len, parts))
        if waiting is not None:
            break
    assert waiting is not None and not waiting.done()
    server_side.expected = sent
    assert server_side.transport is not None
    server_side.transport.resume_reading()
    await asyncio.wait_for(waiting, 10)
    await asyncio.wait_for(server_side.all_read.wait(), 10)
    conn.close()
    server.close()


async def test_a_lost_connection_ends_the_wait_to_write() -> None:
    conn = ClientConnection("127.0.0.1", 9)
    conn.connection_made(_Transport())  # type: ignore[arg-type]
    conn.pause_writing()
    waiting = conn._drained
    assert waiting is not None
    conn.connection_lost(None)
    assert waiting.done() and conn.closed
    with pytest.raises(HttpClientError):
        conn.write([b"more"])
