"""The HTTP benchmark's reference servers answer the Invoke path as the servers they are
compared with do, and leave no process behind: their rows measure the same work."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from bench.harness import descendants
from bench.http import BODY, headroom, reference_argvs
from tests.client import invoke
from tests.conftest import ROOT, gone, wait_answering
from tests.ports import free_port


@pytest.mark.parametrize("name", ["minimal", "c"])
async def test_a_reference_server_answers_like_ours_and_ends_whole(
    name: str, tmp_path: Path
) -> None:
    if name == "c" and not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler here: bench/http.py leaves this row out too")
    port = free_port()
    argv = reference_argvs({"minimal": port, "c": port}, tmp_path)[name]
    log = tmp_path / "log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_answering(f"http://127.0.0.1:{port}/", proc, log.read_text)
        for _ in range(4):  # both processes share the socket: several connections
            answer = await invoke(port, BODY)
            assert answer.status == 200
            # The minimal server runs the same no-op handler; the C one has a fixed reply.
            assert answer.json() in ({"ok": True}, orjson.loads(BODY))
        children = descendants(proc.pid)[1:]
        assert len(children) == 1  # 2 processes, as each server in the comparison
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    end = time.monotonic() + 10
    while not all(gone(pid) for pid in children) and time.monotonic() < end:
        time.sleep(0.02)
    assert all(gone(pid) for pid in children), "a reference server left a process behind"


def test_the_headroom_line_says_which_reference_reached_the_target() -> None:
    row = {
        "ratio_rps": 1.4,
        "ours": {"cpu_us_per_request": 18.0},
        "c": {"cpu_us_per_request": 2.4, "wrk_cpu_us_per_request": 3.0},
        "minimal": {"cpu_us_per_request": 5.7},
        "reference_ratios": {"c": 6.5, "minimal": 3.8},
    }
    line = headroom(row, 2.0)
    assert "worker serve 1.40x" in line and "the C server 6.50x" in line
    assert "the minimal Protocol 3.80x" in line
    assert "the machine allows it" in line
    assert "the runtime's per-request work, not the design" in line
    # References below the target say so.
    line = headroom(row, 7.0)
    assert "the machine does not allow it" in line and "the design itself" in line
    del row["c"], row["reference_ratios"]["c"]  # type: ignore[attr-defined]
    assert "C server" not in headroom(row, 2.0)
