"""The model host's wire format: length-prefixed pickle frames over a Unix socket.

A request is `(id, model, item, deadline)`; a reply is `(id, True, output)` or
`(id, False, error)`. Both ends are processes of one environment, forked from the same
supervisor (the socket is in its 0700 scratch root), so pickle carries any input or
output a batch function takes or returns, and an exception travels as itself: a handler
catches the same class the batch function raised.

The model host pickles each output on the launch thread that ran its batch (`encode`):
the reply then carries it as `Pickled` bytes, which the worker unpickles, so the host's
loop copies bytes instead of walking every output. A NumPy array travels as its buffer;
a torch tensor that is a view of a batch's result is copied out first, or pickle would
send the whole batch's storage with every row.
"""

from __future__ import annotations

import asyncio
import pickle
import struct
import sys
from typing import Any

from worker.errors import LambdaError, from_exception, stack_of

HEADER = struct.Struct("!I")


def pack(message: Any) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


async def read(reader: asyncio.StreamReader) -> Any:
    """The next frame; `asyncio.IncompleteReadError` at the end of the stream."""
    (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    return pickle.loads(await reader.readexactly(size))


class Pickled(bytes):
    """One output, already pickled by the model host; `load()` gives it back."""

    __slots__ = ()

    def load(self) -> Any:
        return pickle.loads(self)


def encode(output: Any) -> tuple[bool, Any]:
    """`(True, Pickled)` for a reply's output, or `(False, error)` for one pickle cannot
    carry (only its own request fails)."""
    try:
        return True, Pickled(pickle.dumps(_detached(output), protocol=pickle.HIGHEST_PROTOCOL))
    except Exception as exc:
        return False, from_exception(exc)


def decode(payload: Any) -> Any:
    """A reply's output as the batch function returned it."""
    return payload.load() if isinstance(payload, Pickled) else payload


def _detached(output: Any) -> Any:
    torch = sys.modules.get("torch")
    view = (
        torch is not None
        and isinstance(output, torch.Tensor)
        and output.untyped_storage().nbytes() > output.nbytes
    )
    return output.clone() if view else output


def portable(exc: BaseException) -> BaseException:
    """`exc` if it survives a pickle round trip, else a LambdaError with its type's name."""
    try:
        pickle.loads(pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:
        return LambdaError(type(exc).__name__, str(exc), stack_of(exc))
    return exc
