"""The model host's wire format: length-prefixed pickle frames over a Unix socket.

A request is `(id, model, item, deadline)`; a reply is `(id, True, output)` or
`(id, False, error)`. Both ends are processes of one environment, forked from the same
supervisor (the socket is in its 0700 scratch root), so pickle carries any input or
output a batch function takes or returns, and an exception travels as itself: a handler
catches the same class the batch function raised.
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from typing import Any

from worker.errors import LambdaError, stack_of

HEADER = struct.Struct("!I")


def pack(message: Any) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


async def read(reader: asyncio.StreamReader) -> Any:
    """The next frame; `asyncio.IncompleteReadError` at the end of the stream."""
    (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    return pickle.loads(await reader.readexactly(size))


def portable(exc: BaseException) -> BaseException:
    """`exc` if it survives a pickle round trip, else a LambdaError with its type's name."""
    try:
        pickle.loads(pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:
        return LambdaError(type(exc).__name__, str(exc), stack_of(exc))
    return exc
