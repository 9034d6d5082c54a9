"""Handlers that log every way users' code does, for comparing runtimes line for line.

What the module does at import, as users' modules do: Powertools' Logger, a logger with a
handler of its own, `logging.basicConfig` (a no-op once a runtime installed its handler),
and, when LOGGING_APP_ROOT_LEVEL is set, `logging.getLogger().setLevel(...)`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import structlog
from aws_lambda_powertools import Logger

if os.environ.get("LOGGING_APP_ROOT_LEVEL"):
    logging.getLogger().setLevel(os.environ["LOGGING_APP_ROOT_LEVEL"])

# Under a Lambda runtime root has a handler already: this changes nothing.
logging.basicConfig(level=logging.DEBUG, format="basicConfig %(message)s")

powertools = Logger(service="shop")

audit = logging.getLogger("audit")
_own = logging.StreamHandler(sys.stdout)
_own.setFormatter(logging.Formatter("audit-handler %(levelname)s %(message)s"))
audit.addHandler(_own)


def everything(event: Any, context: Any) -> dict[str, Any]:
    """One call of each kind, at each level."""
    logging.debug("debug line")
    logging.info("info line")
    logging.warning("warning with %s", "an argument")
    logging.error("first line\nsecond line")
    logging.warning({"dict": "message", "n": 1})
    logging.warning("with extras", extra={"order": 7, "tags": ["a", "b"]})
    try:
        raise ValueError("caught here")
    except ValueError:
        logging.exception("an exception")
    audit.warning("audited")
    powertools.info("powertools info")
    powertools.warning("powertools warning")
    structlog.get_logger().warning("structlog event", key=1)
    print("printed")
    print("printed to stderr", file=sys.stderr)
    return {"pid": os.getpid()}


def raises(event: Any, context: Any) -> Any:
    """An invocation error: the runtime's report of it is what is compared."""
    _check(event)


def _check(event: Any) -> None:
    raise ValueError(f"bad order: {event.get('order')}")


@powertools.inject_lambda_context
def powertools_lines(event: Any, context: Any) -> dict[str, Any]:
    """Powertools' Logger alone, with the invocation's context."""
    powertools.info("powertools info")
    powertools.warning("powertools warning")
    logging.warning("root warning")
    return {"pid": os.getpid()}


def root_level(event: Any, context: Any) -> dict[str, Any]:
    """Whether INFO passes the root logger here, and one INFO line to show it."""
    logging.info("root info")
    return {"level": logging.getLogger().level, "pid": os.getpid()}


def multiline(event: Any, context: Any) -> dict[str, Any]:
    """One record of three lines, at ERROR."""
    logging.error("one\ntwo\nthree")
    return {"pid": os.getpid()}


def streams(event: Any, context: Any) -> dict[str, Any]:
    """A line on stdout and one on stderr, each saying which process wrote it; with
    `meet` (a directory) and `count`, first wait until `count` processes are in here at
    once (each process runs one invocation at a time: every one of them answers)."""
    if event.get("meet"):
        open(os.path.join(event["meet"], str(os.getpid())), "w").close()
        end = time.monotonic() + 30
        while len(os.listdir(event["meet"])) < event["count"] and time.monotonic() < end:
            time.sleep(0.01)
    print(f"stdout of {os.getpid()}")
    print(f"stderr of {os.getpid()}", file=sys.stderr)
    return {"pid": os.getpid()}
