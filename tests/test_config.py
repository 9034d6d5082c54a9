from __future__ import annotations

import dataclasses

import pytest

from worker.config import DEFAULT_MAX_PAYLOAD, Config, cores


def test_defaults_follow_the_contract() -> None:
    c = Config.from_env({}, processes=2)
    assert (c.host, c.port, c.timeout, c.init_timeout, c.grace) == ("127.0.0.1", 8080, 300, 900, 25)
    assert c.max_payload == DEFAULT_MAX_PAYLOAD == 6 * 1024 * 1024 + 100
    assert c.total_concurrency == 32  # 16 per core/process
    assert c.total_queue_size == 64  # 2 x concurrency


def test_lambda_mode_defaults_to_one_slot() -> None:
    assert Config.from_env({}, mode="lambda").total_concurrency == 1


def test_environment_then_flags() -> None:
    env = {
        "WORKER_PORT": "9000",
        "WORKER_CONCURRENCY": "10",
        "WORKER_QUEUE_SIZE": "3",
        "AWS_LAMBDA_FUNCTION_TIMEOUT": "7",
        "WORKER_PROCESSES": "3",
        "_HANDLER": "mod.fn",
    }
    c = Config.from_env(env, port=9100)
    assert (c.port, c.concurrency, c.queue_size, c.timeout, c.handler) == (
        9100,
        10,
        3,
        7.0,
        "mod.fn",
    )
    # Environment-wide bounds spread over processes, the remainder to the first ones.
    assert [c.slots_for(i) for i in range(3)] == [4, 3, 3]
    assert [c.queue_for(i) for i in range(3)] == [1, 1, 1]


def test_runtime_api_pipelining_is_on_unless_turned_off() -> None:
    assert Config.from_env({}, mode="lambda").runtime_api_pipeline == 1
    off = Config.from_env({"WORKER_RUNTIME_API_PIPELINE": "0"}, mode="lambda")
    assert off.runtime_api_pipeline == 0


def test_never_more_processes_than_slots() -> None:
    assert Config.from_env({}, processes=8, concurrency=2).worker_processes == 2


@pytest.mark.parametrize(("slots", "processes"), [(1, 1), (8, 1), (16, 1), (17, 2), (64, 2)])
def test_lambda_mode_runs_a_process_per_16_slots_at_most_one_per_core(
    monkeypatch: pytest.MonkeyPatch, slots: int, processes: int
) -> None:
    monkeypatch.setattr("worker.config.cores", lambda: 2)
    env = {"AWS_LAMBDA_MAX_CONCURRENCY": str(slots)}
    assert Config.from_env(env, mode="lambda").worker_processes == processes
    assert Config.from_env(env, mode="lambda", processes=2).worker_processes == min(2, slots)
    assert Config.from_env({}, concurrency=slots).worker_processes == min(2, slots)  # serve
    # Models batched in the workers: every core gets a process (and a batch in flight).
    cpu = dataclasses.replace(Config.from_env(env, mode="lambda"), local_models=True)
    assert cpu.worker_processes == min(2, slots)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORKER_PORT": "eighty"}, "WORKER_PORT"),
        ({"WORKER_GRACE": "0"}, "grace"),
        ({"WORKER_EMULATE_FEED": "-1"}, "feed"),
        ({"WORKER_EMULATE_FEED": "4", "WORKER_EMULATE_FEED_EVENT": "{nope"}, "feed_event"),
    ],
)
def test_bad_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Config.from_env(env)


def test_lambda_logs_follow_the_log_format_except_on_lmi_where_they_are_always_json() -> None:
    text = {"AWS_LAMBDA_LOG_FORMAT": "Text"}
    assert Config.from_env(text, mode="lambda").log_format == "Text"
    assert Config.from_env({"AWS_LAMBDA_LOG_FORMAT": "JSON"}, mode="lambda").log_format == "JSON"
    lmi = {**text, "AWS_LAMBDA_MAX_CONCURRENCY": "8"}
    assert Config.from_env(lmi, mode="lambda").log_format == "JSON"


def test_lambda_mode_gives_web_frameworks_a_process_per_core() -> None:
    plain = Config(mode="lambda", concurrency=8)
    web = dataclasses.replace(plain, frameworks=True)
    assert plain.worker_processes == 1  # a process per 16 slots
    assert web.worker_processes == min(cores(), 8)
