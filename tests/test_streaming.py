"""Handlers that stream by returning an async generator: the rule, and the answers it gives
through the HTTP front (chunked in proxy mode, gathered through the Invoke API)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.apps import streaming_apps
from tests.client import encode, invoke, read_answer
from worker.errors import LambdaError
from worker.streaming import STREAMED, Headers, pump

BOUND = 10.0


@pytest.fixture(autouse=True)
def fresh_apps() -> Iterator[None]:
    streaming_apps.reset()
    yield
    streaming_apps.reset()


class Recorder:
    """A ResponseStream that keeps what it is given."""

    def __init__(self) -> None:
        self.head: tuple[int, Headers] | None = None
        self.chunks: list[bytes] = []
        self.ended = False

    @property
    def started(self) -> bool:
        return self.head is not None

    def start(self, status: int, headers: Headers) -> None:
        self.head = (status, headers)

    def write(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    def end(self) -> None:
        self.ended = True


async def _items(*items: Any) -> AsyncIterator[Any]:
    for item in items:
        yield item


async def _chunk(reader: asyncio.StreamReader) -> bytes:
    size = int((await reader.readuntil(b"\r\n")).strip(), 16)
    return (await reader.readexactly(size + 2))[:-2]


async def _head(reader: asyncio.StreamReader) -> tuple[int, list[tuple[str, str]]]:
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
    return int(lines[0].split(" ")[1]), headers


# -- the rule -------------------------------------------------------------------------------


async def test_a_first_dict_with_status_code_is_the_head() -> None:
    stream = Recorder()
    head = {"statusCode": 201, "headers": {"X-One": "1"}, "cookies": ["a=1", "b=2"]}
    result = await pump(_items(head, "text ", b"bytes"), stream)
    assert result is STREAMED
    assert stream.head == (
        201,
        [
            (b"x-one", b"1"),
            (b"content-type", b"application/octet-stream"),
            (b"set-cookie", b"a=1"),
            (b"set-cookie", b"b=2"),
        ],
    )
    assert stream.chunks == [b"text ", b"bytes"] and stream.ended


async def test_without_a_head_it_is_200_octet_stream() -> None:
    stream = Recorder()
    assert await pump(_items("a", "b"), stream) is STREAMED
    assert stream.head == (200, [(b"content-type", b"application/octet-stream")])
    assert stream.chunks == [b"a", b"b"]


async def test_without_a_stream_it_is_gathered_into_an_api_gateway_response() -> None:
    head = {"statusCode": 202, "headers": {"content-type": "text/plain"}, "cookies": ["c=1"]}
    assert await pump(_items(head, "one ", b"two"), None) == {
        "statusCode": 202,
        "headers": {"content-type": "text/plain"},
        "cookies": ["c=1"],
        "body": "one two",
        "isBase64Encoded": False,
    }
    binary = await pump(_items(b"\xff\x00"), None)
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == b"\xff\x00"
    assert binary["headers"] == {"content-type": "application/octet-stream"}


async def test_an_item_that_is_neither_bytes_nor_str_is_a_marshal_error() -> None:
    with pytest.raises(LambdaError) as info:
        await pump(_items("fine", 42), Recorder())
    assert info.value.error_type == "Runtime.MarshalError"
    with pytest.raises(LambdaError):
        await pump(_items({"statusCode": 999}), Recorder())


async def test_the_generator_is_closed_when_the_stream_is_cancelled() -> None:
    closed = asyncio.Event()
    writing = asyncio.Event()
    blocked: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    class Slow(Recorder):
        def write(self, chunk: bytes) -> asyncio.Future[None]:  # type: ignore[override]
            writing.set()
            return blocked  # the caller never catches up

    async def generator() -> AsyncIterator[str]:
        try:
            yield "one"
            yield "two"
        finally:
            closed.set()

    task = asyncio.ensure_future(pump(generator(), Slow()))
    await asyncio.wait_for(writing.wait(), BOUND)  # the pump now waits on the write
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed.is_set()


# -- through the front ----------------------------------------------------------------------


async def test_proxy_mode_streams_the_items_as_they_come(inproc: Any) -> None:
    srv = await inproc("tests.apps.streaming_apps.events")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(encode("GET", "/anything"))
    status, headers = await _head(reader)
    assert status == 201
    assert ("content-type", "text/plain") in headers and ("set-cookie", "k=v") in headers
    assert ("transfer-encoding", "chunked") in headers
    assert await _chunk(reader) == b"one "
    streaming_apps.gate("two").set()
    assert await _chunk(reader) == b"two "
    streaming_apps.gate("three").set()
    assert await _chunk(reader) == b"three"
    assert await _chunk(reader) == b""
    writer.write(encode("GET", "/again"))  # keep-alive: the next one on the connection
    assert (await _head(reader))[0] == 201
    writer.close()


async def test_the_invoke_api_gathers_the_stream(inproc: Any) -> None:
    srv = await inproc("tests.apps.streaming_apps.plain")
    ans = await invoke(srv.port, {})
    assert ans.status == 200 and "x-amz-function-error" not in ans.headers
    assert ans.json() == {
        "statusCode": 200,
        "headers": {"content-type": "application/octet-stream"},
        "body": "\x00\x01text",
        "isBase64Encoded": False,
    }


async def test_a_sync_handler_returning_an_async_generator_streams(inproc: Any) -> None:
    srv = await inproc("tests.apps.streaming_apps.returns_generator")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(encode("GET", "/"))
    assert (await _head(reader))[0] == 200
    assert [await _chunk(reader) for _ in range(3)] == [b"from ", b"sync", b""]
    writer.close()


async def test_a_failure_before_the_first_item_is_the_usual_502(inproc: Any) -> None:
    srv = await inproc("tests.apps.streaming_apps.fails_first")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(encode("GET", "/"))
    ans = await read_answer(reader)
    assert ans.status == 502 and ans.json() == {"message": "Internal Server Error"}
    assert "x-amz-function-error" not in ans.headers  # API Gateway sends none
    writer.close()


async def test_a_failure_mid_stream_cuts_the_answer_short(inproc: Any) -> None:
    srv = await inproc("tests.apps.streaming_apps.fails_midway")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(encode("GET", "/"))
    assert (await _head(reader))[0] == 200
    assert await _chunk(reader) == b"begun "
    assert await asyncio.wait_for(reader.read(), BOUND) == b""  # no last chunk: incomplete
    writer.close()
    assert streaming_apps.closed == ["fails_midway"]
    assert srv.lane.in_flight == 0


async def test_an_http_10_client_gets_the_body_until_the_connection_closes(inproc: Any) -> None:
    srv = await inproc("tests.apps.streaming_apps.plain")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"GET / HTTP/1.0\r\nhost: x\r\n\r\n")
    received = await asyncio.wait_for(reader.read(), BOUND)  # ends when it closes
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head and b"connection: close" in head
    assert body == b"\x00\x01text"
    writer.close()
