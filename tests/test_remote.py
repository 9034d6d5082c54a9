"""A worker's connection to the model host, against a real Unix socket server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from worker.errors import LambdaError
from worker.inference import wire
from worker.inference.remote import UNAVAILABLE, RemoteModels


async def test_no_host_is_a_clear_error(tmp_path: Path) -> None:
    remote = RemoteModels(str(tmp_path / "models.sock"))
    with pytest.raises(LambdaError) as caught:
        await remote.infer("m", 1, None)
    assert caught.value.error_type == UNAVAILABLE


async def test_answers_find_their_requests_in_any_order(tmp_path: Path) -> None:
    path = str(tmp_path / "models.sock")

    async def host(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first, second = await wire.read(reader), await wire.read(reader)
        for rid, name, item, deadline in (second, first):  # answered backwards
            writer.write(wire.pack((rid, True, (name, item * 10, deadline))))
        error = await wire.read(reader)
        writer.write(wire.pack((error[0], False, KeyError("nope"))))
        await reader.read()

    server = await asyncio.start_unix_server(host, path)
    remote = RemoteModels(path)
    answers = await asyncio.gather(remote.infer("a", 1, 5.0), remote.infer("b", 2, None))
    assert answers == [("a", 10, 5.0), ("b", 20, None)]
    with pytest.raises(KeyError):
        await remote.infer("c", 3, None)
    remote.close()
    server.close()


async def test_a_lost_host_fails_the_requests_in_flight_and_the_next_connects_again(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "models.sock")
    connections: list[asyncio.StreamWriter] = []
    received: asyncio.Queue[Any] = asyncio.Queue()

    async def host(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while True:
            try:
                rid, _name, item, _deadline = await wire.read(reader)
            except asyncio.IncompleteReadError:
                return
            await received.put(item)
            if item != "drop":
                writer.write(wire.pack((rid, True, item)))

    server = await asyncio.start_unix_server(host, path)
    remote = RemoteModels(path)
    waiting = asyncio.ensure_future(remote.infer("m", "drop", None))
    assert await received.get() == "drop"
    connections[0].close()  # the host dies with the request in flight
    with pytest.raises(LambdaError) as caught:
        await waiting
    assert caught.value.error_type == UNAVAILABLE
    assert await remote.infer("m", "again", None) == "again"
    assert len(connections) == 2
    remote.close()
    server.close()
