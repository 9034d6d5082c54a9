"""The Router: one handler dispatching by kind and route, in every mode."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from tests import events
from tests.apps import routed
from tests.client import invoke, request
from worker.errors import LambdaError
from worker.router import Router, http_request


class Ctx:
    """A context as a foreign runtime would give it: no kind, no params slot of ours."""

    def __init__(self) -> None:
        self.kind: str | None = None
        self.route = ""
        self.params: dict[str, str] = {}


def sample(kind: str, index: int = 0) -> dict[str, Any]:
    return copy.deepcopy([e for k, _, e in events.corpus() if k == kind][index])


def test_http_templates_match_every_http_shape() -> None:
    for kind in ("apigw-rest", "apigw-http-v1", "alb"):
        event = sample(kind)
        event["httpMethod"], event["path"] = "GET", "/items/42"
        ctx = Ctx()
        assert routed.router(event, ctx)["body"] == f"item 42 via {kind}"
        assert ctx.params == {"id": "42"}
    for kind in ("apigw-http", "function-url"):
        event = sample(kind)
        event["rawPath"] = "/items/7"
        event["requestContext"]["http"]["method"] = "GET"
        assert routed.router(event, Ctx())["body"] == f"item 7 via {kind}"


def test_lambda_edge_request_is_matched_by_its_uri() -> None:
    event = sample("lambda-edge")
    event["Records"][0]["cf"]["request"].update(method="GET", uri="/items/9")
    assert http_request("lambda-edge", event) == ("GET", "/items/9")
    assert routed.router(event, Ctx())["body"] == "item 9 via lambda-edge"


def test_greedy_parameter_takes_the_rest_of_the_path() -> None:
    event = sample("apigw-http")
    event["rawPath"] = "/files/a/b/c.txt"
    assert routed.router(event, Ctx())["body"] == "a/b/c.txt"


def test_unmatched_http_answers_404_and_wrong_method_405() -> None:
    router = Router()
    router.http("GET /items/{id}")(lambda e, c: "item")
    event = sample("apigw-http")
    event["rawPath"] = "/nothing"
    assert router(event, Ctx())["statusCode"] == 404
    event["rawPath"] = "/items/1"
    event["requestContext"]["http"]["method"] = "DELETE"
    answer = router(event, Ctx())
    assert answer["statusCode"] == 405
    assert answer["headers"]["allow"] == "GET"


@pytest.mark.parametrize(
    ("kind", "index", "expected"),
    [
        ("sqs", 0, {"handled": "orders", "count": 1}),  # queue "orders"
        ("sqs", 1, {"handled": "default", "kind": "sqs"}),  # queue "jobs": no route
        ("s3", 0, {"handled": "uploads", "bucket": "uploads"}),
        ("s3", 1, {"handled": "default", "kind": "s3"}),
        ("sns", 0, {"handled": "default", "kind": "sns"}),
    ],
)
def test_non_http_events_go_by_their_route(kind: str, index: int, expected: Any) -> None:
    assert routed.router(sample(kind, index), Ctx()) == expected


def test_schedule_matches_the_rule_name() -> None:
    event = sample("schedule")
    assert routed.router(event, Ctx()) == {"handled": "default", "kind": "schedule"}
    event["resources"] = ["arn:aws:events:us-east-1:123456789012:rule/nightly-report"]
    assert routed.router(event, Ctx()) == "nightly"


def test_eventbridge_by_source_and_detail_type() -> None:
    router = Router()
    router.eventbridge(source="com.shop", detail_type="Order*")(lambda e, c: "order")
    router.default(lambda e, c: "other")
    event = sample("eventbridge")
    event.update(source="com.shop", **{"detail-type": "OrderPlaced"})
    assert router(event, Ctx()) == "order"
    event["detail-type"] = "Refund"
    assert router(event, Ctx()) == "other"


def test_direct_invokes_go_by_their_route_key() -> None:
    assert routed.router({"action": "resize", "width": 3}, Ctx()) == {
        "handled": "resize",
        "width": 3,
    }
    assert routed.router({"action": "other"}, Ctx())["handled"] == "default"


def test_no_route_and_no_default_is_a_lambda_error() -> None:
    router = Router()
    router.sqs("orders")(lambda e, c: "x")
    with pytest.raises(LambdaError) as caught:
        router(sample("s3"), Ctx())
    assert caught.value.error_type == "Router.RouteNotFound"


def test_bad_templates_are_refused_at_registration() -> None:
    router = Router()
    with pytest.raises(ValueError, match="METHOD /path"):
        router.http("GET items")
    with pytest.raises(ValueError, match="bad parameter"):
        router.http("GET /items/{not valid}")


def test_is_async_when_any_target_is() -> None:
    router = Router()
    router.sqs()(lambda e, c: None)
    assert not router.is_async

    async def target(event: Any, context: Any) -> None:
        return None

    router.s3()(target)
    assert router.is_async


async def test_one_router_serves_an_api_a_queue_and_a_bucket(inproc) -> None:
    env = await inproc("tests.apps.routed.handler")
    got = await request(env.port, "GET", "/items/5")
    assert (got.status, got.body) == (200, b"item 5 via apigw-http")
    created = await request(env.port, "POST", "/items", {"name": "x"})
    assert created.status == 201
    assert created.body.startswith(b"handler")  # the sync target ran on a handler thread
    fallback = await request(env.port, "GET", "/nope")  # no HTTP route: the default
    assert fallback.json() == {"handled": "default", "kind": "apigw-http"}
    queue = await invoke(env.port, sample("sqs"))
    assert queue.json() == {"handled": "orders", "count": 1}
    bucket = await invoke(env.port, sample("s3"))
    assert bucket.json() == {"handled": "uploads", "bucket": "uploads"}


async def test_router_in_lambda_mode(emulate) -> None:
    emu = emulate("tests.apps.routed.handler")
    answer = await invoke(emu.port, sample("sqs"))
    assert answer.json() == {"handled": "orders", "count": 1}
    answer = await invoke(emu.port, {"action": "resize", "width": 8})
    assert answer.json() == {"handled": "resize", "width": 8}
    answer = await invoke(emu.port, sample("schedule"))
    assert answer.json() == {"handled": "default", "kind": "schedule"}


async def test_no_route_in_serve_is_a_function_error(inproc) -> None:
    env = await inproc("tests.apps.routed_strict.handler")
    answer = await invoke(env.port, sample("s3"))
    assert answer.headers.get("x-amz-function-error") == "Unhandled"
    assert orjson.loads(answer.body)["errorType"] == "Router.RouteNotFound"
