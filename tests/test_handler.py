from __future__ import annotations

from pathlib import Path

import pytest

from worker.errors import LambdaError
from worker.handler import load, split_spec

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


@pytest.mark.parametrize(
    ("spec", "error_type", "text"),
    [
        ("nohandler", "Runtime.MalformedHandlerName", "Bad handler 'nohandler'"),
        ("no_such_module_xyz.handler", "Runtime.ImportModuleError", "Unable to import module"),
        ("tests.apps.basic.missing", "Runtime.HandlerNotFound", "Handler 'missing' missing"),
        ("tests.apps.broken_syntax.handler", "Runtime.UserCodeSyntaxError", "Syntax error"),
        ("tests.apps.raises_on_import.handler", "RuntimeError", "Unable to import module"),
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
