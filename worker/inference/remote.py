"""A worker process's connection to the model host: requests out, answers back, by id.

One Unix-socket connection per worker process, opened on first use and shared by every
slot: each request is a frame with a fresh id, and a reader task resolves the waiting
future when the host's answer with that id comes back (in any order: a request may join
a later batch than one sent after it). When the host goes away (it died; the supervisor
is starting another) the requests in flight fail with `Runtime.ModelHostUnavailable`
and the next request connects again.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from worker.errors import LambdaError
from worker.inference import wire

UNAVAILABLE = "Runtime.ModelHostUnavailable"


class RemoteModels:
    """The models of the model host, as one worker process's loop reaches them."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.ids = itertools.count()
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.writer: asyncio.StreamWriter | None = None
        self.reader: asyncio.Task[None] | None = None
        self.connecting = asyncio.Lock()

    async def infer(self, name: str, item: Any, deadline: float | None) -> Any:
        writer = await self._connect()
        rid = next(self.ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[rid] = future
        try:
            writer.write(wire.pack((rid, name, item, deadline)))
            return await future
        finally:
            self.pending.pop(rid, None)

    async def _connect(self) -> asyncio.StreamWriter:
        async with self.connecting:
            if self.writer is None or self.writer.is_closing():
                if self.reader is not None and not self.reader.done():
                    # The old connection's reader fails its requests first, so it
                    # cannot take this connection's for its own.
                    if self.writer is not None:
                        self.writer.close()
                    await asyncio.wait([self.reader])
                try:
                    reader, self.writer = await asyncio.open_unix_connection(self.path)
                except OSError as exc:
                    raise LambdaError(
                        UNAVAILABLE, f"The model host is not running (restarting?): {exc}"
                    ) from None
                self.reader = asyncio.get_running_loop().create_task(self._read(reader))
            return self.writer

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                rid, ok, payload = await wire.read(reader)
                future = self.pending.get(rid)
                if future is None or future.done():
                    continue  # its invocation ended (timed out) while the batch ran
                if ok:
                    try:
                        future.set_result(wire.decode(payload))
                    except Exception as exc:  # an output this process cannot rebuild
                        future.set_exception(exc)
                else:
                    future.set_exception(payload)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if self.writer is not None:
                self.writer.close()
            self.writer = None
            lost = LambdaError(UNAVAILABLE, "The model host exited with this request in flight")
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(lost)

    async def reconnect(self) -> None:
        """Connect now (after a restore) rather than on the first request."""
        await self._connect()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.reader is not None:
            self.reader.cancel()
