"""One handler for every event source: dispatch by the event's kind and route.

    router = Router()

    @router.http("GET /items/{id}")
    async def get_item(event, context):
        return {"id": context.params["id"]}

    @router.sqs("orders")            # queue name, queue ARN, or a glob of either
    def orders(event, context): ...

    @router.s3("uploads-*")          # bucket (glob)
    @router.schedule("nightly")      # EventBridge rule name
    @router.eventbridge(source="shop", detail_type="OrderPlaced")
    @router.direct("resize")         # a direct invoke's route key (`"action"` by default)
    @router.default
    def anything_else(event, context): ...

`handler = router` is then the function's handler, in `serve`, `lambda` and `sqs` modes.
The runtime has classified every event before it reaches a slot; the router reads that
kind from the context and only looks into the (already parsed) event for what it
matches on, so dispatch costs a dictionary lookup and a few comparisons. Sync and async
targets mix freely: the pool runs each the way it needs (a thread for sync ones).

What matches nothing goes to `@router.default`; without one, an HTTP event gets a 404
(or 405 when the path exists under another method) and any other event fails with
`Router.RouteNotFound`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import fnmatch
import inspect
import re
from collections.abc import Callable
from typing import Any

import orjson

from worker.classify import classify
from worker.errors import LambdaError

Target = Callable[[Any, Any], Any]
Resolved = tuple[Target, bool]

#: Kinds whose events are HTTP requests, and where each keeps its method and path.
HTTP_KINDS = frozenset(
    ("apigw-rest", "apigw-http-v1", "apigw-http", "function-url", "alb", "lambda-edge")
)


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
    )


def http_request(kind: str, event: Any) -> tuple[str, str]:
    """(method, path) of an HTTP event of any shape AWS sends."""
    if not isinstance(event, dict):
        return "", ""
    if kind == "lambda-edge":
        try:
            request = event["Records"][0]["cf"]["request"]
            return str(request.get("method", "")), str(request.get("uri", ""))
        except (KeyError, IndexError, TypeError):
            return "", ""
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, dict) else None
    if isinstance(http, dict):  # payload 2.0: HTTP API, Function URL, our proxy mode
        return str(http.get("method", "")), str(event.get("rawPath") or http.get("path") or "")
    return str(event.get("httpMethod", "")), str(event.get("path", ""))


class _HttpRoute:
    """`METHOD /path/{param}/{rest+}`: a method (or `*`) and a path template."""

    __slots__ = ("method", "pattern", "target", "template")

    def __init__(self, spec: str) -> None:
        method, _, path = spec.strip().partition(" ")
        if not path:  # just a path: any method
            method, path = "*", method
        if not path.startswith("/"):
            raise ValueError(f"bad HTTP route {spec!r}: expected 'METHOD /path'")
        self.method = method.upper()
        self.template = path
        self.target: Target | None = None
        parts = []
        for piece in re.split(r"(\{[^}]+\})", path):
            if piece.startswith("{") and piece.endswith("}"):
                name = piece[1:-1]
                greedy = name.endswith("+")
                name = name.rstrip("+")
                if not name.isidentifier():
                    raise ValueError(f"bad parameter {piece!r} in HTTP route {spec!r}")
                parts.append(f"(?P<{name}>.+)" if greedy else f"(?P<{name}>[^/]+)")
            else:
                parts.append(re.escape(piece))
        self.pattern = re.compile("".join(parts) + "/?")

    def bind(self, target: Target) -> _HttpRoute:
        bound = copy.copy(self)
        bound.target = target
        return bound

    def match(self, path: str) -> dict[str, str] | None:
        m = self.pattern.fullmatch(path)
        return m.groupdict() if m is not None else None


class _Route:
    """A non-HTTP route: a kind and a test on the event."""

    __slots__ = ("kinds", "target", "test")

    def __init__(
        self, kinds: tuple[str, ...], test: Callable[[Any, str], bool], target: Target
    ) -> None:
        self.kinds = kinds
        self.test = test
        self.target = target


def _glob(pattern: str | None, *candidates: str) -> bool:
    if pattern is None:
        return True
    return any(c == pattern or fnmatch.fnmatchcase(c, pattern) for c in candidates if c)


def _first_record(event: Any) -> dict[str, Any]:
    try:
        record = event["Records"][0]
    except (KeyError, IndexError, TypeError):
        return {}
    return record if isinstance(record, dict) else {}


def _arn_test(pattern: str | None) -> Callable[[Any, str], bool]:
    """Queue/topic/stream: the full ARN or its last name, exactly or by glob."""

    def test(event: Any, route: str) -> bool:
        name = route.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
        return _glob(pattern, route, name)

    return test


class Router:
    """A handler that dispatches each event to the function registered for it."""

    def __init__(self) -> None:
        self._http: list[_HttpRoute] = []
        self._routes: dict[str, list[_Route]] = {}
        self._default: Target | None = None
        self._async: dict[int, bool] = {}

    # -- registration ------------------------------------------------------------------

    def _add(self, target: Target) -> None:
        self._async[id(target)] = _is_async(target)

    def http(self, spec: str) -> Callable[[Target], Target]:
        """`"GET /items/{id}"`, `"/health"` (any method), `"* /files/{path+}"`."""

        route = _HttpRoute(spec)  # a bad template fails here, at import, not per request

        def register(target: Target) -> Target:
            self._http.append(route.bind(target))
            self._add(target)
            return target

        return register

    def on(
        self, kind: str, test: Callable[[Any, str], bool] | None = None
    ) -> Callable[[Target], Target]:
        """Any kind the classifier names; `test(event, route)` narrows it."""

        def register(target: Target) -> Target:
            route = _Route((kind,), test or (lambda event, route: True), target)
            self._routes.setdefault(kind, []).append(route)
            self._add(target)
            return target

        return register

    def sqs(self, queue: str | None = None) -> Callable[[Target], Target]:
        return self.on("sqs", _arn_test(queue))

    def sns(self, topic: str | None = None) -> Callable[[Target], Target]:
        return self.on("sns", _arn_test(topic))

    def kinesis(self, stream: str | None = None) -> Callable[[Target], Target]:
        return self.on("kinesis", _arn_test(stream))

    def dynamodb(self, table: str | None = None) -> Callable[[Target], Target]:
        def test(event: Any, route: str) -> bool:
            # arn:aws:dynamodb:region:acct:table/NAME/stream/LABEL
            parts = route.split("/")
            return _glob(table, route, parts[1] if len(parts) > 1 else "")

        return self.on("dynamodb", test)

    def s3(self, bucket: str | None = None) -> Callable[[Target], Target]:
        return self.on("s3", lambda event, route: _glob(bucket, route))

    def schedule(self, rule: str | None = None) -> Callable[[Target], Target]:
        """A scheduled EventBridge rule, by rule name or ARN (glob)."""

        def test(event: Any, route: str) -> bool:
            resources = event.get("resources") if isinstance(event, dict) else None
            arns = [r for r in resources or () if isinstance(r, str)]
            return rule is None or any(_glob(rule, arn, arn.rsplit("/", 1)[-1]) for arn in arns)

        return self.on("schedule", test)

    def eventbridge(
        self, source: str | None = None, detail_type: str | None = None
    ) -> Callable[[Target], Target]:
        def test(event: Any, route: str) -> bool:
            if not isinstance(event, dict):
                return False
            return _glob(source, str(event.get("source", ""))) and _glob(
                detail_type, str(event.get("detail-type", ""))
            )

        return self.on("eventbridge", test)

    def direct(self, value: str | None = None) -> Callable[[Target], Target]:
        """A direct invoke by the value of its route key (`WORKER_ROUTE_KEY`, `action`)."""
        return self.on("direct", lambda event, route: _glob(value, route))

    def default(self, target: Target) -> Target:
        self._default = target
        self._add(target)
        return target

    # -- dispatch ----------------------------------------------------------------------

    @property
    def is_async(self) -> bool:
        """True when any target is a coroutine function (the pool then keeps the loop free)."""
        return any(self._async.values())

    def resolve(self, event: Any, context: Any, kind: str | None, route: str) -> Resolved:
        """The target for this event and whether it is async; sets `context.params`."""
        if kind is None:  # called outside the runtime: classify here
            kind, route = classify.kind_route(orjson.dumps(event))
            _annotate(context, kind=kind, route=route)
        if kind in HTTP_KINDS and self._http:
            found = self._match_http(kind, event, context)
            if found is not None:
                return found, self._async[id(found)]
        for candidate in self._routes.get(kind, ()):
            if candidate.test(event, route):
                return candidate.target, self._async[id(candidate.target)]
        if self._default is not None:
            return self._default, self._async[id(self._default)]
        if kind in HTTP_KINDS:
            return self._not_found(kind, event), False
        raise LambdaError(
            "Router.RouteNotFound", f"No route for this {kind} event (route {route!r})"
        )

    def _match_http(self, kind: str, event: Any, context: Any) -> Target | None:
        method, path = http_request(kind, event)
        for candidate in self._http:
            if candidate.method not in ("*", method):
                continue
            params = candidate.match(path)
            if params is not None and candidate.target is not None:
                _annotate(context, params=params)
                return candidate.target
        return None

    def _not_found(self, kind: str, event: Any) -> Target:
        method, path = http_request(kind, event)
        allowed = sorted(
            {r.method for r in self._http if r.method != "*" and r.match(path) is not None}
        )
        status, message = (405, "Method Not Allowed") if allowed else (404, "Not Found")
        headers = {"content-type": "application/json"}
        if allowed:
            headers["allow"] = ", ".join(allowed)
        body = orjson.dumps({"message": message, "method": method, "path": path}).decode()
        response = {"statusCode": status, "headers": headers, "body": body}
        return lambda event, context: response

    def __call__(self, event: Any, context: Any) -> Any:
        """Direct use (tests, another runtime client): classify, dispatch, run."""
        target, is_async = self.resolve(
            event, context, getattr(context, "kind", None), getattr(context, "route", "")
        )
        if not is_async:
            return target(event, context)
        coro = target(event, context)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coro)
        return coro  # inside a loop: the caller awaits it


def _annotate(context: Any, **attrs: Any) -> None:
    for name, value in attrs.items():
        # A foreign context object may lack the slot: the target then reads the event.
        with contextlib.suppress(AttributeError):
            setattr(context, name, value)
