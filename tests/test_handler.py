from __future__ import annotations

from pathlib import Path

import pytest

from worker.errors import LambdaError
from worker.handler import Handler, load, split_spec
from worker.sources.asgi import AsgiApp
from worker.sources.wsgi import WsgiApp

ROOT = str(Path(__file__).resolve().parent.parent)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("mod.fn", ("mod", "fn")),
        ("pkg.mod.fn", ("pkg.mod", "fn")),
        ("path/to/mod.fn", ("path.to.mod", "fn")),
        ("pkg.mod:obj.method", ("pkg.mod", "obj.method")),
    ],
)
def test_split_spec(spec: str, expected: tuple[str, str]) -> None:
    assert split_spec(spec) == expected


def test_async_and_sync_handlers_are_told_apart() -> None:
    assert load("tests.apps.basic.echo", ROOT).is_async
    assert not load("tests.apps.basic.sync_echo", ROOT).is_async
    assert load("tests.apps.basic:echo", ROOT).is_async


def test_path_form_loads_from_a_directory() -> None:
    h = load("tests/apps/nested/deeper/mod.handler", ROOT)
    assert h.fn({}, None) == "nested"


def test_an_absolute_path_loads_from_its_directory() -> None:
    h = load(f"{ROOT}/tests/apps/nested/deeper/mod.handler", "/nonexistent")
    assert h.fn({}, None) == "nested"


@pytest.mark.parametrize("spec", ["../etc/passwd.x", "a//b.fn", ".mod.fn", "pkg..mod.fn"])
def test_a_name_that_is_no_module_path_is_malformed(spec: str) -> None:
    with pytest.raises(LambdaError) as info:
        load(spec, ROOT)
    assert info.value.error_type == "Runtime.MalformedHandlerName"
    assert f"Bad handler '{spec}'" in info.value.message


@pytest.mark.parametrize(
    ("spec", "error_type", "text"),
    [
        ("nohandler", "Runtime.MalformedHandlerName", "Bad handler 'nohandler'"),
        ("no_such_module_xyz.handler", "Runtime.ImportModuleError", "Unable to import module"),
        ("tests.apps.basic.missing", "Runtime.HandlerNotFound", "Handler 'missing' missing"),
        ("tests.apps.broken_syntax.handler", "Runtime.UserCodeSyntaxError", "Syntax error"),
        ("tests.apps.raises_on_import.handler", "RuntimeError", "cannot start"),
        ("tests.apps.basic._lock", "Runtime.HandlerNotFound", "missing on module"),
    ],
)
def test_load_errors_have_lambda_types(spec: str, error_type: str, text: str) -> None:
    with pytest.raises(LambdaError) as info:
        load(spec, ROOT)
    assert info.value.error_type == error_type
    assert text in info.value.message
    body = info.value.body()
    assert set(body) == {"errorMessage", "errorType", "stackTrace"}


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("tests.apps.asgi_apps:app", "asgi"),  # FastAPI
        ("tests.apps.asgi_apps:starlette_app", "asgi"),
        ("tests.apps.asgi_apps:raw_scope", "asgi"),  # async def app(scope, receive, send)
        ("tests.apps.asgi_apps:class_app", "asgi"),  # an object with an async __call__
        ("tests.apps.wsgi_apps:flask_app", "wsgi"),
        ("tests.apps.wsgi_apps:closing", "wsgi"),  # def app(environ, start_response)
        ("tests.apps.wsgi_apps:environ_named", "wsgi"),
        ("tests.apps.asgi_apps:mangum_handler", None),  # Mangum is a Lambda handler
        ("tests.apps.asgi_apps:async_handler_object", None),
        ("tests.apps.asgi_apps:three_with_default", None),
        ("tests.apps.basic.echo", None),
        ("tests.apps.basic.sync_echo", None),
    ],
)
def test_web_apps_are_told_from_lambda_handlers(spec: str, kind: str | None) -> None:
    handler = load(spec, ROOT)
    assert handler.app_kind == kind
    if kind is None:
        assert handler.app is None
    else:
        assert handler.app is not None and handler.fn is not handler.app


def test_an_asgi_app_is_an_async_handler_and_a_wsgi_app_a_sync_one() -> None:
    asgi = load("tests.apps.asgi_apps:app", ROOT)
    wsgi = load("tests.apps.wsgi_apps:flask_app", ROOT)
    assert isinstance(asgi.fn, AsgiApp) and asgi.is_async
    assert isinstance(wsgi.fn, WsgiApp) and not wsgi.is_async


async def test_an_async_generator_function_is_an_async_handler_returning_its_generator() -> None:
    handler = load("tests.apps.streaming_apps.plain", ROOT)
    assert handler.is_async and handler.app_kind is None
    items = await handler.fn({}, None)
    assert [item async for item in items] == [b"\x00\x01", "text"]


@pytest.mark.parametrize(
    ("spec", "framework"),
    [
        ("tests.apps.sync_asyncio.mangum", True),  # FastAPI behind Mangum
        ("tests.apps.asgi_apps:app", True),
        ("tests.apps.basic.echo", False),
        ("tests.apps.basic.sync_echo", False),
    ],
)
def test_handlers_that_run_a_web_framework_are_known(spec: str, framework: bool) -> None:
    assert load(spec, ROOT).runs_a_framework is framework


def test_an_apig_wsgi_handler_runs_a_framework() -> None:
    from apig_wsgi import make_lambda_handler
    from flask import Flask

    handler = Handler(spec="x", fn=make_lambda_handler(Flask("x")), is_async=False)
    assert handler.runs_a_framework
