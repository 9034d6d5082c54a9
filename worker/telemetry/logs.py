"""JSON log lines with the invocation's request id, as Lambda's JSON log format has them."""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from typing import Any, TextIO

import orjson

#: The current invocation's id. A ContextVar, so concurrent invocations on one loop and
#: sync handlers on threads (which run in a copy of the slot's context) see their own.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


class JsonFormatter(logging.Formatter):
    """One compact JSON object per line: timestamp, level, message, logger, requestId."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.gmtime(record.created)
        line: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", ts) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        rid = getattr(record, "requestId", None) or request_id.get()
        if rid:
            line["requestId"] = rid
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            line["errorType"] = type(exc).__name__
            line["errorMessage"] = str(exc)
            line["stackTrace"] = self.formatException(record.exc_info).splitlines()
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            line.update(extra)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """Lambda's plain text shape: `[LEVEL] timestamp requestId message`."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        rid = request_id.get() or ""
        text = (
            f"[{record.levelname}]\t{stamp}.{int(record.msecs):03d}Z\t{rid}\t{record.getMessage()}"
        )
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure(level: str = "INFO", fmt: str = "JSON", stream: TextIO | None = None) -> None:
    """Route the root logger to one stream handler; logging's own lock makes it thread-safe."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt.upper() == "JSON" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if level.upper() in logging._nameToLevel else "INFO")


log = logging.getLogger("worker")
