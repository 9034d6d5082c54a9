"""The Lambda benchmark's closing line sets the target against the reference runtime."""

from __future__ import annotations

import importlib
from typing import Any

# `lambda` is a keyword: the module is imported by name, as bench/run.py does.
lam = importlib.import_module("bench.lambda")


def _summary(ours: float, reference: float) -> dict[str, Any]:
    def row(ratio: float, runtime_us: float) -> dict[str, float]:
        return {"ratio": ratio, "runtime_cpu_us": runtime_us, "emulator_cpu_us": 30.0}

    return {
        "levels": {
            "8": {
                "awslambdaric": row(1.0, 90.0),
                "worker lambda (async)": row(ours, 25.0),
                lam.REFERENCE: row(reference, 16.0),
            }
        }
    }


def test_a_reference_below_the_target_says_the_emulator_and_machine_are_the_limit() -> None:
    line = lam.headroom(_summary(2.9, 2.7))
    assert "target 4x, worker lambda (async) 2.90x" in line
    assert "the minimal runtime 2.70x" in line and "do not allow 4x" in line


def test_a_reference_past_the_target_says_the_runtime_is_the_limit() -> None:
    assert "the machine and the emulator allow 4x" in lam.headroom(_summary(2.9, 4.5))


def test_no_line_without_the_level_of_the_target() -> None:
    assert lam.headroom({"levels": {"1": {}}}) == ""
