"""What an event is and where it is going, read from its raw bytes before any parse.

`classify(raw)` returns the event's kind (`sqs`, `apigw-http`, `eventbridge`, … or
`direct`) and a route key (HTTP method and path or `routeKey`; the source ARN of the first
record; the bucket; EventBridge source and detail-type; for a direct invoke, the value of a
configurable top-level key; for a warm-up ping, kind `warmup` and the warmer's name). Only
the fields that decide are located (`worker.scan`); no value is parsed. Key order and
whitespace do not matter, and what is not recognised is `direct`, never a wrong specific
kind.

With the compiled `worker._classify` (from `ext/classify.pyx`) built, the whole classification
runs in C; without it, these same rules run here on the pure-Python twin scanner
`worker.scan`. The extension repeats the rules branch for branch (a Python-level rule costs
more than the whole scan), and tests hold the two to the same answers on the corpus and
on generated, mutated and random input.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, NamedTuple

#: The kind of a warm-up ping (serverless-plugin-warmup's, lambda-warmer's, or ours): the
#: runtime answers it itself (`worker.pool`), and its route names which of the three it is.
WARMUP = "warmup"


class Classification(NamedTuple):
    kind: str
    route: str


def _scanner() -> tuple[ModuleType, str]:
    try:
        from worker import _classify as _scan

        return _scan, "extension"
    except ImportError:
        from worker import scan

        return scan, "python"


_TOP = frozenset(
    (
        b"version", b"routeKey", b"rawPath", b"resource", b"httpMethod", b"path",
        b"requestContext", b"Records", b"records", b"eventSource", b"eventSourceArn",
        b"bootstrapServers", b"source", b"detail-type", b"detail", b"awslogs",
        b"triggerSource", b"userPoolId", b"RequestType", b"ResponseURL", b"StackId", b"type",
        b"methodArn", b"routeArn", b"authorizationToken", b"deliveryStreamArn", b"invocationId",
        b"applicationArn", b"warmer", b"worker",
    )
)  # fmt: skip
_CONTEXT = frozenset((b"elb", b"http", b"domainName"))
_HTTP = frozenset((b"method", b"path"))
_RECORD = frozenset((b"eventSource", b"EventSource", b"eventSourceARN", b"cf", b"Sns", b"s3"))
_SNS = frozenset((b"TopicArn",))
_S3 = frozenset((b"bucket",))
_NAME = frozenset((b"name",))
_CF = frozenset((b"request",))
_CF_REQUEST = frozenset((b"method", b"uri"))
_AWSLOGS = frozenset((b"data",))

Span = tuple[int, int]


class Classifier:
    """Classifies raw events with one scanner; `route_key` names the direct-invoke route."""

    def __init__(self, scanner: ModuleType | None = None, route_key: str = "action") -> None:
        self.scanner, self.backend = (scanner, scanner.__name__) if scanner else _scanner()
        self.route_key = route_key.encode()
        self._top = _TOP | {self.route_key}
        # The extension runs these same rules in C (ext/classify.pyx); the twin runs them here.
        compiled = getattr(self.scanner, "Compiled", None)
        self.compiled = compiled(self.route_key, Classification) if compiled else None
        if self.compiled is not None:
            # Every request is classified: call the extension itself, not this wrapper.
            self.kind_route = self.compiled.kind_route  # type: ignore[method-assign]

    def __call__(self, raw: bytes) -> Classification:
        if self.compiled is not None:
            result: Classification = self.compiled(raw)
            return result
        return Classification(*self._rules(raw if type(raw) is bytes else bytes(raw)))

    def kind_route(self, raw: bytes) -> tuple[str, str]:
        """The same answer as a plain tuple: the hot path's form (no named tuple)."""
        if self.compiled is not None:
            pair: tuple[str, str] = self.compiled.kind_route(raw)
            return pair
        return self._rules(raw if type(raw) is bytes else bytes(raw))

    def _rules(self, buf: bytes) -> tuple[str, str]:
        # The Records rule comes first, so it is decided when the first `Records` key is
        # read, on the array's first element alone (the compiled pass stops there too).
        scanner, n = self.scanner, len(buf)
        at = scanner.value_start(buf, 0, n, b"Records")
        first = scanner.array_start(buf, at, n) if at >= 0 else -1
        if first >= 0:
            # The record's fields are read up to its closing brace, wherever that is.
            decided = self._records(buf, (first, n))
            if decided is not None:
                return decided
        top: dict[bytes, Span] = self.scanner.fields(buf, 0, len(buf), self._top)
        if not top:
            return "direct", ""

        def text(span: Span | None) -> bytes | None:
            return _text(buf, span)

        def inner(span: Span | None, wanted: frozenset[bytes]) -> dict[bytes, Span]:
            return _inner(self.scanner, buf, span, wanted)

        def get(key: bytes) -> bytes | None:
            return text(top.get(key))

        # Always there: the invocation id and the records (AWS's sample events have no
        # deliveryStreamArn); Kinesis Data Analytics' events, which also have both, name
        # their application.
        if b"records" in top and b"invocationId" in top and b"applicationArn" not in top:
            return _result("firehose", get(b"deliveryStreamArn"))
        event_source = get(b"eventSource")
        if event_source == b"aws:kafka":
            return _result("kafka", get(b"eventSourceArn"))
        if event_source == b"SelfManagedKafka":
            return _result("kafka", get(b"bootstrapServers"))
        if event_source in (b"aws:mq", b"aws:rmq"):
            return _result("mq", get(b"eventSourceArn"))
        if b"data" in inner(top.get(b"awslogs"), _AWSLOGS):
            return _result("cloudwatch-logs", b"")
        version = get(b"version")
        # Sample scheduled events from AWS's tooling have no `version`; one that is not
        # "0" is not EventBridge's.
        if (version == b"0" or b"version" not in top) and b"detail" in top:
            source_name, detail_type = get(b"source"), get(b"detail-type")
            if source_name is not None and detail_type is not None:
                scheduled = source_name == b"aws.events" and detail_type == b"Scheduled Event"
                return _result(
                    "schedule" if scheduled else "eventbridge", _join(source_name, detail_type)
                )
        if b"triggerSource" in top and b"userPoolId" in top:
            return _result("cognito", get(b"triggerSource"))
        if b"RequestType" in top and b"ResponseURL" in top and b"StackId" in top:
            return _result("cfn-custom-resource", get(b"RequestType"))
        kind = get(b"type")
        if kind == b"TOKEN" and b"authorizationToken" in top and b"methodArn" in top:
            return _result("apigw-authorizer", get(b"methodArn"))
        if kind == b"REQUEST" and (b"methodArn" in top or b"routeArn" in top):
            return _result("apigw-authorizer", get(b"methodArn") or get(b"routeArn"))
        if b"requestContext" in top:
            context = inner(top[b"requestContext"], _CONTEXT)
            if (
                version == b"2.0"
                and b"routeKey" in top
                and b"rawPath" in top
                and b"http" in context
            ):
                http = inner(context[b"http"], _HTTP)
                method_path = _join(text(http.get(b"method")), get(b"rawPath"))
                domain = text(context.get(b"domainName")) or b""
                if b".lambda-url." in domain and domain.endswith(b".on.aws"):
                    return _result("function-url", method_path)
                route_key = get(b"routeKey")
                return _result(
                    "apigw-http",
                    route_key if route_key and route_key != b"$default" else method_path,
                )
            if b"elb" in context and b"httpMethod" in top:
                return _result("alb", _join(get(b"httpMethod"), get(b"path")))
            if b"httpMethod" in top and b"resource" in top:
                kind_name = "apigw-http-v1" if version == b"1.0" else "apigw-rest"
                return _result(kind_name, _join(get(b"httpMethod"), get(b"resource")))
        # Warm-up pings come last: only what no AWS shape claimed is one (an EventBridge
        # event from a source named so stays EventBridge's).
        if get(b"source") == b"serverless-plugin-warmup":
            return WARMUP, "serverless-plugin-warmup"
        warmer = top.get(b"warmer")
        if warmer is not None and buf[warmer[0] : warmer[1]] == b"true":
            return WARMUP, "lambda-warmer"
        if get(b"worker") == b"warmup":
            return WARMUP, "worker"
        return _result("direct", get(self.route_key))

    def _records(self, buf: bytes, first: Span) -> tuple[str, str] | None:
        """The Records rule on the first record: (kind, route) when it decides."""
        record = _inner(self.scanner, buf, first, _RECORD)
        if _text(buf, record.get(b"EventSource")) == b"aws:sns":
            sns = _inner(self.scanner, buf, record.get(b"Sns"), _SNS)
            return _result("sns", _text(buf, sns.get(b"TopicArn")))
        if b"cf" in record:
            cf = _inner(self.scanner, buf, record[b"cf"], _CF)
            request = _inner(self.scanner, buf, cf.get(b"request"), _CF_REQUEST)
            method, uri = _text(buf, request.get(b"method")), _text(buf, request.get(b"uri"))
            return _result("lambda-edge", _join(method, uri))
        source = _text(buf, record.get(b"eventSource"))
        arn = _text(buf, record.get(b"eventSourceARN"))
        if source == b"aws:sqs":
            return _result("sqs", arn)
        if source == b"aws:s3":
            s3 = _inner(self.scanner, buf, record.get(b"s3"), _S3)
            bucket = _inner(self.scanner, buf, s3.get(b"bucket"), _NAME)
            return _result("s3", _text(buf, bucket.get(b"name")))
        if source == b"aws:dynamodb":
            return _result("dynamodb", arn)
        if source == b"aws:kinesis":
            return _result("kinesis", arn)
        if source == b"aws:ses":
            return _result("ses", b"")
        return None


def _text(buf: bytes, span: Span | None) -> bytes | None:
    """A string value's raw bytes (escapes left as they are), else None."""
    if span is None or buf[span[0]] != 0x22 or span[1] - span[0] < 2:
        return None
    return buf[span[0] + 1 : span[1] - 1]


def _inner(
    scanner: ModuleType, buf: bytes, span: Span | None, wanted: frozenset[bytes]
) -> dict[bytes, Span]:
    """The wanted keys of the object whose value span is `span` (none when absent)."""
    found: dict[bytes, Span] = {} if span is None else scanner.fields(buf, *span, wanted)
    return found


def _join(first: bytes | None, second: bytes | None) -> bytes:
    return (first or b"") + b" " + (second or b"")


def _result(kind: str, route: bytes | None) -> tuple[str, str]:
    return kind, route.decode("utf-8", "replace") if route else ""


def _process_wide() -> Any:
    """The classifier every source calls: with the extension built, its compiled object
    itself (same rules, same answers as `Classifier()`), so a call runs no Python frame."""
    classifier = Classifier()
    return classifier.compiled or classifier


#: The process-wide classifier: `classify(raw)` and `classify.kind_route(raw)`.
classify = _process_wide()
