"""A small raw HTTP/1.1 client for tests: exact bytes out, parsed answers back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import orjson


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> object:
        return orjson.loads(self.body)


async def read_answer(reader: asyncio.StreamReader, head: bool = False) -> Answer:
    line = await reader.readline()
    if not line:
        raise ConnectionError("connection closed before an answer")
    status = int(line.split(b" ", 2)[1])
    headers: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    length = int(headers.get("content-length", "0"))
    body = b"" if head or status in (100, 204) else await reader.readexactly(length)
    return Answer(status, headers, body)


def encode(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body or method in ("POST", "PUT"):
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def request(
    port: int,
    method: str,
    path: str,
    body: bytes | object = b"",
    headers: dict[str, str] | None = None,
) -> Answer:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(encode(method, path, raw, headers))
        await writer.drain()
        return await read_answer(reader, head=method == "HEAD")
    finally:
        writer.close()


INVOKE = "/2015-03-31/functions/fn/invocations"


async def invoke(port: int, event: object = None, headers: dict[str, str] | None = None) -> Answer:
    return await request(port, "POST", INVOKE, {} if event is None else event, headers)
