"""Handlers with known behaviour: echo, fail, hang, unmarshalable, context, scratch, gates."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any

log = logging.getLogger("tests.apps")


async def echo(event: Any, context: Any) -> Any:
    return event


def sync_echo(event: Any, context: Any) -> Any:
    return {"event": event, "thread": threading.current_thread().name}


def sync_where(event: Any, context: Any) -> Any:
    """Says which thread it ran on; sleeps first when asked (a call that blocks)."""
    if event.get("sleep"):
        time.sleep(float(event["sleep"]))
    return {"thread": threading.current_thread().name}


def sync_runs_a_loop(event: Any, context: Any) -> Any:
    """Runs an event loop of its own, as sync handlers that call async libraries do."""

    async def main() -> str:
        await asyncio.sleep(0)
        return threading.current_thread().name

    return {"thread": asyncio.run(main()), "event": event}


async def fail(event: Any, context: Any) -> Any:
    raise ValueError("boom")


def sync_fail(event: Any, context: Any) -> Any:
    raise KeyError("missing")


async def hang(event: Any, context: Any) -> Any:
    await asyncio.sleep(3600)


def sync_sleep(event: Any, context: Any) -> Any:
    time.sleep(float(event.get("seconds", 1.5)))
    return {"slept": event.get("seconds", 1.5)}


async def unmarshalable(event: Any, context: Any) -> Any:
    return {"value": object()}


async def oversize(event: Any, context: Any) -> Any:
    return "x" * int(event.get("bytes", 7 * 1024 * 1024))


async def raise_timeout(event: Any, context: Any) -> Any:
    raise TimeoutError("my own timeout")


def context_info(event: Any, context: Any) -> Any:
    return {
        "aws_request_id": context.aws_request_id,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "identity": [
            context.identity.cognito_identity_id,
            context.identity.cognito_identity_pool_id,
        ],
        "client_context": None
        if context.client_context is None
        else {
            "installation_id": context.client_context.client.installation_id,
            "custom": context.client_context.custom,
            "env": context.client_context.env,
        },
        "remaining": context.get_remaining_time_in_millis(),
        "deadline": context.deadline,
        "lane": context.lane,
    }


async def whoami(event: Any, context: Any) -> Any:
    return {"pid": os.getpid(), "tmpdir": os.environ.get("TMPDIR")}


def _wait_for(path: str) -> None:
    while not os.path.exists(path):
        time.sleep(0.005)


async def _await_file(path: str) -> None:
    while not os.path.exists(path):
        await asyncio.sleep(0.005)


async def scratch(event: Any, context: Any) -> Any:
    """Write into context.tmp, announce it, hold until released: two can overlap."""
    path = os.path.join(context.tmp, "data.txt")
    with open(path, "w") as f:
        f.write(context.aws_request_id)
    with open(os.path.join(event["dir"], f"started-{context.aws_request_id}"), "w") as f:
        f.write(context.tmp)
    await _await_file(os.path.join(event["dir"], "release"))
    with open(path) as f:
        mine = f.read() == context.aws_request_id
    return {"tmp": context.tmp, "mine": mine, "tmpdir": os.environ.get("TMPDIR")}


_active = 0
_peak = 0
_lock = threading.Lock()


async def peak(event: Any, context: Any) -> Any:
    """Counts how many run at once, holding each until `release` exists."""
    global _active, _peak
    with _lock:
        _active += 1
        _peak = max(_peak, _active)
    try:
        await _await_file(os.path.join(event["dir"], "release"))
    finally:
        with _lock:
            _active -= 1
    return {"peak": _peak, "pid": os.getpid()}


async def gate(event: Any, context: Any) -> Any:
    """Announce the start, then hold until `release` exists (for drain and overload);
    `hold` seconds first, when given (an invocation of a known length)."""
    with open(os.path.join(event["dir"], f"started-{context.aws_request_id}"), "w"):
        pass
    await asyncio.sleep(event.get("hold", 0))
    await _await_file(os.path.join(event["dir"], "release"))
    return {"done": context.aws_request_id}


async def gate_or_exit(event: Any, context: Any) -> Any:
    """`gate`; `{"exit": N}` ends the whole worker process at once (`os._exit`), with the
    other invocations it holds."""
    if "exit" in event:
        os._exit(event["exit"])
    return await gate(event, context)


async def stubborn_gate(event: Any, context: Any) -> Any:
    """`gate` that ignores its cancellation until released: holds its slot past the
    deadline (a handler that swallows every cancellation)."""
    with open(os.path.join(event["dir"], f"started-{context.aws_request_id}"), "w"):
        pass
    release = os.path.join(event["dir"], "release")
    while not os.path.exists(release):
        try:
            await asyncio.sleep(0.005)
        except asyncio.CancelledError:
            continue
    return {"done": context.aws_request_id}


def sync_gate(event: Any, context: Any) -> Any:
    with open(os.path.join(event["dir"], f"started-{context.aws_request_id}"), "w"):
        pass
    _wait_for(os.path.join(event["dir"], "release"))
    return {"done": context.aws_request_id}


def logs_in_thread(event: Any, context: Any) -> Any:
    for i in range(int(event.get("lines", 3))):
        log.info("line %d of %s", i, event.get("tag"))
        time.sleep(0.001)
    return {"requestId": context.aws_request_id}


async def proxy_response(event: Any, context: Any) -> Any:
    """Returns whatever response the request's JSON body describes."""
    import json

    return json.loads(event["body"]) if event.get("body") else {"path": event["rawPath"]}


def exits(event: Any, context: Any) -> Any:
    raise SystemExit(3)


async def async_exits(event: Any, context: Any) -> Any:
    raise SystemExit(4)


async def swallow_cancel(event: Any, context: Any) -> Any:
    """A rude handler: ignores its cancellation and returns late."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await asyncio.sleep(0.05)
    return {"late": True}


async def trace(event: Any, context: Any) -> Any:
    return {"trace_id": context.trace_id}


async def mixed(event: Any, context: Any) -> Any:
    """Behaves as the event says: the bad-input tour of one worker."""
    action = event.get("do")
    if action == "raise":
        raise RuntimeError("asked to fail")
    if action == "hang":
        await asyncio.sleep(3600)
    if action == "unmarshalable":
        return object()
    return {"pid": os.getpid()}


async def trace_env(event: Any, context: Any) -> Any:
    return {"env": os.environ.get("_X_AMZN_TRACE_ID"), "ctx": context.trace_id, "pid": os.getpid()}


def sync_marked_sleep(event: Any, context: Any) -> Any:
    """Sleeps, then leaves a mark: no mark means it was interrupted."""
    time.sleep(float(event.get("seconds", 0)))
    with open(os.path.join(event["dir"], f"finished-{context.aws_request_id}"), "w"):
        pass
    return {"slept": event.get("seconds", 0), "thread": threading.current_thread().name}


def sync_gate_then_fail(event: Any, context: Any) -> Any:
    """Holds until released, then raises: an abandoned thread's late failure."""
    sync_gate(event, context)
    raise RuntimeError("too late to matter")


async def lanes_app(event: Any, context: Any) -> Any:
    """`slow` holds until released, `learn` sleeps, anything else answers at once."""
    action = event.get("action")
    if action == "slow":
        with open(os.path.join(event["dir"], f"started-{context.aws_request_id}"), "w"):
            pass
        await _await_file(os.path.join(event["dir"], "release"))
    elif action == "learn":
        await asyncio.sleep(float(event["seconds"]))
    return {"action": action, "lane": context.lane}


_LEAK: list[bytes] = []


async def leak(event: Any, context: Any) -> Any:
    """Keeps 2 MB more after every call: a handler with a memory leak."""
    _LEAK.append(b"x" * (2 * 1024 * 1024))
    return {"pid": os.getpid(), "held_mb": 2 * len(_LEAK)}


async def only_fed(event: Any, context: Any) -> Any:
    """Answers the event `worker emulate --feed` is given in tests, and fails any other."""
    if event != {"fed": True}:
        raise ValueError(f"not the fed event: {event!r}")
    return event
