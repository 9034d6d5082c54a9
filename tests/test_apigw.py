from __future__ import annotations

import base64

import pytest

from worker.errors import LambdaError
from worker.sources.apigw import build_event, to_response


def event(**kw: object) -> dict:  # type: ignore[type-arg]
    args: dict = dict(  # type: ignore[type-arg]
        method="POST",
        target=b"/a/b?x=1&x=2&y=%20z",
        headers=[
            (b"host", b"api.test"),
            (b"cookie", b"a=1; b=2"),
            (b"x-m", b"1"),
            (b"x-m", b"2"),
            (b"content-type", b"application/json"),
        ],
        body=b'{"k": 1}',
        source_ip="10.0.0.1",
        request_id="rid",
        http_version="1.1",
    )
    args.update(kw)
    return build_event(**args)


def test_http_api_v2_shape() -> None:
    e = event()
    assert e["version"] == "2.0" and e["routeKey"] == "$default"
    assert e["rawPath"] == "/a/b" and e["rawQueryString"] == "x=1&x=2&y=%20z"
    assert e["queryStringParameters"] == {"x": "1,2", "y": " z"}
    assert e["cookies"] == ["a=1", "b=2"]
    assert e["headers"]["x-m"] == "1,2"
    http = e["requestContext"]["http"]
    assert http == {
        "method": "POST",
        "path": "/a/b",
        "protocol": "HTTP/1.1",
        "sourceIp": "10.0.0.1",
        "userAgent": "",
    }
    assert (
        e["requestContext"]["requestId"] == "rid"
        and e["requestContext"]["domainName"] == "api.test"
    )
    assert e["body"] == '{"k": 1}' and e["isBase64Encoded"] is False


def test_binary_body_is_base64() -> None:
    e = event(body=b"\xff\x00", headers=[(b"content-type", b"application/octet-stream")])
    assert e["isBase64Encoded"] is True and base64.b64decode(e["body"]) == b"\xff\x00"
    assert "body" not in event(body=b"")


def test_response_rules() -> None:
    assert to_response({"a": 1}) == (200, [("content-type", "application/json")], b'{"a":1}')
    assert to_response("hi")[2] == b'"hi"'
    status, headers, body = to_response(
        {"statusCode": 302, "headers": {"Location": "/x"}, "cookies": ["c=1"], "body": ""}
    )
    assert status == 302 and ("Location", "/x") in headers and ("set-cookie", "c=1") in headers
    assert body == b""
    with pytest.raises(LambdaError):
        to_response({"statusCode": 99})


def test_query_strings_are_decoded_only_where_they_need_it() -> None:
    e = event(target=b"/q?a+b=c+d&k%3D=v%26w&plain=1&=empty&flag")
    assert e["queryStringParameters"] == {
        "a b": "c d",
        "k=": "v&w",
        "plain": "1",
        "": "empty",
        "flag": "",
    }
