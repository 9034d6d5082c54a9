"""The invocation's X-Ray trace id where libraries look for it: `_X_AMZN_TRACE_ID`.

Lambda hands each invocation a trace id, and the official runtime puts it in the process
environment, where Powertools (`xray_trace_id` in every log line), the X-Ray SDK and
OpenTelemetry's propagators read it. That works with one invocation per process. Here
many invocations share a process, so the id lives in a ContextVar, one per invocation
(sync handlers on threads run in a copy of their slot's context), and `os.environ` is
taught to answer `_X_AMZN_TRACE_ID` from it. Everything else in the environment reads as
before; with no invocation's id at hand the real variable answers.
"""

from __future__ import annotations

import contextvars
import os
from typing import Any

#: The trace id of the invocation this code runs for (None: none was given).
trace_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace_id", default=None)

VARIABLE = "_X_AMZN_TRACE_ID"


class _TracedEnviron(os._Environ):  # type: ignore[type-arg]
    """`os.environ`, with `_X_AMZN_TRACE_ID` read from the running invocation."""

    def __getitem__(self, key: Any) -> Any:
        if key == VARIABLE:
            value = trace_id.get()
            if value is not None:
                return value
        return super().__getitem__(key)


def install() -> None:
    """Make `os.environ` answer `_X_AMZN_TRACE_ID` per invocation (once per process)."""
    if type(os.environ) is os._Environ:
        os.environ.__class__ = _TracedEnviron
