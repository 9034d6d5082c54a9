"""WSGI apps the tests serve natively: a Flask app and raw WSGI callables."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, jsonify, make_response, request

flask_app = Flask(__name__)


@flask_app.get("/hello/<int:n>")
def hello(n: int) -> Any:
    return jsonify(n=n, args=request.args.to_dict(flat=False), path=request.path)


@flask_app.post("/form")
def form() -> Any:
    return jsonify(form=request.form.to_dict(flat=False), length=request.content_length)


@flask_app.post("/json")
def json_body() -> Any:
    return jsonify(got=request.get_json())


@flask_app.get("/cookies")
def cookies() -> Any:
    response = make_response(jsonify(received=dict(request.cookies)))
    response.set_cookie("first", "1")
    response.set_cookie("second", "2", httponly=True)
    return response


@flask_app.get("/headers")
def headers() -> Any:
    response = make_response(
        jsonify(accept=request.headers.get("X-Many"), host=request.host, remote=request.remote_addr)
    )
    response.headers.add("X-Twice", "a")
    response.headers.add("X-Twice", "b")
    return response


@flask_app.get("/boom")
def boom() -> Any:
    raise ValueError("flask failed")


StartResponse = Callable[..., Callable[[bytes], object]]


class _Body:
    """A body iterable whose close() the server must call (PEP 3333)."""

    closed = 0

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.parts)

    def close(self) -> None:
        _Body.closed += 1


def closing(environ: dict[str, Any], start_response: StartResponse) -> _Body:
    write = start_response("201 Created", [("Content-Type", "text/plain"), ("X-A", "1")])
    write(b"written ")  # the legacy write(): before the iterable's data
    return _Body([b"iterated", b"", b" body"])


def recovers(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    """Starts a response, fails, and replaces it with an error page (exc_info)."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise KeyError("oops")
    except KeyError:
        import sys

        start_response("503 Service Unavailable", [("Retry-After", "5")], sys.exc_info())
    return [b"try later"]


def no_start(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    return [b"forgot start_response"]


def environ_named(env: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    """A WSGI function whose first parameter has another name: `start_response` decides."""
    start_response("200 OK", [])
    return [b"ok"]
