"""A job: one accepted invocation on its way from a source to a slot, and back."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from typing import Any

from worker.context import ClientContext, CognitoIdentity
from worker.errors import LambdaError

#: Called once with the handler's result or the error; returns the error type the source
#: finally answered with (a result can still fail to marshal), or None on success.
Reply = Callable[[Any, LambdaError | None], str | None]

# Request ids: a random per-process prefix and a counter, shaped like a UUID. uuid4()
# costs a system call and an object per request; these are unique all the same.
_prefix = os.urandom(10).hex()
_counter = itertools.count(1)


def _shape(p: str) -> str:
    return f"{p[:8]}-{p[8:12]}-{p[12:16]}-{p[16:20]}-"


_shaped = _shape(_prefix)


def reseed() -> None:
    """A forked worker must not repeat its parent's ids."""
    global _prefix, _counter, _shaped
    _prefix = os.urandom(10).hex()
    _shaped = _shape(_prefix)
    _counter = itertools.count(1)


def new_request_id() -> str:
    return _shaped + format(next(_counter), "012x")


class Job:
    """One invocation: the decoded event, its metadata, and where the answer goes.

    The HTTP front and the Runtime API's pollers pass the arguments by position: keywords
    cost 0.3 µs more per call.
    """

    __slots__ = (
        "client_context",
        "deadline",
        "event",
        "identity",
        "invoked_arn",
        "kind",
        "lane",
        "raw",
        "reply",
        "request_id",
        "route",
        "size",
        "tenant_id",
        "trace_id",
    )

    def __init__(
        self,
        event: Any,
        reply: Reply,
        request_id: str | None = None,
        size: int = 0,
        deadline: float | None = None,
        kind: str = "direct",
        route: str = "",
        trace_id: str | None = None,
        client_context: ClientContext | None = None,
        identity: CognitoIdentity | None = None,
        invoked_arn: str | None = None,
        tenant_id: str | None = None,
        raw: bytes | None = None,
    ) -> None:
        self.event = event
        self.raw = raw  # the event's bytes as received, when a source has them
        self.reply = reply
        self.request_id = request_id or new_request_id()
        self.size = size
        self.deadline = deadline  # epoch seconds; None: the function timeout from start
        self.kind = kind
        self.route = route
        self.lane = ""
        self.trace_id = trace_id
        self.client_context = client_context
        self.identity = identity
        self.invoked_arn = invoked_arn
        self.tenant_id = tenant_id
