"""The WSGI bridge: PEP 3333 environs, start_response, and a Flask app served natively."""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import types
from typing import Any

import orjson
import pytest

from tests.apps import wsgi_apps
from tests.client import encode, read_answer, request
from worker import httpmsg
from worker.httpmsg import HttpRequest
from worker.sources.wsgi import WsgiApp, environ_of, run_wsgi


def _request(path: str = "/", body: bytes = b"", **fields: Any) -> HttpRequest:
    return HttpRequest(
        fields.pop("method", "GET"),
        path,
        fields.pop("raw_path", path.encode()),
        fields.pop("query_string", b""),
        fields.pop("headers", []),
        body,
        **fields,
    )


# -- environ -----------------------------------------------------------------------------------


def test_the_environ_follows_pep_3333() -> None:
    req = _request(
        "/app/caf\u00e9 x",
        b"a=1",
        method="POST",
        raw_path=b"/app/caf%C3%A9%20x",
        query_string=b"q=1&q=2",
        headers=[
            (b"host", b"example.com:8443"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", b"3"),
            (b"x-many", b"1"),
            (b"x-many", b"2"),
            (b"cookie", b"a=1"),
            (b"cookie", b"b=2"),
            (b"x_sneaky", b"dropped"),
        ],
        client=("10.1.2.3", 4567),
        server=("127.0.0.1", 8080),
        scheme="https",
        root_path="/app",
    )
    environ = environ_of(req)
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["SCRIPT_NAME"] == "/app"
    # The decoded path's bytes as latin-1 characters: frameworks re-encode it.
    assert environ["PATH_INFO"] == "/caf\u00c3\u00a9 x"
    assert environ["QUERY_STRING"] == "q=1&q=2"
    assert environ["SERVER_NAME"] == "example.com" and environ["SERVER_PORT"] == "8443"
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["REMOTE_ADDR"] == "10.1.2.3" and environ["REMOTE_PORT"] == "4567"
    assert environ["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert environ["CONTENT_LENGTH"] == "3"
    assert environ["HTTP_X_MANY"] == "1,2"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert "HTTP_X_SNEAKY" not in environ and "HTTP_CONTENT_TYPE" not in environ
    assert environ["wsgi.version"] == (1, 0) and environ["wsgi.url_scheme"] == "https"
    assert environ["wsgi.input"].read() == b"a=1"
    assert environ["wsgi.errors"] is sys.stderr
    assert environ["wsgi.multithread"] and environ["wsgi.multiprocess"]
    assert not environ["wsgi.run_once"]


@pytest.mark.parametrize(
    ("host", "server", "expected"),
    [
        (b"example.com", None, ("example.com", "80")),
        (b"[::1]:9000", None, ("[::1]", "9000")),
        (b"[::1]", None, ("[::1]", "80")),
        (None, ("10.0.0.5", 8080), ("10.0.0.5", "8080")),
        (None, None, ("localhost", "80")),
    ],
)
def test_server_name_and_port_come_from_host_else_the_server(
    host: bytes | None, server: tuple[str, int] | None, expected: tuple[str, str]
) -> None:
    headers = [(b"host", host)] if host else []
    environ = environ_of(_request(headers=headers, server=server))
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == expected


# -- start_response and the body ---------------------------------------------------------------


def test_write_comes_before_the_iterable_and_close_is_called() -> None:
    closed = wsgi_apps._Body.closed
    answer = run_wsgi(wsgi_apps.closing, _request())
    assert answer.status == 201
    assert answer.headers == [(b"content-type", b"text/plain"), (b"x-a", b"1")]
    assert answer.body == b"written iterated body"
    assert wsgi_apps._Body.closed == closed + 1


def test_start_response_with_exc_info_replaces_the_head() -> None:
    answer = run_wsgi(wsgi_apps.recovers, _request())
    assert answer.status == 503 and answer.headers == [(b"retry-after", b"5")]
    assert answer.body == b"try later"


def test_an_app_exception_is_a_500_and_one_error_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        answer = run_wsgi(wsgi_apps.no_start, _request())
    assert answer.status == 500 and answer.body == b"Internal Server Error"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].getMessage() == "Exception in WSGI application"


def test_a_dict_event_goes_to_the_lambda_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = types.ModuleType("tests_fake_adapter")
    adapter.handle_wsgi = lambda app, event, context: (app, event, context)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tests_fake_adapter", adapter)
    monkeypatch.setattr(httpmsg, "ADAPTER", "tests_fake_adapter")
    event = {"httpMethod": "GET"}
    assert WsgiApp(wsgi_apps.flask_app)(event, "ctx") == (wsgi_apps.flask_app, event, "ctx")


# -- Flask through the front -----------------------------------------------------------------


async def test_flask_reads_the_path_and_repeated_query_parameters(inproc: Any) -> None:
    srv = await inproc("tests.apps.wsgi_apps:flask_app")
    ans = await request(srv.port, "GET", "/hello/7?tag=a&tag=b&x=%20y")
    assert ans.status == 200
    assert ans.json() == {"n": 7, "args": {"tag": ["a", "b"], "x": [" y"]}, "path": "/hello/7"}
    assert ans.headers["x-amzn-requestid"]
    assert (await request(srv.port, "GET", "/missing")).status == 404


async def test_flask_reads_a_form_and_a_json_body(inproc: Any) -> None:
    srv = await inproc("tests.apps.wsgi_apps:flask_app")
    form = b"name=ada&lang=py&lang=c"
    ans = await request(
        srv.port,
        "POST",
        "/form",
        form,
        {"content-type": "application/x-www-form-urlencoded"},
    )
    assert ans.json() == {"form": {"name": ["ada"], "lang": ["py", "c"]}, "length": len(form)}
    ans = await request(
        srv.port, "POST", "/json", {"a": [1, 2]}, {"content-type": "application/json"}
    )
    assert ans.json() == {"got": {"a": [1, 2]}}


async def test_flask_cookies_both_ways(inproc: Any) -> None:
    srv = await inproc("tests.apps.wsgi_apps:flask_app")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(encode("GET", "/cookies", headers={"cookie": "one=1; two=2"}))
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode().split("\r\n")
    cookies = [line for line in lines if line.lower().startswith("set-cookie:")]
    assert len(cookies) == 2
    assert cookies[0].startswith("set-cookie: first=1;")
    assert cookies[1].startswith("set-cookie: second=2;") and "HttpOnly" in cookies[1]
    length = next(int(line.split(":")[1]) for line in lines if line.startswith("content-length"))
    body = await reader.readexactly(length)
    assert body == b'{"received":{"one":"1","two":"2"}}\n'
    writer.close()


async def test_flask_repeated_headers_both_ways(inproc: Any) -> None:
    srv = await inproc("tests.apps.wsgi_apps:flask_app")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"GET /headers HTTP/1.1\r\nhost: app.test:8000\r\nx-many: a\r\nx-many: b\r\n\r\n")
    raw = await reader.readuntil(b"\r\n\r\n")
    assert raw.count(b"\r\nx-twice: ") == 2
    length = int(raw.split(b"content-length: ")[1].split(b"\r\n")[0])
    body = await reader.readexactly(length)
    assert orjson.loads(body) == {"accept": "a,b", "host": "app.test:8000", "remote": "127.0.0.1"}
    writer.close()


async def test_a_flask_exception_is_a_500_with_the_request_id(inproc: Any) -> None:
    srv = await inproc("tests.apps.wsgi_apps:flask_app")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(encode("GET", "/boom") + encode("GET", "/hello/1"))
    ans = await read_answer(reader)
    assert ans.status == 500 and len(ans.headers["x-amzn-requestid"]) == 36
    assert (await read_answer(reader)).status == 200  # the connection serves on
    writer.close()


async def test_head_to_flask_keeps_the_length_and_sends_no_body(inproc: Any) -> None:
    srv = await inproc("tests.apps.wsgi_apps:flask_app")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(encode("HEAD", "/hello/3") + encode("GET", "/hello/3"))
    head = await read_answer(reader, head=True)
    got = await read_answer(reader)
    assert head.status == 200 and head.body == b""
    assert head.headers["content-length"] == str(len(got.body))
    writer.close()


def test_the_input_is_a_fresh_stream_per_request() -> None:
    first = environ_of(_request(body=b"one"))["wsgi.input"]
    second = environ_of(_request(body=b"two"))["wsgi.input"]
    assert isinstance(first, io.BytesIO) and first is not second
    assert second.read() == b"two"
