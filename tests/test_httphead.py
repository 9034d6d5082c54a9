"""The compiled fast path reads a request or response exactly as httptools does, or leaves
it to httptools."""

from __future__ import annotations

import contextlib
import random
from typing import Any

import httptools
import pytest

httphead = pytest.importorskip("worker._httphead")

LIMITS = (8192, 100, 1 << 20)  # max_head, max_headers, max_body


class _Reading:
    """httptools' reading of each message in some bytes, as our readers collect it."""

    def __init__(self, response: bool) -> None:
        self.response = response
        kind = httptools.HttpResponseParser if response else httptools.HttpRequestParser
        self.parser = kind(self)
        self.messages: list[tuple[Any, ...]] = []

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        parser = self.parser
        keep_alive = parser.should_keep_alive()
        if self.response:
            status = parser.get_status_code()
            self.messages.append((status, self.headers, self.body, keep_alive))
        else:
            method = parser.get_method()
            self.messages.append((method, self.url, self.headers, self.body, keep_alive))


def reference(data: bytes, response: bool = False) -> list[tuple[Any, ...]]:
    """Each whole message httptools reads from `data` before it ends or httptools refuses
    what follows: (method, target, headers, body, keep_alive) of a request, (status,
    headers, body, keep_alive) of a response."""
    reading = _Reading(response)
    with contextlib.suppress(httptools.HttpParserError):
        reading.parser.feed_data(data)
    return reading.messages


FOLLOW = b"GET /next HTTP/1.1\r\nhost: b\r\n\r\n"


def agrees(data: bytes, *limits: int) -> bool:
    """Assert the fast path's reading of `data` is httptools' or none; True if it read it."""
    got = httphead.scan(data, 0, *(limits or LIMITS))
    if got is None:
        return False
    method, target, headers, body, end = got
    # The same request, and it ends where httptools ends it: what follows is the next one.
    requests = reference(data[:end] + FOLLOW)
    assert requests[0] == (method, target, headers, body, True), data
    assert len(requests) == 2 and requests[1][1] == b"/next", data
    return True


PLAIN = (
    b"POST /2015-03-31/functions/fn/invocations HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
    b'Content-Type: application/json\r\nContent-Length: 11\r\n\r\n{"a": true}'
)


def test_a_plain_request_is_read_whole() -> None:
    method, target, headers, body, end = httphead.scan(PLAIN + b"GET", 0, *LIMITS)
    assert (method, target, body, end) == (
        b"POST",
        b"/2015-03-31/functions/fn/invocations",
        b'{"a": true}',
        len(PLAIN),
    )
    assert headers == [
        (b"host", b"127.0.0.1:8080"),
        (b"content-type", b"application/json"),
        (b"content-length", b"11"),
    ]
    assert agrees(PLAIN)


def test_a_request_is_read_from_where_it_starts() -> None:
    data = PLAIN + b"GET /b?x=1 HTTP/1.1\r\nx-a: 1\r\n\r\n"
    end = httphead.scan(data, 0, *LIMITS)[4]
    assert httphead.scan(data, end, *LIMITS) == (
        b"GET",
        b"/b?x=1",
        [(b"x-a", b"1")],
        b"",
        len(data),
    )
    assert httphead.scan(data, len(data), *LIMITS) is None


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"DELETE /a/b HTTP/1.1\r\n\r\n",
        b"OPTIONS /* HTTP/1.1\r\nX-Empty:\r\n\r\n",
        b"PATCH /p HTTP/1.1\r\nX-Blanks: \t v a l \t\r\ncontent-length: 2\r\n\r\nhi",
        b"PUT /p HTTP/1.1\r\nConnection: Keep-Alive\r\nCONTENT-LENGTH: 007\r\n\r\n1234567",
        b"HEAD /h HTTP/1.1\r\nx-amz-invocation-type: Event\r\n\r\n",
        b"GET /%7Euser?q=a+b&r=%20 HTTP/1.1\r\nAccept: */*\r\n\r\n",
    ],
)
def test_what_it_reads_httptools_reads_the_same(data: bytes) -> None:
    assert agrees(data)


@pytest.mark.parametrize(
    "data",
    [
        PLAIN[:-1],  # the body is not all here
        PLAIN[:40],  # nor the head
        b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\nhi",
        b"GET / HTTP/1.1\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
        b"GET / HTTP/1.1\r\nconnection: close\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET http://example.com/ HTTP/1.1\r\n\r\n",
        b"BREW /pot HTTP/1.1\r\n\r\n",
        b"get / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 1\r\n\r\nx",
        b"GET / HTTP/1.1\r\ncontent-length: +1\r\n\r\nx",
        b"GET / HTTP/1.1\r\ncontent-length: 1 \r\n\r\nx",
        b"GET / HTTP/1.1\r\nx-a : v\r\n\r\n",
        b"GET / HTTP/1.1\r\nx-a: caf\xc3\xa9\r\n\r\n",
        b"GET / HTTP/1.1\nx-a: v\n\n",
        b"GET / HTTP/1.1\r\n folded: v\r\n\r\n",
        b"GET /a\x00b HTTP/1.1\r\n\r\n",
    ],
)
def test_anything_but_a_whole_plain_request_is_left_to_httptools(data: bytes) -> None:
    assert httphead.scan(data, 0, *LIMITS) is None


def test_limits_leave_the_request_to_httptools_which_refuses_it() -> None:
    many = b"GET / HTTP/1.1\r\n" + b"".join(b"x-%d: v\r\n" % i for i in range(11)) + b"\r\n"
    assert httphead.scan(many, 0, 8192, 10, 100) is None
    assert httphead.scan(many, 0, 8192, 11, 100) is not None
    # Counted as the front counts (the target, and each name and value plus 4), which can
    # be more than the bytes themselves: 118 bytes here, counted 121.
    head = b"GET / HTTP/1.1\r\n" + b"a:b\r\n" * 20 + b"\r\n"
    assert httphead.scan(head, 0, 121, 100, 100) is not None
    assert httphead.scan(head, 0, 120, 100, 100) is None
    body = b"POST / HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello"
    assert httphead.scan(body, 0, 8192, 10, 5) is not None
    assert httphead.scan(body, 0, 8192, 10, 4) is None


_NAMES = [b"Host", b"content-type", b"X-Amz-Invocation-Type", b"x-a", b"Accept", b"X_B", b"x!#$"]
_VALUES = [b"", b"v", b" v", b"v ", b"\tv\t", b"a, b", b"application/json", b"*/*", b"\x7f"]


def _request(rng: random.Random) -> bytes:
    method = rng.choice([b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"PATCH", b"OPTIONS"])
    target = rng.choice([b"/", b"/a/b", b"/2015-03-31/functions/f/invocations", b"/q?x=1&y=%20"])
    lines = [method + b" " + target + b" " + rng.choice([b"HTTP/1.1"] * 8 + [b"HTTP/1.0"])]
    for _ in range(rng.randint(0, 6)):
        name = rng.choice(_NAMES)
        if rng.random() < 0.3:
            name = name.upper()
        lines.append(name + b":" + rng.choice([b"", b" ", b"  "]) + rng.choice(_VALUES))
    body = bytes(rng.randrange(32, 127) for _ in range(rng.randint(0, 20)))
    if body or rng.random() < 0.3:
        length = len(body) + rng.choice([0, 0, 0, -1, 1])
        lines.append(b"Content-Length: %d" % max(length, 0))
    if rng.random() < 0.2:
        lines.append(b"Connection: " + rng.choice([b"keep-alive", b"close", b"Keep-Alive"]))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def test_generated_requests_are_read_as_httptools_reads_them() -> None:
    rng = random.Random(7)
    read = 0
    for _ in range(3000):
        read += agrees(_request(rng))
    assert read > 1000  # most generated requests are plain: the fast path took them


def _mutated(rng: random.Random, message: bytes, replace: float, delete: float) -> bytes:
    """`message` after 1 to 3 random edits, each by one draw: a byte replaced (below
    `replace`), a byte deleted (below `delete`), else a separator inserted."""
    data = bytearray(message)
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(data))
        action = rng.random()
        if action < replace:
            data[at] = rng.randrange(256)
        elif action < delete:
            del data[at]
        else:
            data.insert(at, rng.choice(b" \t\r\n:/"))
    return bytes(data)


def test_mutated_and_cut_requests_are_read_as_httptools_reads_them_or_not_at_all() -> None:
    rng = random.Random(11)
    for _ in range(3000):
        data = _mutated(rng, _request(rng), 0.4, 0.7)
        agrees(data[: rng.randint(0, len(data))])
        agrees(data)


FOLLOW_RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nnext"


def response_agrees(data: bytes) -> bool:
    got = httphead.scan_response(data, 0, 1 << 20)
    if got is None:
        return False
    status, headers, body, end = got
    responses = reference(data[:end] + FOLLOW_RESPONSE, response=True)
    assert responses[0] == (status, headers, body, True), data
    assert len(responses) == 2 and responses[1][2] == b"next", data
    return True


def _response(rng: random.Random) -> bytes:
    status = rng.choice(
        [b"200 OK", b"202 Accepted", b"404 Not Found", b"500 X", b"204 No", b"200 "]
    )
    lines = [rng.choice([b"HTTP/1.1 "] * 8 + [b"HTTP/1.0 "]) + status]
    for _ in range(rng.randint(0, 6)):
        name = rng.choice(
            [*_NAMES, b"Lambda-Runtime-Aws-Request-Id", b"Lambda-Runtime-Deadline-Ms"]
        )
        lines.append(name + b":" + rng.choice([b"", b" "]) + rng.choice(_VALUES))
    body = bytes(rng.randrange(32, 127) for _ in range(rng.randint(0, 20)))
    if rng.random() < 0.9:
        lines.append(b"Content-Length: %d" % max(len(body) + rng.choice([0, 0, 0, -1, 1]), 0))
    if rng.random() < 0.2:
        lines.append(b"Connection: " + rng.choice([b"keep-alive", b"close"]))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def test_generated_responses_are_read_as_httptools_reads_them() -> None:
    rng = random.Random(13)
    read = sum(response_agrees(_response(rng)) for _ in range(3000))
    assert read > 1000


def test_mutated_and_cut_responses_are_read_as_httptools_reads_them_or_not_at_all() -> None:
    rng = random.Random(17)
    for _ in range(3000):
        data = _mutated(rng, _response(rng), 0.5, 1.0)  # replaced or deleted bytes only
        response_agrees(data[: rng.randint(0, len(data))])
        response_agrees(data)


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\nruns to the end",  # no length: read until close
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nab",
    ],
)
def test_responses_that_are_not_plain_or_whole_are_left_to_httptools(data: bytes) -> None:
    assert httphead.scan_response(data, 0, 1 << 20) is None
