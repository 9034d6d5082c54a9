"""The suite's own comparison: what it normalises, API Gateway's answer for a result, and a
difference always reported."""

from __future__ import annotations

import base64

import orjson

from tests.compat import compare, events
from tests.compat.runtimes import own_line
from tests.compat.wire import Answer


def test_normalise_replaces_per_invocation_values_only() -> None:
    rid = "aad7b090-dd7f-8751-f551-100000000000"
    line = f"[WARNING]\t2026-12-05T15:07:55.708Z\t{rid}\tread item 7 in 12.5 ms, pid=812"
    assert compare.normalise(line, rid) == (
        "[WARNING]\t<time>\t<request-id>\tread item 7 in <duration>, pid=<pid>"
    )
    powertools = '{"timestamp":"2026-12-05 15:07:55,104+0000","level":"INFO"}'
    assert compare.normalise(powertools, None) == '{"timestamp":"<time>","level":"INFO"}'


def test_a_json_line_keeps_its_key_order_and_its_stack_as_frames() -> None:
    line = orjson.dumps(
        {
            "level": "ERROR",
            "_aws": {"Timestamp": 1796483275843},
            "stackTrace": ['  File "/a/b/app.py", line 3, in handler\n    x()\n'],
        }
    ).decode()
    assert compare.log_line(line, None) == (
        '{"level":"ERROR","_aws":{"Timestamp":"<epoch-ms>"},"stackTrace":["app.py:handler"]}'
    )
    spaced = '{"b": 1, "a": "2026-12-05T15:07:55Z"}'
    assert compare.log_line(spaced, None) == '{"b":1,"a":"<time>"}'


def test_http_api_answer_for_a_result() -> None:
    result = {
        "statusCode": 201,
        "headers": {"Content-Type": "image/png", "x-a": "1"},
        "multiValueHeaders": {"x-ignored": ["2.0 has none"]},
        "cookies": ["a=1; Path=/", "b=2"],
        "body": base64.b64encode(b"\x00\xff").decode(),
        "isBase64Encoded": True,
    }
    answer = compare.through_http_api(Answer(200, [], orjson.dumps(result)))
    assert (answer.status, answer.headers, answer.body) == (
        201,
        [
            ("content-type", "image/png"),
            ("x-a", "1"),
            ("set-cookie", "a=1; Path=/"),
            ("set-cookie", "b=2"),
        ],
        b"\x00\xff",
    )
    bare = compare.through_http_api(Answer(200, [], b'{"a": 1}'))
    assert (bare.status, bare.body) == (200, b'{"a": 1}')
    failed = compare.through_http_api(Answer(200, [("x-amz-function-error", "Unhandled")], b"{}"))
    assert failed.status == 502


def test_a_repeated_header_is_one_field() -> None:
    twice = compare.http_view(Answer(200, [("x-a", "1"), ("date", "now"), ("x-a", "2")]), [], None)
    joined = compare.http_view(Answer(200, [("x-a", "1,2")]), [], None)
    assert twice == joined
    assert twice["headers"] == [["x-a", "1,2"]]


def test_any_difference_is_reported() -> None:
    ref = compare.http_view(Answer(200, [("set-cookie", "a=1"), ("set-cookie", "b=2")]), [], None)
    one_cookie = compare.http_view(Answer(200, [("set-cookie", "a=1, b=2")]), [], None)
    assert compare.diff({"x": ref}, {"x": ref}) == ""
    assert '-    "b=2"' in compare.diff({"x": one_cookie}, {"x": ref})


def test_own_lines_are_the_runtimes_loggers_and_lane_metrics_only() -> None:
    assert own_line('{"level":"INFO","message":"serving","logger":"worker.supervisor"}')
    lane = {"_aws": {"CloudWatchMetrics": [{"Dimensions": [["service", "lane"]]}]}, "lane": "x"}
    assert own_line(orjson.dumps(lane).decode())
    assert not own_line('{"level":"INFO","message":"m","logger":"workers"}')
    user = {"_aws": {"CloudWatchMetrics": [{"Dimensions": [["service"]]}]}, "service": "s"}
    assert not own_line(orjson.dumps(user).decode())
    assert not own_line("[INFO]\t2026-12-05T15:07:55.708Z\trid\tworker.supervisor")


def test_events_describe_the_request() -> None:
    request = events.Request(
        "POST",
        "/a/b",
        "x=1&x=2&y=%20",
        headers=(("content-type", "application/octet-stream"),),
        cookies=("c=1", "d=2"),
        body=b"\x00\x01",
    )
    v2 = events.http_api(request)
    assert v2["rawPath"] == "/a/b" and v2["rawQueryString"] == "x=1&x=2&y=%20"
    assert v2["queryStringParameters"] == {"x": "1,2", "y": " "}
    assert v2["cookies"] == ["c=1", "d=2"] and "cookie" not in v2["headers"]
    assert (v2["body"], v2["isBase64Encoded"]) == ("AAE=", True)
    v1 = events.rest_api(request)
    assert v1["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": [" "]}
    assert v1["headers"]["cookie"] == "c=1; d=2"
    assert v1["pathParameters"] == {"proxy": "a/b"}
    elb = events.alb(request)
    assert elb["queryStringParameters"] == {"x": "2", "y": "%20"}
