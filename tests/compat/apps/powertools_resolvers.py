"""Powertools' event handler: the same routes behind each resolver (HTTP API v2, REST API
v1, ALB), each with its own Logger."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import (
    ALBResolver,
    APIGatewayHttpResolver,
    APIGatewayRestResolver,
    Response,
    content_types,
)
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.shared.cookies import Cookie

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def build(app: ApiGatewayResolver, service: str) -> Handler:
    logger = Logger(service=service)

    @app.get("/items/<item_id>")
    def item(item_id: str) -> dict[str, Any]:
        logger.info("item", extra={"item_id": item_id})
        return {"item_id": item_id, "q": app.current_event.get_query_string_value("q")}

    @app.post("/orders")
    def order() -> Response[str]:
        body = app.current_event.json_body
        return Response(
            status_code=201,
            content_type=content_types.APPLICATION_JSON,
            body=f'{{"total": {body["quantity"] * 3}}}',
            cookies=[
                Cookie(name="order", value="1"),
                Cookie(name="seen", value="yes", http_only=True),
            ],
            headers={"x-multi": ["a", "b"]},
        )

    @app.get("/binary")
    def binary() -> Response[bytes]:
        return Response(status_code=200, content_type="image/png", body=bytes(range(256)))

    @app.get("/missing")
    def missing() -> None:
        raise NotFoundError("no such thing")

    @logger.inject_lambda_context
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return app.resolve(event, context)

    return handler


http_handler = build(APIGatewayHttpResolver(), "compat-http")
rest_handler = build(APIGatewayRestResolver(), "compat-rest")
alb_handler = build(ALBResolver(), "compat-alb")
