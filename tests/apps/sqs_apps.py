"""SQS handlers for the tests: each records what it processed in a file it owns."""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any


def _record(line: str) -> None:
    # One short O_APPEND write per line: whole lines, even from several processes.
    fd = os.open(os.environ["SQS_STORE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _unlucky(message_id: str) -> bool:
    return int(hashlib.sha1(message_id.encode()).hexdigest(), 16) % 10 == 0


def flaky(event: Any, context: Any) -> Any:
    """Fails one message in ten on its first delivery (partial batch failure).

    Idempotent, as an SQS consumer must be (delivery is at least once): a message is
    processed once, marked by a file created exclusively under SQS_DONE; a second delivery
    of a processed message only counts as a duplicate in SQS_STORE.
    """
    failures = []
    for record in event["Records"]:
        first = record["attributes"].get("ApproximateReceiveCount") == "1"
        if first and _unlucky(record["messageId"]):
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        try:
            fd = os.open(
                os.path.join(os.environ["SQS_DONE"], record["messageId"]),
                os.O_WRONLY | os.O_CREAT | os.O_EXCL,
            )
        except FileExistsError:
            _record(f"duplicate {record['messageId']}")
            continue
        os.write(fd, record["body"].encode())
        os.close(fd)
    return {"batchItemFailures": failures}


async def gated(event: Any, context: Any) -> Any:
    """Holds every batch until SQS_GATE exists; marks its start, records on success."""
    for record in event["Records"]:
        _record(f"started {record['messageId']} pid={os.getpid()}")
    while not os.path.exists(os.environ["SQS_GATE"]):
        await _sleep()
    for record in event["Records"]:
        _record(f"done {record['messageId']}")
    return None


async def tally(event: Any, context: Any) -> Any:
    """Holds each batch briefly (so kills land mid-batch), then marks each body done once.

    The marker under SQS_DONE, named by the body, holds the pid that processed it. It is
    written aside first (a dot-file) and linked into place, which is atomic and exclusive:
    a kill mid-write leaves no half marker that a redelivery would take for done. A
    redelivery of a finished message (its delete was cut by a kill) counts as a duplicate
    in SQS_STORE and succeeds, so it is deleted this time.
    """
    await _sleep()
    done, pid = os.environ["SQS_DONE"], os.getpid()
    for record in event["Records"]:
        partial = os.path.join(done, f".{record['body']}.{pid}")
        with open(partial, "w") as f:
            f.write(str(pid))
        try:
            os.link(partial, os.path.join(done, record["body"]))
        except FileExistsError:
            _record(f"duplicate {record['body']}")
        finally:
            os.unlink(partial)
    return None


async def _sleep() -> None:
    import asyncio

    await asyncio.sleep(0.01)


def fifo(event: Any, context: Any) -> Any:
    """Records `group seq` in order. `A:5` fails on its first delivery; after a failure the
    rest of the batch is reported failed, as Powertools' FIFO processor does."""
    failures: list[dict[str, str]] = []
    for record in event["Records"]:
        group, seq = record["body"].split(":")
        first = record["attributes"].get("ApproximateReceiveCount") == "1"
        if failures or (group == "A" and seq == "5" and first):
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        _record(f"{group} {seq}")
    return {"batchItemFailures": failures}


def raises(event: Any, context: Any) -> Any:
    _record("raised " + " ".join(r["messageId"] for r in event["Records"]))
    raise RuntimeError("the whole batch fails")


def slow(event: Any, context: Any) -> Any:
    """Outlives its visibility timeout; only the heartbeat keeps it from a redelivery."""
    time.sleep(float(os.environ.get("SLOW_SECONDS", "3")))
    for record in event["Records"]:
        _record(f"{record['messageId']} {record['attributes'].get('ApproximateReceiveCount')}")
    return None
