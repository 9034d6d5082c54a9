"""Logging as awslambdaric sets it up: the same bytes for the same calls, the level rule, the
request id per invocation, the runtime's own lines; and end to end, real processes
compared with awslambdaric behind the same emulator."""

from __future__ import annotations

import importlib
import logging
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from tests.client import invoke
from tests.conftest import Proc
from worker.telemetry import logs
from worker.telemetry.egress import JSON_FRAME_TYPES, TEXT_FRAME_TYPES


class Capture:
    """A sink (ours or awslambdaric's): what was written, with its frame type."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None]] = []
        self.errors: list[tuple[list[str], bytes | None]] = []

    def log(self, message: str, frame_type: bytes | None = None) -> None:
        self.records.append((message, frame_type))

    def log_error(self, lines: list[str], frame_type: bytes | None = None) -> None:
        self.errors.append((lines, frame_type))

    def text(self) -> str:
        return "".join(message for message, _ in self.records)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Each test installs on the real root logger: put everything back afterwards."""
    root = logging.getLogger()
    runtime = logging.getLogger("worker")
    saved = (root.handlers[:], root.level, runtime.handlers[:], runtime.level, runtime.propagate)
    converter = logging.Formatter.converter
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    runtime.handlers[:], runtime.level, runtime.propagate = saved[2], saved[3], saved[4]
    logging.Formatter.converter = converter


def log_everything() -> None:
    """The same calls, from the same line numbers, for both runtimes' handlers."""
    logging.debug("debug line")
    logging.info("info %s", "line")
    logging.warning("first\nsecond")
    logging.error({"dict": "message", "n": 1})
    logging.warning("%(a)s and %(b)s", {"a": 1, "b": 2})
    logging.warning("extras", extra={"order": 7, "when": object})
    logging.log(25, "between levels")
    logging.log(55, "above critical")
    logging.getLogger("app.module").critical("ünïcödé")
    try:
        raise KeyError("missing")
    except KeyError:
        logging.exception("caught")


def _reference(fmt: str, level: str, request: str, calls: Callable[[], None]) -> Capture:
    """What awslambdaric's own `_setup_logging` writes for `calls`."""
    from awslambdaric import bootstrap  # type: ignore[import-untyped]
    from awslambdaric.lambda_runtime_log_utils import (  # type: ignore[import-untyped]
        LogFormat,
        _get_log_level_from_env_var,
    )

    sink = Capture()
    root = logging.getLogger()
    root.handlers[:] = []
    root.setLevel(logging.WARNING)
    bootstrap._setup_logging(
        LogFormat.from_str(fmt), _get_log_level_from_env_var(level or None), sink
    )
    bootstrap._GLOBAL_AWS_REQUEST_ID = request
    try:
        calls()
    finally:
        bootstrap._GLOBAL_AWS_REQUEST_ID = None
    return sink


def _ours(fmt: str, level: str, request: str, calls: Callable[[], None]) -> Capture:
    sink = Capture()
    root = logging.getLogger()
    root.handlers[:] = []
    root.setLevel(logging.WARNING)
    logs.install(level, fmt, sink=sink)
    token = logs.request_id.set(request)
    try:
        calls()
    finally:
        logs.request_id.reset(token)
    return sink


@pytest.mark.parametrize("fmt", ["Text", "JSON"])
@pytest.mark.parametrize("level", ["", "TRACE", "DEBUG", "info", "ERROR", "trace"])
def test_records_are_written_as_awslambdaric_writes_them(
    fmt: str, level: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One clock for both: the records' times, and so their timestamps, are the same.
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.123456)
    want = _reference(fmt, level, "req-1", log_everything)
    got = _ours(fmt, level, "req-1", log_everything)
    assert want.records, "the reference wrote nothing: the comparison would prove nothing"
    assert got.records == want.records


def test_the_level_rule_is_awslambdarics() -> None:
    root = logging.getLogger()
    for value, expected in [
        ("", logging.WARNING),  # unset: Python's default stays
        ("TRACE", logging.DEBUG),
        ("debug", logging.DEBUG),
        ("trace", logging.WARNING),  # only "TRACE" maps; "trace" is no level at all
        ("NOPE", logging.WARNING),
        ("ERROR", logging.ERROR),
    ]:
        root.setLevel(logging.WARNING)
        logs.install(value, "Text", sink=Capture())
        assert root.level == expected, value


def test_installing_again_replaces_only_its_own_handler() -> None:
    user = logging.StreamHandler(sys.stderr)
    logging.getLogger().addHandler(user)
    logs.install("", "Text", sink=Capture())
    logs.install("", "JSON", sink=Capture())
    handlers = logging.getLogger().handlers
    assert user in handlers
    assert len([h for h in handlers if isinstance(h, logs.RecordHandler)]) == 1


def test_a_user_format_shows_utc_as_under_awslambdaric() -> None:
    logs.install("", "Text", sink=Capture())
    assert logging.Formatter.converter is time.gmtime


def test_request_ids_come_from_each_invocations_own_context() -> None:
    sink = Capture()
    logs.install("INFO", "JSON", sink=sink)
    log = logging.getLogger("t")

    def work(rid: str) -> None:
        logs.request_id.set(rid)
        log.info("from %s", rid)

    threads = [threading.Thread(target=work, args=(f"r{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = [orjson.loads(message) for message, _ in sink.records]
    assert len(lines) == 8
    for line in lines:
        assert line["message"] == f"from {line['requestId']}"


def test_tenant_id_is_a_field_when_the_invocation_has_one() -> None:
    sink = Capture()
    logs.install("", "JSON", sink=sink)
    token = logs.tenant_id.set("tenant-7")
    logging.warning("x")
    logs.tenant_id.reset(token)
    logging.warning("y")
    first, second = (orjson.loads(message) for message, _ in sink.records)
    assert first["tenantId"] == "tenant-7" and "tenantId" not in second


def test_the_runtimes_lines_pass_at_info_whatever_the_root_level() -> None:
    sink = Capture()
    logs.install("ERROR", "Text", sink=sink)
    root = logging.getLogger()
    root.setLevel(logging.CRITICAL)  # what a handler's code may do
    root.handlers[:] = []  # or this
    token = logs.request_id.set("req-2")
    logging.getLogger("worker.process").info("worker started", extra={"fields": {"pid": 12}})
    logging.getLogger("worker.process").debug("not at INFO")
    logs.request_id.reset(token)
    logging.getLogger("worker.supervisor").info("serving")
    (first, kind), (second, _) = sink.records
    line = orjson.loads(first)
    assert list(line) == ["timestamp", "level", "message", "logger", "requestId", "pid"]
    assert line["message"] == "worker started" and line["pid"] == 12
    assert line["requestId"] == "req-2" and kind == JSON_FRAME_TYPES[logging.INFO]
    assert "requestId" not in orjson.loads(second)


def test_debug_asks_for_the_runtimes_debug_lines_too() -> None:
    sink = Capture()
    logs.install("TRACE", "Text", sink=sink)
    logging.getLogger("worker.pool").debug("detail")
    assert orjson.loads(sink.records[0][0])["level"] == "DEBUG"


def _fail() -> None:
    raise ValueError("bad thing")


def _handler_failed(fmt: str) -> tuple[Capture, BaseException]:
    sink = Capture()
    logs.install("", fmt, sink=sink)
    token = logs.request_id.set("req-3")
    try:
        _fail()
    except ValueError as exc:
        logging.getLogger("worker.pool").error("handler failed", exc_info=exc)
        error = exc
    logs.request_id.reset(token)
    return sink, error


def _reference_report(fmt: str, error: BaseException, monkeypatch: pytest.MonkeyPatch) -> Capture:
    """awslambdaric's `log_error` of the same error (chosen by the format at its import)."""
    from awslambdaric import bootstrap

    monkeypatch.setenv("AWS_LAMBDA_LOG_FORMAT", fmt)
    try:
        reloaded = importlib.reload(bootstrap)
        sink = Capture()
        frames = reloaded.extract_traceback(error.__traceback__)
        stack = traceback.format_list(frames)
        result = reloaded.make_error(str(error), type(error).__name__, stack, "req-3")
        reloaded.log_error(result, sink)
    finally:
        monkeypatch.delenv("AWS_LAMBDA_LOG_FORMAT")
        importlib.reload(bootstrap)
    return sink


@pytest.mark.parametrize("fmt", ["Text", "JSON"])
def test_a_failed_invocation_is_reported_as_awslambdaric_does(
    fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In every mode: a function's error reports read the same wherever it runs.
    sink, error = _handler_failed(fmt)
    want = _reference_report(fmt, error, monkeypatch)
    assert not sink.records
    assert len(sink.errors) == 1
    stamp = re.compile(r'"timestamp": "[^"]+"')
    got_lines = [stamp.sub("", line) for line in sink.errors[0][0]]
    want_lines = [stamp.sub("", line) for line in want.errors[0][0]]
    assert got_lines == want_lines
    types = JSON_FRAME_TYPES if fmt == "JSON" else TEXT_FRAME_TYPES
    assert sink.errors[0][1] == types[logging.ERROR]
    if fmt == "Text":
        assert sink.errors[0][0][0] == "[ERROR] ValueError: bad thing"
        assert sink.errors[0][0][2].startswith("\u00a0\u00a0File ")


def test_a_record_that_cannot_be_formatted_raises_in_the_caller_as_under_awslambdaric() -> None:
    logs.install("", "Text", sink=Capture())
    with pytest.raises(TypeError):
        logging.warning("%d", "not a number")


# -- real processes -----------------------------------------------------------------------

APP = "tests.apps.logging_apps"
_STAMP = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d{3})?(?:Z|\+0000)?")
_TRACE = re.compile(r"1-[0-9a-f]{8}-[0-9a-f]+-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _own(line: str) -> bool:
    """A line of the runtime or of the emulator themselves (awslambdaric writes none)."""
    if not line.startswith("{"):
        return False
    try:
        logger = orjson.loads(line).get("logger", "")
    except orjson.JSONDecodeError:
        return False
    return isinstance(logger, str) and (logger == "worker" or logger.startswith("worker."))


async def _invocation_output(proc: Proc, event: object) -> tuple[str, Any]:
    """What the handler wrote during one invocation (both runtimes write it before they
    answer), its request id and pid normalised away; and the answer."""
    start = proc.log_path.stat().st_size
    answer = await invoke(proc.port, event)
    with open(proc.log_path, "rb") as f:
        f.seek(start)
        text = f.read().decode()
    text = "".join(line for line in text.splitlines(keepends=True) if not _own(line))
    text = text.replace(answer.headers["x-amzn-requestid"], "<request-id>")
    text = _TRACE.sub("<trace-id>", _STAMP.sub("<time>", text))
    return text, answer.json() if answer.status == 200 else answer.body


ENV = {"WORKER_EMF": "0"}


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"AWS_LAMBDA_LOG_FORMAT": "JSON"},
        {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "TRACE"},
        {"AWS_LAMBDA_LOG_FORMAT": "Text", "AWS_LAMBDA_LOG_LEVEL": "DEBUG"},
        {"LOGGING_APP_ROOT_LEVEL": "INFO"},
    ],
    ids=["text", "json", "json-trace", "text-debug", "level-at-import"],
)
async def test_a_handler_logs_as_under_awslambdaric(
    emulate: Callable[..., Proc], settings: dict[str, str]
) -> None:
    env = {**ENV, **settings}
    ric = emulate(command=[sys.executable, "-m", "awslambdaric", f"{APP}.everything"], env=env)
    ours = emulate(f"{APP}.everything", env=env)
    want, _ = await _invocation_output(ric, {})
    got, answer = await _invocation_output(ours, {})
    assert "powertools info" in want and "printed to stderr" in want
    # One intended difference: awslambdaric writes a Text record holding a traceback with
    # no newline after it, so the next line ran into its last one; ours ends the line.
    want = re.sub(r"(ValueError: caught here)(?!\n)", r"\1\n", want)
    assert got == want
    # Python's WARNING stays unless a level is set: INFO reaches the log only then.
    info_shown = bool(
        settings.get("AWS_LAMBDA_LOG_LEVEL") or settings.get("LOGGING_APP_ROOT_LEVEL")
    )
    assert ("info line" in got) is info_shown
    assert ("debug line" in got) is bool(settings.get("AWS_LAMBDA_LOG_LEVEL"))
    assert isinstance(answer, dict)


@pytest.mark.parametrize("fmt", ["Text", "JSON"])
async def test_an_invocation_error_is_reported_as_under_awslambdaric(
    emulate: Callable[..., Proc], fmt: str
) -> None:
    env = {**ENV, "AWS_LAMBDA_LOG_FORMAT": fmt}
    ric = emulate(command=[sys.executable, "-m", "awslambdaric", f"{APP}.raises"], env=env)
    ours = emulate(f"{APP}.raises", env=env)
    want, _ = await _invocation_output(ric, {"order": 3})
    got, _ = await _invocation_output(ours, {"order": 3})
    assert "bad order: 3" in want
    assert got == want


async def test_powertools_writes_each_line_once_under_serve(
    serve: Callable[..., Proc],
) -> None:
    srv = serve(f"{APP}.powertools_lines", "--workers", "2")
    answers = [await invoke(srv.port, {}) for _ in range(4)]
    srv.stop()
    text = srv.logs()
    for answer in answers:
        rid = answer.headers["x-amzn-requestid"]
        lines = [line for line in text.splitlines() if rid in line]
        messages = sorted(
            orjson.loads(line)["message"] if line.startswith("{") else line.split("\t")[3]
            for line in lines
        )
        assert messages == ["powertools info", "powertools warning", "root warning"], lines


async def test_a_root_level_set_at_import_holds_in_every_worker(
    serve: Callable[..., Proc],
) -> None:
    srv = serve(f"{APP}.root_level", "--workers", "2", env={"LOGGING_APP_ROOT_LEVEL": "INFO"})
    pids = set()
    for _ in range(40):
        answer = (await invoke(srv.port, {})).json()
        assert isinstance(answer, dict) and answer["level"] == logging.INFO
        pids.add(answer["pid"])
        if len(pids) == 2:
            break
    srv.stop()
    assert len(pids) == 2, "one worker answered every call: the test proves nothing"
    assert srv.logs().count("\troot info\n") >= 2
    assert '"worker started"' in srv.logs()  # the runtime's lines, at INFO as ever
