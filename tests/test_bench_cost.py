"""The cost benchmark measures a profile on a real `worker serve`, and every table it
writes is printed again by the `worker cost` command it records beside it."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest

from bench import cost
from worker.cost import command


@pytest.mark.skipif(shutil.which("wrk") is None, reason="the benchmark drives wrk")
def test_the_no_op_profile_is_measured_and_its_tables_reproduce(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--profiles", "no-op", "--rounds", "1", "--seconds", "1", "--warmup", "1"]
    summary = cost.main([*argv, "--rates", "1,100", "--out", str(tmp_path)])
    measured = summary["profiles"]["no-op"]
    assert measured["rps"] > 0 and measured["errors"] == 0
    assert measured["duration_ms"] > 0 and measured["cpu_ms"] > 0
    assert measured["pss_mb"] > 0 and measured["memory_mb"] == cost.priced_memory(
        measured["pss_mb"]
    )
    assert json.loads((tmp_path / "cost.json").read_text()) == summary
    assert (tmp_path / "cost_no-op.png").read_bytes()[:4] == b"\x89PNG"
    report = (tmp_path / "cost.md").read_text()
    assert "### no-op" in report and "](cost_no-op.png)" in report
    tables = summary["tables"]["no-op"]
    assert [t["rps"] for t in tables] == [1.0, 100.0, measured["rps"]]
    capsys.readouterr()
    for t in tables:
        assert t["command"] in report
        words = shlex.split(t["command"])
        assert words[:2] == ["worker", "cost"]
        assert command.main(words[2:]) == 0
        assert capsys.readouterr().out == t["output"] + "\n"
    assert command.main(["--from", str(tmp_path)]) == 0  # one profile: no --profile needed
    assert capsys.readouterr().out == tables[-1]["output"] + "\n"


def test_the_memory_priced_is_the_pss_in_lambdas_steps_with_a_floor() -> None:
    assert cost.priced_memory(33.0) == 512
    assert cost.priced_memory(596.0) == 640
    assert cost.priced_memory(640.0) == 640
