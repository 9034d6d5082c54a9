"""Handlers with SnapStart hooks registered as AWS documents (`snapshot_restore_py`).

Every hook run is appended, one JSON line, to the file SNAPSTART_RECORD names: the hook,
the process (pid, parent) and, for the pooled-client app, the client it saw.
SNAPSTART_FAIL=before (or after) makes that hook raise; with SNAPSTART_GATE set, the
after-restore hook waits until that file exists (a test looks at the environment meanwhile).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from snapshot_restore_py import register_after_restore, register_before_snapshot

RECORD = os.environ.get("SNAPSTART_RECORD", "")
FAIL = os.environ.get("SNAPSTART_FAIL", "")
GATE = os.environ.get("SNAPSTART_GATE", "")
#: This process's hook runs, in order.
runs: list[str] = []


def _record(hook: str, **extra: Any) -> None:
    runs.append(hook)
    if RECORD:
        line = {"hook": hook, "pid": os.getpid(), "ppid": os.getppid(), **extra}
        with open(RECORD, "a") as f:
            f.write(json.dumps(line) + "\n")


@register_before_snapshot
def close_pool() -> None:
    _record("before_snapshot")
    if FAIL == "before":
        raise ValueError("the pool would not close")


def reconnect(name: str, *, retries: int = 0) -> None:
    """Registered by a call, with arguments."""
    _record(f"after_restore:{name}:{retries}")
    while GATE and not os.path.exists(GATE):
        time.sleep(0.01)
    if FAIL == "after":
        raise ConnectionError("the database did not answer")


register_after_restore(reconnect, "db", retries=2)


def first_registered() -> None:
    _record("before_snapshot:first")


# Registered last: awslambdaric runs before-snapshot hooks in reverse order, so it runs first.
register_before_snapshot(first_registered)


def handler(event: Any, context: Any) -> dict[str, Any]:
    return {"pid": os.getpid(), "runs": runs}


# -- pooled clients: a priming hook uses one before the snapshot -------------------------


#: The client the priming hook used (kept: its id is never another object's).
primed: list[Any] = []


def prime_s3() -> None:
    from worker import aws

    s3 = aws.current.client("s3")  # a sync client: hooks run with no loop
    s3.list_buckets()
    primed.append(s3)
    _record("prime")


def s3_handler(event: Any, context: Any) -> dict[str, Any]:
    s3 = context.client("s3")
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    return {"pid": os.getpid(), "reused": any(s3 is p for p in primed), "buckets": names}


if os.environ.get("SNAPSTART_PRIME") == "s3":
    register_before_snapshot(prime_s3)
