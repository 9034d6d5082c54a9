"""Logging as awslambdaric sets it up: the root handler user code logs through, the runtime's own
lines, and the report of an invocation's error.

`install` runs once per environment, in the supervisor, before the handler's module is
imported; the forked workers inherit it untouched. What it installs is what awslambdaric
4.2.2's `_setup_logging` installs, so a user's logging behaves exactly as there:

- one handler on the root logger, in the format AWS_LAMBDA_LOG_FORMAT names (`Text` unless
  it says JSON; Lambda mode on LMI is always JSON, see `worker.config`), written to the
  platform's sink (`worker.telemetry.egress`: stdout, or the framed log fd);
- the root level set only when AWS_LAMBDA_LOG_LEVEL is (TRACE meaning DEBUG); otherwise
  Python's WARNING stays, and a handler's `logging.info` is dropped unless its code sets a
  level, as on Lambda;
- the handler installed before the import, so `logging.basicConfig` at import is a no-op
  and Powertools' Logger finds it (and adds its filter against duplicates to it);
- stdout flushed at each line, as awslambdaric's unbuffered stdout is;
- as there, a record that cannot be formatted (`logging.info("%d", "x")`) raises in the
  code that logged it: awslambdaric's handler does not catch it either.

The request id in those lines is this module's `request_id` ContextVar, so concurrent
invocations in one process each log their own.

The runtime's own lines (loggers under "worker") have a handler of their own on the same
sink: always JSON (awslambdaric's fields, then the record's `extra={"fields": {...}}`
merged in), at INFO whatever the root level (DEBUG when asked for), and untouched by
what the handler's code does to the root logger. The record of a failed invocation is
written as awslambdaric's `log_error` writes it, in the log format, in every mode.
"""

from __future__ import annotations

import contextvars
import io
import json
import logging
import os
import sys
import time
import traceback
from typing import Any

import orjson

from worker.errors import LambdaError, from_exception
from worker.telemetry import egress
from worker.telemetry.egress import JSON_FRAME_TYPES, TEXT_FRAME_TYPES, Sink

#: The runtime's own loggers' parent: "worker.process", "worker.pool", …
log = logging.getLogger("worker")

#: The current invocation's id. A ContextVar, so concurrent invocations on one loop and
#: sync handlers on threads (which run in a copy of the slot's context) see their own.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
#: The current invocation's tenant id (Lambda's tenant isolation), for the `tenantId` field.
tenant_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("tenant_id", default=None)

TEXT_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
TEXT_DATEFMT = "%Y-%m-%dT%H:%M:%S"
JSON_DATEFMT = "%Y-%m-%dT%H:%M:%SZ"

#: The runtime's record of a failed invocation (`worker.pool`): it is written as the
#: platform's error report, not as a log line.
INVOCATION_FAILED = ("worker.pool", "handler failed")
#: Lambda's execution environments whose awslambdaric writes non-ASCII error text as is.
_UNESCAPED_ENVS = frozenset(f"AWS_Lambda_python3.{minor}" for minor in (12, 13, 14, 15))
_NBSP = "\u00a0"

#: Record attributes that are not the user's extra fields (awslambdaric's list).
_RESERVED_FIELDS = frozenset(
    (
        "name",
        "msg",
        "args",
        "levelname",
        "levelno",
        "pathname",
        "filename",
        "module",
        "exc_info",
        "exc_text",
        "stack_info",
        "lineno",
        "funcName",
        "created",
        "msecs",
        "relativeCreated",
        "thread",
        "threadName",
        "processName",
        "process",
        "aws_request_id",
        "tenant_id",
        "_frame_type",
    )
)
# default=str: a value JSON cannot hold is written as its str(), not a lost record.
_encode = json.JSONEncoder(ensure_ascii=False, default=str).encode


def lambda_level(value: str | None) -> str:
    """AWS_LAMBDA_LOG_LEVEL as awslambdaric reads it ('' when unset)."""
    if not value:
        return ""
    return {"TRACE": "DEBUG"}.get(value, value).upper()


def level_bucket(record: logging.LogRecord) -> int:
    """The record's level rounded down to one of logging's named levels (0-50)."""
    return min(50, max(0, record.levelno)) // 10 * 10


class RequestFilter(logging.Filter):
    """Puts the invocation's request id (and tenant id) on each record, as attributes."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = request_id.get() or ""
        record.tenant_id = tenant_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """awslambdaric's JSON line: its fields, in its order, the record's extras merged in."""

    def __init__(self) -> None:
        super().__init__(datefmt=JSON_DATEFMT)
        self.converter = time.gmtime  # UTC, whether or not `install` set it for all

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        record.levelno = level_bucket(record)
        record.levelname = logging.getLevelName(record.levelno)
        record._frame_type = JSON_FRAME_TYPES.get(record.levelno, JSON_FRAME_TYPES[0])
        exc_info = record.exc_info
        msg = record.msg
        result: dict[str, Any] = {
            "timestamp": self.formatTime(record, self.datefmt),
            "level": record.levelname,
            "message": msg if isinstance(msg, dict) and not record.args else record.getMessage(),
            "logger": record.name,
            "stackTrace": traceback.format_tb(exc_info[2]) if exc_info else None,
            "errorType": exc_info[0].__name__ if exc_info else None,  # type: ignore[union-attr]
            "errorMessage": str(exc_info[1]) if exc_info else None,
            "requestId": getattr(record, "aws_request_id", None),
            "location": f"{record.pathname}:{record.funcName}:{record.lineno}"
            if exc_info
            else None,
        }
        tenant = getattr(record, "tenant_id", None)
        if tenant is not None:
            result["tenantId"] = tenant
        result.update(
            (key, value)
            for key, value in record.__dict__.items()
            if key not in _RESERVED_FIELDS and key not in result
        )
        return {k: v for k, v in result.items() if v is not None}

    def format(self, record: logging.LogRecord) -> str:
        return _encode(self.fields(record)) + "\n"


class RuntimeFormatter(JsonFormatter):
    """The runtime's own lines: the same fields, `extra={"fields": {...}}` merged flat."""

    def format(self, record: logging.LogRecord) -> str:
        line = self.fields(record)
        extra = line.pop("fields", None)
        if isinstance(extra, dict):
            line.update(extra)
        if not line.get("requestId"):
            line.pop("requestId", None)
        try:
            return orjson.dumps(line, default=str).decode() + "\n"
        except TypeError:  # what orjson cannot hold (non-str keys, huge ints)
            return _encode(line) + "\n"


class RecordHandler(logging.Handler):
    """The root handler: awslambdaric's LambdaLoggerHandler (`typed`: …WithFrameType)."""

    def __init__(self, sink: Sink, typed: bool) -> None:
        super().__init__()
        self.sink = sink
        self.typed = typed

    def emit(self, record: logging.LogRecord) -> None:
        message = self.format(record)
        if self.typed:
            kind = getattr(record, "_frame_type", None) or TEXT_FRAME_TYPES[level_bucket(record)]
            self.sink.log(message, kind)
        else:
            self.sink.log(message)


class RuntimeHandler(logging.Handler):
    """The runtime's own lines; with `errors` (the log format) a failed invocation is
    written as the platform's error report."""

    def __init__(self, sink: Sink, errors: str | None) -> None:
        super().__init__()
        self.sink = sink
        self.errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        try:
            exc_info = record.exc_info
            if (
                self.errors is not None
                and exc_info
                and exc_info[1] is not None
                and record.name == INVOCATION_FAILED[0]
                and record.msg == INVOCATION_FAILED[1]
            ):
                report = error_report(
                    from_exception(exc_info[1]),
                    getattr(record, "aws_request_id", ""),
                    self.errors,
                    record.created,
                )
                types = JSON_FRAME_TYPES if self.errors == "JSON" else TEXT_FRAME_TYPES
                self.sink.log_error(report, types[logging.ERROR])
                return
            message = self.format(record)
            self.sink.log(message, JSON_FRAME_TYPES[level_bucket(record)])
        except Exception:  # the runtime must not fail for a line it could not write
            self.handleError(record)


def error_report(error: LambdaError, rid: str, fmt: str, created: float) -> list[str]:
    """awslambdaric's `log_error` of an invocation's error, one item per line."""
    if fmt == "JSON":
        body = {
            "timestamp": time.strftime(JSON_DATEFMT, time.gmtime(created)),
            "level": "ERROR",
            "errorMessage": error.message or "",
            "errorType": error.error_type or "",
            "requestId": rid,
            "stackTrace": error.stack or [],
        }
        ascii_only = os.environ.get("AWS_EXECUTION_ENV") not in _UNESCAPED_ENVS
        return [json.dumps(body, ensure_ascii=ascii_only)]
    head = "[ERROR]"
    if error.error_type:
        head += " " + error.error_type
    if error.message:
        head += (":" if error.error_type else "") + " " + error.message
    lines = [head, "Traceback (most recent call last):"]
    for element in error.stack:
        if element == "":
            lines.append("")
            continue
        for line in element.splitlines():
            stripped = line.lstrip(" ")
            lines.append(_NBSP * (len(line) - len(stripped)) + stripped)
    return lines


def report_error(error: LambdaError, rid: str) -> None:
    """Write `error` as awslambdaric's `log_error` does (an init error, a failed
    invocation), in the installed log format, on the installed sink."""
    for handler in log.handlers:
        if isinstance(handler, RuntimeHandler) and handler.errors is not None:
            types = JSON_FRAME_TYPES if handler.errors == "JSON" else TEXT_FRAME_TYPES
            report = error_report(error, rid, handler.errors, time.time())
            handler.sink.log_error(report, types[logging.ERROR])
            return


def install(level: str = "", fmt: str = "Text", *, sink: Sink | None = None) -> Sink:
    """Set up the process's logging as awslambdaric does (see the module's docstring);
    returns the sink records go to. `level` is AWS_LAMBDA_LOG_LEVEL's value ('' unset)."""
    out = sink if sink is not None else egress.open_sink()
    # As awslambdaric does, for every formatter: a user's own `%(asctime)s` is UTC too.
    logging.Formatter.converter = time.gmtime
    name = lambda_level(level)
    json_format = fmt.upper() == "JSON"
    handler = RecordHandler(out, typed=json_format or bool(name))
    handler.setFormatter(
        JsonFormatter() if json_format else logging.Formatter(TEXT_FORMAT, TEXT_DATEFMT)
    )
    handler.addFilter(RequestFilter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        if isinstance(old, RecordHandler):  # installed before in this process (tests)
            root.removeHandler(old)
    if name in logging.getLevelNamesMapping():
        root.setLevel(name)
    root.addHandler(handler)
    # A failed invocation is reported as on Lambda in every mode: a function's error
    # reports read the same wherever it runs.
    errors = "JSON" if json_format else "Text"
    install_runtime(name, out, errors)
    return out


def install_runtime(level: str, sink: Sink, errors: str | None = None) -> None:
    """The "worker" loggers' own handler: INFO (DEBUG when `level` is), not propagated."""
    if isinstance(sys.stdout, io.TextIOWrapper) and not sys.stdout.line_buffering:
        # Each line leaves at once, whole: a line shares the stdout of several processes
        # with theirs, and a line written by print() follows the records before it.
        sys.stdout.reconfigure(line_buffering=True)
    handler = RuntimeHandler(sink, errors)
    handler.setFormatter(RuntimeFormatter())
    handler.addFilter(RequestFilter())
    for old in log.handlers[:]:
        log.removeHandler(old)
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.DEBUG if level == "DEBUG" else logging.INFO)
