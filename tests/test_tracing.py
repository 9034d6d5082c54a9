from __future__ import annotations

import contextvars
import os
import threading

import pytest

from worker import tracing


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> None:
    tracing.install()
    monkeypatch.delenv(tracing.VARIABLE, raising=False)


def test_the_environment_answers_with_the_invocations_trace_id(traced: None) -> None:
    token = tracing.trace_id.set("Root=1-aaaa")
    try:
        assert os.environ[tracing.VARIABLE] == "Root=1-aaaa"
        assert os.getenv(tracing.VARIABLE) == "Root=1-aaaa"
        assert tracing.VARIABLE in os.environ
    finally:
        tracing.trace_id.reset(token)
    assert os.getenv(tracing.VARIABLE) is None  # no invocation, no variable


def test_without_an_invocations_id_the_real_variable_answers(
    traced: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(tracing.VARIABLE, "Root=1-process")
    assert os.environ[tracing.VARIABLE] == "Root=1-process"
    assert os.environ["PATH"] == os.environ.copy()["PATH"]  # the rest is untouched


def test_a_thread_running_in_a_copy_of_the_context_sees_its_id(traced: None) -> None:
    seen: list[str | None] = []
    contexts = []
    for n in range(3):
        ctx = contextvars.copy_context()
        ctx.run(tracing.trace_id.set, f"Root=1-{n}")
        contexts.append(ctx)
    threads = [
        threading.Thread(target=ctx.run, args=(lambda: seen.append(os.getenv(tracing.VARIABLE)),))
        for ctx in contexts
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == ["Root=1-0", "Root=1-1", "Root=1-2"]  # type: ignore[type-var]


def test_installing_twice_changes_nothing(traced: None) -> None:
    kind = type(os.environ)
    tracing.install()
    assert type(os.environ) is kind
