"""Powertools' Logger with `inject_lambda_context`: structured JSON lines with the context."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

logger = Logger(service="compat")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.info("handling", extra={"order_id": event.get("order_id")})
    logger.append_keys(customer=event.get("customer"))
    logger.warning("low stock")
    logger.debug("not shown at the default level")
    try:
        raise KeyError(event.get("order_id"))
    except KeyError:
        logger.exception("lookup failed")
    return {"logged": 3}
