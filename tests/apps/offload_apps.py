"""Handlers for the offload lane's tests: each call records where it ran and what it saw."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import orjson


def record(event: Any, context: Any) -> dict[str, Any]:
    """Write one file per call into OFFLOAD_DONE: the event, the mode that ran it (its
    OFFLOAD_WHERE), the request id and lane the context gave; sleep `event["sleep"]`."""
    if isinstance(event, dict) and event.get("sleep"):
        time.sleep(float(event["sleep"]))
    seen = {
        "event": event,
        "where": os.environ.get("OFFLOAD_WHERE", ""),
        "request_id": context.aws_request_id,
        "lane": context.lane,
    }
    done = os.environ["OFFLOAD_DONE"]
    path = os.path.join(done, uuid.uuid4().hex)
    with open(path + ".tmp", "wb") as f:
        f.write(orjson.dumps(seen))
    os.rename(path + ".tmp", path + ".json")  # whole or absent: the test reads complete files
    return {"ran": os.environ.get("OFFLOAD_WHERE", "")}
