"""Slow and idle clients cannot exhaust the service: header timeouts and a connection bound."""

from __future__ import annotations

import asyncio

from tests.client import invoke, read_answer

SLOW = 1000


async def _slowloris(port: int, stop: asyncio.Event, closed: list[int]) -> None:
    """Open a connection and send a request's headers one byte at a time, never finishing."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        closed.append(1)
        return
    writer.write(b"POST /2015-03-31/functions/f/invocations HTTP/1.1\r\nhost: x\r\n")
    try:
        while not stop.is_set():
            writer.write(b"x")
            await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1024), timeout=0.5) == b"":
                    break  # the server hung up on us
                break  # it answered (408): the connection is over
            except TimeoutError:
                continue
        closed.append(1)
    except (ConnectionError, OSError):
        closed.append(1)
    finally:
        writer.close()


async def test_a_slowloris_of_1000_connections_leaves_normal_requests_served(serve) -> None:
    srv = serve("tests.apps.basic.echo", "--workers", "2", env={"WORKER_HEADER_TIMEOUT": "3"})
    stop, closed = asyncio.Event(), []
    attackers = [asyncio.ensure_future(_slowloris(srv.port, stop, closed)) for _ in range(SLOW)]
    try:
        await asyncio.sleep(0)  # they connect while the real clients work
        gate = asyncio.Semaphore(16)  # within the service's slots: no 429 expected

        async def one(i: int) -> object:
            async with gate:
                return await invoke(srv.port, {"n": i})

        answers = await asyncio.gather(*(one(i) for i in range(200)))
        assert [a.json() for a in answers] == [{"n": i} for i in range(200)]
        # The header timeout ends every slow connection, however long it trickles.
        await asyncio.wait_for(asyncio.gather(*attackers), timeout=30)
        assert len(closed) == SLOW
    finally:
        stop.set()
        await asyncio.gather(*attackers, return_exceptions=True)
    assert (await invoke(srv.port, {"after": True})).json() == {"after": True}


async def test_past_the_connection_bound_new_connections_get_503(serve) -> None:
    srv = serve("tests.apps.basic.echo", "--workers", "1", env={"WORKER_MAX_CONNECTIONS": "20"})
    idle = [await asyncio.open_connection("127.0.0.1", srv.port) for _ in range(20)]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        refused = await read_answer(reader)
        writer.close()
        assert refused.status == 503
        assert refused.headers["retry-after"] == "1"
        assert b"Too many open connections" in refused.body
    finally:
        for _, w in idle:
            w.close()
    # Once the idle ones are gone, the service takes new connections again.
    for _ in range(100):
        answer = await invoke(srv.port, {"ok": 1})
        if answer.status == 200:
            break
        await asyncio.sleep(0.01)
    assert answer.json() == {"ok": 1}
