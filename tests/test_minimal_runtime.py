"""The Lambda benchmark's reference runtime runs real invocations through the emulator, at
the concurrency it is given: its row measures the same work as the runtimes it is set
against."""

from __future__ import annotations

import asyncio
import sys

from tests.client import invoke


async def test_the_reference_runtime_answers_every_invocation(emulate) -> None:
    emu = emulate(
        "bench.apps.noop",
        "--concurrency",
        "4",
        "--queue-size",
        "64",  # all 40 wait their turn: none is refused
        command=[sys.executable, "-m", "bench.minimal_runtime"],
    )
    answers = await asyncio.gather(*(invoke(emu.port, {"n": n}) for n in range(40)))
    assert [a.status for a in answers] == [200] * 40
    assert all(a.json() == {"ok": True} for a in answers)
    assert not any("x-amz-function-error" in a.headers for a in answers)
