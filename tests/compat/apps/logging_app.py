"""A handler logging every way Lambda code does: print, the standard library's loggers
(with the root's level set at import), a library's logger, an exception, and structlog."""

from __future__ import annotations

import logging
from typing import Any

import structlog

log = logging.getLogger(__name__)
# Many functions do this at import, under every runtime's own handler.
logging.getLogger().setLevel(logging.INFO)
structured = structlog.get_logger()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    n = event["n"]
    print("printed", n)
    log.debug("debug %d", n)
    log.info("info %d", n)
    log.warning("warning\nsecond line %d", n)
    try:
        log.info("ratio %d", n // (n - n))
    except ZeroDivisionError:
        log.exception("failed %d", n)
    logging.getLogger("some.library").error("a library's error")
    structured.info("structured", n=n)
    return {"n": n}
