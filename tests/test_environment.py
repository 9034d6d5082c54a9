from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.client import invoke
from worker import environment
from worker.config import Config


def test_memory_comes_from_the_cgroup_limit(tmp_path: Path) -> None:
    v2 = tmp_path / "memory.max"
    v2.write_text("2147483648\n")
    assert environment.memory_mb((str(v2),), meminfo="/nonexistent") == 2048


def test_no_cgroup_limit_means_the_machines_memory(tmp_path: Path) -> None:
    unlimited_v2 = tmp_path / "memory.max"
    unlimited_v2.write_text("max\n")
    unlimited_v1 = tmp_path / "memory.limit_in_bytes"
    unlimited_v1.write_text("9223372036854771712\n")
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        4194304 kB\nMemFree:          1024 kB\n")
    files = (str(unlimited_v2), str(unlimited_v1))
    assert environment.memory_mb(files, meminfo=str(meminfo)) == 4096


def test_the_real_machine_reports_a_positive_memory() -> None:
    assert environment.memory_mb() > 0


def test_serve_sets_every_missing_variable_and_keeps_the_present_ones() -> None:
    env = {"AWS_LAMBDA_FUNCTION_NAME": "orders", "AWS_DEFAULT_REGION": "eu-west-1"}
    config = Config(mode="serve", handler="app.handler", timeout=30)
    environment.export(config, env)
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "orders"  # kept
    assert env["AWS_REGION"] == "eu-west-1"  # from the SDK's own variable
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1"  # kept
    assert int(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]) > 0
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_TIMEOUT"] == "30"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/runtime-worker"
    assert re.fullmatch(
        r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", env["AWS_LAMBDA_LOG_STREAM_NAME"]
    )
    assert env["_HANDLER"] == "app.handler"


def test_lambda_mode_changes_nothing() -> None:
    env: dict[str, str] = {}
    environment.export(Config(mode="lambda"), env)
    assert env == {}


def test_the_function_record_reads_the_platforms_variables() -> None:
    env = {
        "AWS_LAMBDA_FUNCTION_NAME": "fn",
        "AWS_LAMBDA_FUNCTION_VERSION": "7",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/05/[7]abc",
        "AWS_REGION": "ap-south-1",
    }
    fn = environment.function(Config(mode="lambda"), "/tmp/w", env)
    assert (fn.name, fn.version, fn.memory_limit_in_mb) == ("fn", "7", "1769")
    assert (fn.log_group_name, fn.log_stream_name) == ("/aws/lambda/fn", "2026/12/05/[7]abc")
    assert fn.arn == "arn:aws:lambda:ap-south-1:000000000000:function:fn"


def test_without_variables_nothing_is_empty_or_zero() -> None:
    fn = environment.function(Config(mode="serve"), "/tmp/w", {})
    assert int(fn.memory_limit_in_mb) > 0
    assert all((fn.name, fn.version, fn.log_group_name, fn.log_stream_name, fn.arn))


def _assert_complete(answer: dict[str, Any]) -> None:
    ctx = answer["context"]
    assert all(value not in ("", "0", None) for value in ctx.values()), ctx
    assert int(ctx["memory_limit_in_mb"]) > 0 and ctx["remaining"] > 0
    assert answer["at_import"] == answer["now"], "set before the handler was imported"
    assert all(answer["now"].values()), answer["now"]
    assert answer["now"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == ctx["memory_limit_in_mb"]
    assert answer["now"]["AWS_LAMBDA_LOG_STREAM_NAME"] == ctx["log_stream_name"]


async def test_serve_gives_the_context_and_variables_lambda_would(serve: Any) -> None:
    srv = serve("tests.apps.environment_apps.identity", "--workers", "2")
    answers = [(await invoke(srv.port, {})).json() for _ in range(4)]
    for answer in answers:
        _assert_complete(answer)  # type: ignore[arg-type]
    # One environment: every worker process reports the same stream.
    assert len({a["context"]["log_stream_name"] for a in answers}) == 1  # type: ignore[index]


async def test_lambda_mode_reads_the_platforms_values(emulate: Any) -> None:
    srv = emulate("tests.apps.environment_apps.identity", "--concurrency", "2")
    answer = (await invoke(srv.port, {})).json()
    _assert_complete(answer)  # type: ignore[arg-type]
    assert answer["now"]["AWS_LAMBDA_LOG_STREAM_NAME"] == "emulator"  # type: ignore[index]
