"""The model host's frames: what goes in comes out, and exceptions cross as themselves."""

from __future__ import annotations

import asyncio

from worker.errors import LambdaError
from worker.inference import wire


class NeedsTwo(Exception):
    def __init__(self, a: str, b: int) -> None:
        super().__init__(a)
        self.b = b


async def test_frames_come_out_as_they_went_in() -> None:
    reader = asyncio.StreamReader()
    messages = [(1, "m", {"text": "é" * 1000}, 12.5), (2, "m", b"\x00" * 70000, None)]
    for message in messages:
        reader.feed_data(wire.pack(message))
    reader.feed_eof()
    assert [await wire.read(reader), await wire.read(reader)] == messages
    try:
        await wire.read(reader)
    except asyncio.IncompleteReadError:
        pass
    else:
        raise AssertionError("the end of the stream must show")


async def test_a_lambda_error_keeps_its_type_message_and_stack_across() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(wire.pack(LambdaError("TooManyRequestsException", "full", ["a"])))
    error = await wire.read(reader)
    assert isinstance(error, LambdaError)
    assert (error.error_type, error.message, error.stack) == (
        "TooManyRequestsException",
        "full",
        ["a"],
    )


def test_portable_keeps_what_pickle_can_rebuild_and_names_the_rest() -> None:
    plain = ValueError("bad")
    assert wire.portable(plain) is plain
    odd = wire.portable(NeedsTwo("x", 2))
    assert isinstance(odd, LambdaError)
    assert (odd.error_type, odd.message) == ("NeedsTwo", "x")
