"""A Router with no default: unmatched events fail with Router.RouteNotFound."""

from __future__ import annotations

from typing import Any

from worker.router import Router

handler = Router()


@handler.sqs("orders")
def orders(event: Any, context: Any) -> str:
    return "orders"
