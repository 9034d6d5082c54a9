"""The emulator against the official runtime client (awslambdaric), and `worker lambda`
against the same scenarios: what runs on Lambda runs here, with the same answers."""

from __future__ import annotations

import asyncio
import sys

import pytest

from tests.client import invoke

RIC = [sys.executable, "-m", "awslambdaric"]


@pytest.mark.parametrize("concurrency", [None, "4"])
async def test_awslambdaric_under_the_emulator_500_concurrent_invokes(
    emulate, concurrency: str | None
) -> None:
    args = ["--queue-size", "600"] + (["--concurrency", concurrency] if concurrency else [])
    emu = emulate(*args, command=[*RIC, "handlers.echo.handler"])
    answers = await asyncio.gather(
        *(invoke(emu.port, {"n": i, "pad": "x" * (i % 50)}) for i in range(500))
    )
    assert [a.status for a in answers] == [200] * 500
    assert [a.json() for a in answers] == [{"n": i, "pad": "x" * (i % 50)} for i in range(500)]


async def test_the_same_error_from_awslambdaric_and_worker_lambda(emulate) -> None:
    theirs = emulate(command=[*RIC, "tests.apps.basic.sync_fail"])
    ours = emulate("tests.apps.basic.sync_fail")
    a, b = await invoke(theirs.port), await invoke(ours.port)
    assert a.headers["x-amz-function-error"] == b.headers["x-amz-function-error"] == "Unhandled"
    keys = ("errorType", "errorMessage")
    assert (
        {k: a.json()[k] for k in keys}
        == {k: b.json()[k] for k in keys}
        == {  # type: ignore[index]
            "errorType": "KeyError",
            "errorMessage": "'missing'",
        }
    )


async def test_worker_lambda_500_concurrent_invokes(emulate) -> None:
    emu = emulate("handlers.echo.handler", "--concurrency", "8", "--queue-size", "600")
    answers = await asyncio.gather(*(invoke(emu.port, {"n": i}) for i in range(500)))
    assert [a.json() for a in answers] == [{"n": i} for i in range(500)]
