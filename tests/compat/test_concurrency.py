"""Mangum + FastAPI under concurrent invokes (`--concurrency 4`, as on Lambda Managed
Instances, whose logs are JSON): every answer is its own request's, as under awslambdaric."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest

from tests.compat import compare
from tests.compat.events import Request, http_api
from tests.compat.runtimes import ALL, RIC, Runtime, Runtimes
from tests.compat.wire import Answer, invoke

HANDLER = "tests.compat.apps.fastapi_app.handler"
#: Enough calls for the sync handler to pass the streak that may move it onto the loop.
CALLS = 96


def request(i: int) -> Request:
    if i % 2:
        return Request("GET", f"/items/{i}", f"q=q{i}")
    return Request("GET", f"/sync/n{i}", f"n={i}")


@pytest.fixture(scope="module")
def concurrent(start_runtimes: Callable[..., Runtimes]) -> Runtimes:
    return start_runtimes(HANDLER, names=ALL, concurrency=4, env={"AWS_LAMBDA_LOG_FORMAT": "JSON"})


def burst(runtime: Runtime, want: int) -> tuple[dict[str, Any], list[Any]]:
    """CALLS invokes, 8 at a time: each answer's view by call, and every line logged
    (sorted: concurrent calls interleave theirs), request ids normalised."""
    runtime.skip_log()
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda i: invoke(runtime.port, http_api(request(i))), range(CALLS)))
    lines = _apart(runtime.lines(want))
    ids = [rid for answer in got if (rid := answer.header("x-amzn-requestid"))]
    answers = {f"call {i}": _answer(answer) for i, answer in enumerate(got)}
    return answers, sorted((_line(line, ids) for line in lines), key=repr)


def _apart(lines: list[str]) -> list[str]:
    """The lines as written, read apart where they merged on the way.

    awslambdaric's worker processes share one stdout and `print()` is two writes (the text,
    then the newline), so another process's line can land between them ("text{json}", or
    two prints' "textmore text"), and an empty line after. Ours never merge
    (`worker.telemetry.lines`); the reference's are split back so the two are compared by
    what was logged."""
    apart: list[str] = []
    for line in lines:
        apart.extend(part for part in re.split(r'(?=\{"timestamp")|(?=sync route )', line) if part)
    return apart


def _answer(answer: Answer) -> Any:
    return compare.invoke_view(answer, [], answer.header("x-amzn-requestid"))


def _line(line: str, ids: list[str]) -> Any:
    found = next((rid for rid in ids if rid in line), None)
    return compare.log_line(line, found)


def test_concurrent_invokes(concurrent: Runtimes) -> None:
    ref_answers, ref_lines = burst(concurrent[RIC], CALLS)
    for i in range(CALLS):  # each answer is its own request's
        body = orjson.loads(ref_answers[f"call {i}"]["body"]["body"])
        assert body.get("item_id", body.get("n")) == i, body
    assert len(ref_lines) == CALLS  # one line per call: a warning or a print
    views = {RIC: {"answers": ref_answers, "log": ref_lines}}
    for name in ALL[1:]:
        answers, lines = burst(concurrent[name], len(ref_lines))
        views[name] = {"answers": answers, "log": lines}
    difference = compare.diff(views, dict.fromkeys(views, views[RIC]))
    assert not difference, "\n" + difference
