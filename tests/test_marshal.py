from __future__ import annotations

import decimal

import orjson
import pytest

from worker.errors import LambdaError
from worker.marshal import dumps, loads


def test_dumps_what_the_official_client_accepts() -> None:
    assert orjson.loads(dumps({"a": decimal.Decimal("1.5"), "b": decimal.Decimal("2")})) == {
        "a": 1.5,
        "b": 2,
    }
    assert orjson.loads(dumps({1: "int key"})) == {"1": "int key"}
    assert dumps(10**30) == b"1000000000000000000000000000000"


def test_unserialisable_is_a_marshal_error() -> None:
    with pytest.raises(LambdaError) as info:
        dumps({"x": object()})
    assert info.value.error_type == "Runtime.MarshalError"


def test_loads_empty_is_an_empty_event() -> None:
    assert loads(b"") == {} and loads(b"  ") == {}
    with pytest.raises(orjson.JSONDecodeError):
        loads(b"{nope")
