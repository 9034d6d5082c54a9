"""The emulator against the official runtime client (awslambdaric), and `worker lambda`
against the same scenarios: what runs on Lambda runs here, with the same answers."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from awslambdaric.bootstrap import make_xray_fault

from tests.client import invoke
from tests.conftest import ROOT
from tests.fake_runtime_api import FakeRuntimeApi, Post, Runtime, worker_lambda
from worker.config import DEFAULT_MAX_PAYLOAD

RIC = [sys.executable, "-m", "awslambdaric"]


@pytest.mark.parametrize("concurrency", [None, "4"])
async def test_awslambdaric_under_the_emulator_500_concurrent_invokes(
    emulate, concurrency: str | None
) -> None:
    args = ["--queue-size", "600"] + (["--concurrency", concurrency] if concurrency else [])
    emu = emulate(*args, command=[*RIC, "handlers.echo.handler"])
    answers = await asyncio.gather(
        *(invoke(emu.port, {"n": i, "pad": "x" * (i % 50)}) for i in range(500))
    )
    assert [a.status for a in answers] == [200] * 500
    assert [a.json() for a in answers] == [{"n": i, "pad": "x" * (i % 50)} for i in range(500)]


async def test_the_same_error_from_awslambdaric_and_worker_lambda(emulate) -> None:
    theirs = emulate(command=[*RIC, "tests.apps.basic.sync_fail"])
    ours = emulate("tests.apps.basic.sync_fail")
    a, b = await invoke(theirs.port), await invoke(ours.port)
    assert a.headers["x-amz-function-error"] == b.headers["x-amz-function-error"] == "Unhandled"
    keys = ("errorType", "errorMessage")
    assert (
        {k: a.json()[k] for k in keys}
        == {k: b.json()[k] for k in keys}
        == {  # type: ignore[index]
            "errorType": "KeyError",
            "errorMessage": "'missing'",
        }
    )


async def test_worker_lambda_500_concurrent_invokes(emulate) -> None:
    emu = emulate("handlers.echo.handler", "--concurrency", "8", "--queue-size", "600")
    answers = await asyncio.gather(*(invoke(emu.port, {"n": i}) for i in range(500)))
    assert [a.json() for a in answers] == [{"n": i} for i in range(500)]


async def _error_post(command: list[str], event: object, tmp_path: Path, name: str) -> Post:
    """Run `command` against a fake Runtime API for one invocation; its error post."""
    api = FakeRuntimeApi()
    await api.start()
    runtime = Runtime(command, api.address, tmp_path / f"{name}.log")
    try:
        api.add("r1", event)
        await api.wait_for(lambda: bool(api.posted("r1")))
    finally:
        await runtime.stop()
        await api.close()
    (post,) = api.posted("r1")
    assert post.kind == "error", runtime.logs()
    return post


def _cause(post: Post) -> dict[str, Any]:
    cause = orjson.loads(post.headers[b"lambda-runtime-function-xray-error-cause"])
    assert isinstance(cause, dict)
    cause["paths"] = sorted(cause["paths"])  # awslambdaric's come from a set
    return cause


@pytest.mark.parametrize(
    ("handler", "event"),
    [("sync_raise", {"fail": True}), ("through_library", {})],
)
async def test_the_xray_error_cause_and_stack_trace_are_awslambdarics(
    tmp_path: Path, handler: str, event: object
) -> None:
    """Both runtimes against the same fake Runtime API, the same handler failing: the same
    `stackTrace` (the handler's frames and the library's, nothing of either runtime) and
    the same X-Ray error cause header."""
    spec = f"tests.apps.lambda_errors.{handler}"
    theirs = await _error_post([*RIC, spec], event, tmp_path, "theirs")
    ours = await _error_post(worker_lambda(spec), event, tmp_path, "ours")
    their_body, our_body = theirs.json(), ours.json()
    assert isinstance(their_body, dict) and isinstance(our_body, dict)
    assert our_body["stackTrace"] == their_body["stackTrace"]
    assert _cause(ours) == _cause(theirs)
    assert _cause(ours)["working_directory"] == str(ROOT)


async def test_the_xray_error_cause_of_an_async_handler(tmp_path: Path) -> None:
    """awslambdaric cannot run one; its cause is what awslambdaric would build from the
    handler's own frame."""
    ours = await _error_post(
        worker_lambda("tests.apps.lambda_errors.async_raise"), {}, tmp_path, "ours"
    )
    body = ours.json()
    assert isinstance(body, dict)
    (frame,) = body["stackTrace"]
    path, line = frame.split('"')[1], int(frame.split("line ")[1].split(",")[0])
    assert _cause(ours) == make_xray_fault(
        "ValueError", "async boom", str(ROOT), [(path, line, "async_raise", None)]
    )


async def test_the_xray_error_cause_of_a_result_that_cannot_be_sent(tmp_path: Path) -> None:
    """A marshal error is the runtime's own: awslambdaric reports it as a
    LambdaValidationError with no frames, and so does `worker lambda`."""
    spec = "tests.apps.lambda_errors.sync_unmarshalable"
    theirs = await _error_post([*RIC, spec], {}, tmp_path, "theirs")
    ours = await _error_post(worker_lambda(spec), {}, tmp_path, "ours")
    their_cause, our_cause = _cause(theirs), _cause(ours)
    assert our_cause["exceptions"][0].pop("message").startswith("Unable to marshal response")
    assert their_cause["exceptions"][0].pop("message").startswith("Unable to marshal response")
    assert our_cause == their_cause
    assert our_cause["exceptions"] == [{"type": "LambdaValidationError", "stack": []}]


async def test_a_runtime_posting_more_than_the_limit_is_refused_with_its_size(emulate) -> None:
    """awslambdaric does not check the size itself: the emulator's Runtime API refuses the
    post, in the platform's words, with the size it read."""
    emu = emulate(command=[*RIC, "tests.apps.lambda_errors.sync_sized"])
    ok = await invoke(emu.port, {"bytes": DEFAULT_MAX_PAYLOAD})
    assert ok.status == 200 and len(ok.body) == DEFAULT_MAX_PAYLOAD
    over = (await invoke(emu.port, {"bytes": DEFAULT_MAX_PAYLOAD + 1})).json()
    assert over == {
        "errorType": "Function.ResponseSizeTooLarge",
        "errorMessage": "Response payload size (6291557 bytes) exceeded maximum allowed "
        "payload size (6291556 bytes).",
        "requestId": over["requestId"],  # type: ignore[index]
        "stackTrace": [],
    }
