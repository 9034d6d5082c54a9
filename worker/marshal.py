"""Turning a handler's result into JSON bytes, with Lambda's `Runtime.MarshalError`."""

from __future__ import annotations

import decimal
import json
from typing import Any

import orjson

from worker.errors import LambdaError


def _default(obj: Any) -> Any:
    # DynamoDB hands out Decimals; the official client serialises them too.
    if isinstance(obj, decimal.Decimal):
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """JSON bytes of `value`, or LambdaError("Runtime.MarshalError")."""
    try:
        return orjson.dumps(value, default=_default)
    except TypeError:
        pass  # orjson refuses some things json accepts: non-str keys, huge ints
    try:
        return json.dumps(value, default=_default, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise LambdaError("Runtime.MarshalError", f"Unable to marshal response: {exc}") from None


def loads(raw: bytes) -> Any:
    """The event from request bytes; an empty body is `{}`, as Lambda's emulator has it."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        if not raw.strip():  # looked at only when the parse fails: it rarely does
            return {}
        raise
