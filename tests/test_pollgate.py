"""The service's quiet-poll gate: one holder across processes, freed when the holder dies."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.test_sqs import _idle, until
from worker.sources.pollgate import PollGate

HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(600)
"""


async def test_one_holder_at_a_time_across_open_files(tmp_path: Path) -> None:
    path = str(tmp_path / "gate")
    first, second = PollGate(path), PollGate(path)  # as two processes open it
    await first.acquire()
    assert first.held
    waiting = asyncio.ensure_future(second.acquire())
    await _idle()
    assert not waiting.done() and not second.held
    first.release()
    await asyncio.wait_for(waiting, 10)
    assert second.held and not first.held
    second.release()
    first.close()
    second.close()


async def test_two_pollers_of_one_process_take_turns(tmp_path: Path) -> None:
    gate = PollGate(str(tmp_path / "gate"))
    await gate.acquire()
    waiting = asyncio.ensure_future(gate.acquire())  # flock alone would let it through
    await _idle()
    assert not waiting.done()
    gate.release()
    await asyncio.wait_for(waiting, 10)
    assert gate.held
    gate.release()
    gate.close()


async def test_a_cancelled_wait_holds_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "gate")
    holder, gate = PollGate(path), PollGate(path)
    await holder.acquire()
    waiting = asyncio.ensure_future(gate.acquire())
    await _idle()
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert waiting.cancelled() and not gate.held
    holder.release()
    await asyncio.wait_for(gate.acquire(), 10)  # neither the file nor the local lock is stuck
    gate.release()
    holder.close()
    gate.close()


async def test_the_gate_is_freed_when_its_holder_is_killed(tmp_path: Path) -> None:
    path = str(tmp_path / "gate")
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, path], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"held"
        gate = PollGate(path)
        tries: list[bool] = []
        try_once = gate._try
        gate._try = lambda: tries.append(try_once()) or tries[-1]  # type: ignore[method-assign]
        waiting = asyncio.ensure_future(gate.acquire())
        await until(lambda: len(tries) >= 3, "three tries")  # more than one, each failed
        assert tries == [False] * len(tries) and not waiting.done()
        os.kill(proc.pid, signal.SIGKILL)
        await asyncio.wait_for(waiting, 10)  # the kernel freed the lock with the process
        assert gate.held
        gate.release()
        gate.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
