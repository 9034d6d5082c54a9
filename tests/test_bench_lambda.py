"""The Lambda benchmark's tables: one per load, each closed by the target against the
reference runtime."""

from __future__ import annotations

import importlib
from typing import Any

# `lambda` is a keyword: the module is imported by name, as bench/run.py does.
lam = importlib.import_module("bench.lambda")


def _levels(ours: float, reference: float) -> dict[str, Any]:
    def row(ratio: float, runtime_us: float) -> dict[str, float]:
        return {
            "ratio": ratio,
            "inv_per_s": 10_000 * ratio,
            "runtime_cpu_us": runtime_us,
            "emulator_cpu_us": 30.0,
            "wrk_cpu_us": 9.0,
            "pss_mb": 20.0,
            "processes": 2,
        }

    return {
        "8": {
            "awslambdaric": row(1.0, 90.0),
            "worker lambda (async)": row(ours, 25.0),
            lam.REFERENCE: row(reference, 16.0),
        }
    }


def test_a_reference_below_the_target_says_the_emulator_and_machine_are_the_limit() -> None:
    line = lam.headroom(_levels(2.9, 2.7))
    assert "target 4x, worker lambda (async) 2.90x" in line
    assert "the minimal runtime 2.70x" in line and "do not allow 4x" in line


def test_a_reference_past_the_target_says_the_runtime_is_the_limit() -> None:
    assert "the machine and the emulator allow 4x" in lam.headroom(_levels(2.9, 4.5))


def test_no_line_without_the_level_of_the_target() -> None:
    assert lam.headroom({"1": {}}) == ""


def test_each_load_has_its_table_and_its_verdict() -> None:
    text = lam.table({"levels": _levels(2.9, 3.2), "feed": _levels(4.6, 7.0)})
    wrk_part, fed_part = text.split("Load: the emulator's own")
    assert "| wrk CPU µs/inv |" in wrk_part and "| wrk CPU µs/inv |" not in fed_part
    assert "worker lambda (async) 2.90x" in wrk_part and "do not allow 4x" in wrk_part
    assert "| 8 | worker lambda (async) | 46,000 | 25 | 30 | 20 | 2 | **4.60x** |" in fed_part
    assert "worker lambda (async) 4.60x" in fed_part and "emulator allow 4x" in fed_part


def test_a_run_with_one_load_has_one_table() -> None:
    text = lam.table({"levels": _levels(2.9, 3.2)})
    assert "Load: wrk" in text and "Load: the emulator's own" not in text
