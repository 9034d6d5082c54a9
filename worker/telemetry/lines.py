"""Whole lines on stdout and stderr, whichever thread writes them.

Under the official runtime one process runs one invocation at a time, so a `print()` never
meets another's. Here several invocations share a process: `print("x")` is two writes
("x", then "\\n"), and two sync handlers on threads printing at once gave "xy\\n\\n", or
a print ran into a log record's line. CloudWatch splits events at newlines, so a merged
line is a lost line.

`LineStream` wraps a text stream: each thread's text is held until it ends a line, and
whole lines go out in one write under one lock, which log records (written whole through
`sys.stdout`, see `worker.telemetry.egress`) take too. A partial line goes out at
`flush()` (`print(..., flush=True)`). Installed before the handler's module is imported,
so a library that keeps `sys.stdout` at import (Powertools' Logger does) writes through it.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from typing import Any, TextIO


class _Pending(threading.local):
    text = ""


class LineStream(io.TextIOBase):
    """A text stream whose every write of one or more whole lines is atomic."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self._lock = threading.Lock()
        self._pending = _Pending()
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        # Another thread may have held the lock at the fork: the child has no such thread.
        self._lock = threading.Lock()
        self._pending = _Pending()

    def write(self, text: str) -> int:
        pending = self._pending
        cut = text.rfind("\n")
        if cut < 0:
            pending.text += text
            return len(text)
        head = pending.text + text[: cut + 1] if pending.text else text[: cut + 1]
        pending.text = text[cut + 1 :]
        with self._lock:
            self.stream.write(head)
            self.stream.flush()
        return len(text)

    def flush(self) -> None:
        pending = self._pending
        with self._lock:
            if pending.text:
                self.stream.write(pending.text)
                pending.text = ""
            self.stream.flush()

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.stream.fileno()

    def isatty(self) -> bool:
        return self.stream.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.stream.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self.stream.errors

    @property
    def buffer(self) -> Any:
        return self.stream.buffer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def install() -> None:
    """Wrap `sys.stdout` and `sys.stderr` (once per process)."""
    if not isinstance(sys.stdout, LineStream):
        sys.stdout = LineStream(sys.stdout)
    if not isinstance(sys.stderr, LineStream):
        sys.stderr = LineStream(sys.stderr)
