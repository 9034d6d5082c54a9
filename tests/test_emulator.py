"""`worker emulate` end to end: the Invoke front's contract, its queue bound, proxy mode."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.client import invoke, request


async def test_beyond_the_queue_bound_the_emulator_answers_429(emulate, tmp_path: Path) -> None:
    emu = emulate("tests.apps.basic.gate", "--queue-size", "2")
    event = {"dir": str(tmp_path)}
    calls = [asyncio.ensure_future(invoke(emu.port, event)) for _ in range(8)]
    while len([c for c in calls if c.done()]) < 5:  # 1 running + 2 queued; 5 refused
        await asyncio.sleep(0.01)
    (tmp_path / "release").touch()
    statuses = sorted(a.status for a in await asyncio.gather(*calls))
    assert statuses == [200] * 3 + [429] * 5


async def test_proxy_mode_through_the_runtime(emulate) -> None:
    emu = emulate("handlers.api.handler")
    ans = await request(emu.port, "GET", "/hello?name=lambda")
    assert ans.status == 200 and ans.json() == {"message": "hello, lambda"}
    assert (await request(emu.port, "GET", "/nowhere")).status == 404


async def test_ready_only_once_the_runtime_polls(emulate, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    emu = emulate("tests.apps.slow_init.handler", env={"SLOW_INIT_GATE": str(gate)}, ready=False)
    while True:
        try:
            status = (await request(emu.port, "GET", "/_worker/ready")).status
            break
        except OSError:
            await asyncio.sleep(0.02)
    assert status == 503
    gate.touch()
    emu.wait_ready()
    assert (await invoke(emu.port)).json() == {"initialised": True}
