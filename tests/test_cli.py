from __future__ import annotations

import subprocess
import sys

import pytest

from worker.cli import main, normalise


def test_bare_handler_picks_serve_or_lambda() -> None:
    assert normalise(["mod.fn"], {}) == ["serve", "mod.fn"]
    assert normalise(["mod.fn"], {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}) == [
        "lambda",
        "mod.fn",
    ]
    assert normalise(["serve", "mod.fn"], {}) == ["serve", "mod.fn"]


def test_sqs_without_a_queue_fails_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["sqs", "mod.fn"])
    assert info.value.code == 2
    assert "needs --queue-url" in capsys.readouterr().err


def test_sqs_batch_size_is_bounded_by_sqs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["sqs", "mod.fn", "--queue-url", "http://127.0.0.1:1/q", "--batch-size", "11"])
    assert info.value.code == 2 and "batch_size must be 1-10" in capsys.readouterr().err


def test_a_command_after_dashes_is_only_for_emulate(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "mod.fn", "--", "python", "-m", "x"])
    assert info.value.code == 2 and "only for `worker emulate`" in capsys.readouterr().err


def test_bad_flag_value_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "mod.fn", "--grace", "0"])
    assert info.value.code == 2 and "grace" in capsys.readouterr().err


def test_python_dash_m_worker_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "worker", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in (
        "--host",
        "--port",
        "--workers",
        "--concurrency",
        "--queue-size",
        "--timeout",
        "--init-timeout",
        "--max-payload",
        "--grace",
    ):
        assert flag in out
