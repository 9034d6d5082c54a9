"""A job: one accepted invocation on its way from a source to a slot, and back."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from typing import Any

from worker.context import ClientContext, CognitoIdentity
from worker.errors import LambdaError
from worker.streaming import ResponseStream

#: Called once with the handler's result or the error; returns the error type the source
#: finally answered with (a result can still fail to marshal), or None on success.
Reply = Callable[[Any, LambdaError | None], str | None]

# Request ids: a random per-process prefix and a counter, shaped like a UUID. uuid4()
# costs a system call and an object per request; these are unique all the same. The
# counter's last group is 12 decimal digits (decimal digits are hex digits too): str() of
# an int is cheaper than formatting it as hex, by half of what an id costs.
_FIRST = 10**11
_LAST = 10**12 - 1
_prefix = os.urandom(10).hex()
_counter = itertools.count(_FIRST)


def _shape(p: str) -> str:
    return f"{p[:8]}-{p[8:12]}-{p[12:16]}-{p[16:20]}-"


_shaped = _shape(_prefix)


def reseed() -> None:
    """A forked worker must not repeat its parent's ids (nor a process its own, once its
    counter runs out)."""
    global _prefix, _counter, _shaped
    _prefix = os.urandom(10).hex()
    _shaped = _shape(_prefix)
    _counter = itertools.count(_FIRST)


def new_request_id() -> str:
    n = next(_counter)
    if n > _LAST:  # 9e11 ids later: a fresh prefix keeps the shape and uniqueness
        reseed()
        n = next(_counter)
    return _shaped + str(n)


class Job:
    """One invocation: the decoded event, its metadata, and where the answer goes.

    `reply(result, error)` answers it: by calling the `reply` callback it was made with, or,
    in a source's subclass, by its own `reply` (the HTTP front's job is its place in the
    connection's answer order too: one object and one call fewer per request).

    The HTTP front and the Runtime API's pollers pass the arguments by position: keywords
    cost 0.3 µs more per call.
    """

    queued_at: float  # monotonic seconds

    __slots__ = (
        "client_context",
        "deadline",
        "event",
        "identity",
        "invoked_arn",
        "kind",
        "lane",
        "on_reply",
        "queued_at",  # set only when it waits in a lane's queue (`Lane.offer`)
        "raw",
        "request_id",
        "route",
        "size",
        "tenant_id",
        "trace_id",
    )

    def __init__(
        self,
        event: Any,
        reply: Reply | None,
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
        self.on_reply = reply
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

    def reply(self, result: Any, error: LambdaError | None) -> str | None:
        """Answer with the handler's result or the error; returns the error type the
        source finally answered with (a result can still fail to marshal), or None."""
        assert self.on_reply is not None, "a job made without a callback overrides reply"
        return self.on_reply(result, error)

    def stream(self) -> ResponseStream | None:
        """Where this job's answer can go piece by piece, or None when its source can only
        answer whole (see `worker.streaming`)."""
        return None
