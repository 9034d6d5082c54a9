from __future__ import annotations

import subprocess
import sys

import pytest

from worker.cli import emulated_concurrency, main, normalise


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
    for form in ("worker HANDLER", "-- COMMAND", "worker executions show NAME", "/abs/path"):
        assert form in out


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--port", "99999"], "port must be 0-65535, got 99999"),
        (["--port", "-1"], "port must be 0-65535"),
        (["--workers", "0"], "processes must be >= 1"),
        (["--concurrency", "0"], "concurrency must be >= 1"),
        (["--queue-size", "0"], "queue_size must be >= 1"),
    ],
)
def test_out_of_range_settings_are_bad_settings(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "mod.fn", *argv])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith("worker: bad setting: ") and said in err


def test_emulate_takes_the_platforms_concurrency_from_its_environment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert emulated_concurrency(None, {"AWS_LAMBDA_MAX_CONCURRENCY": "8"}) == 8
    assert emulated_concurrency(4, {"AWS_LAMBDA_MAX_CONCURRENCY": "8"}) == 4  # the flag wins
    assert emulated_concurrency(None, {}) is None
    with pytest.raises(SystemExit) as info:
        emulated_concurrency(None, {"AWS_LAMBDA_MAX_CONCURRENCY": "many"})
    assert info.value.code == 2 and "AWS_LAMBDA_MAX_CONCURRENCY" in capsys.readouterr().err
