"""What the suite compares: answers and log lines with the values that must differ normalised,
the answer API Gateway gives a caller for a function's result, and a readable diff.

Normalised (each to a placeholder that says what it stood for):
- the invocation's request id, wherever it appears (it is per invocation in every runtime);
- timestamps: ISO 8601 (`2026-12-05T15:07:55.104Z`, Powertools' `2026-12-05 15:07:55,104+0000`)
  and EMF's `"Timestamp": <epoch ms>`;
- process ids and durations in `… pid=123`, `"pid": 123`, `… 12.3 ms` forms;
- a stack trace becomes its frames' (file basename, function) pairs: line text and
  directories say nothing about parity, the frames do.
Nothing else is: a key, a level, a message, a header or a byte more or less is a difference.
"""

from __future__ import annotations

import base64
import difflib
import re
from collections.abc import Mapping
from typing import Any

import orjson

from tests.compat.wire import Answer

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?")
_EMF_TIME = re.compile(r'"Timestamp":\s*\d+')
_PID = re.compile(r'("pid":\s*|\bpid[= ])\d+')
_DURATION = re.compile(r"\b\d+(?:\.\d+)?\s?ms\b")
_FRAME = re.compile(r'File "([^"]+)", line \d+, in (\S+)')

#: Headers the HTTP layer owns (API Gateway's and `serve`'s alike): not the function's.
TRANSPORT_HEADERS = frozenset(
    ("date", "content-length", "connection", "transfer-encoding", "x-amzn-requestid")
)


def normalise(text: str, request_id: str | None) -> str:
    if request_id:
        text = text.replace(request_id, "<request-id>")
    text = _EMF_TIME.sub('"Timestamp":<epoch-ms>', text)
    text = _ISO.sub("<time>", text)
    text = _PID.sub(r"\1<pid>", text)
    return _DURATION.sub("<duration>", text)


def frames(stack: object) -> list[str]:
    """A stack trace (awslambdaric's `stackTrace` list, or a text traceback) as
    `basename:function` per frame."""
    text = "\n".join(str(x) for x in stack) if isinstance(stack, list) else str(stack)
    return [f"{path.rsplit('/', 1)[-1]}:{func}" for path, func in _FRAME.findall(text)]


def _value(value: Any, request_id: str | None) -> Any:
    if isinstance(value, str):
        return normalise(value, request_id)
    if isinstance(value, list):
        return [_value(v, request_id) for v in value]
    if isinstance(value, dict):
        return {k: _field(k, v, request_id) for k, v in value.items()}
    return value


def _field(key: str, value: Any, request_id: str | None) -> Any:
    if key == "stackTrace":
        return frames(value)
    if key == "Timestamp" and isinstance(value, int):  # EMF's, in a parsed line
        return "<epoch-ms>"
    return _value(value, request_id)


def log_line(line: str, request_id: str | None) -> str:
    """A log line as compared: a JSON line as its normalised keys and values, in their
    order (re-written compactly: whitespace between tokens is not a difference); any other
    line as normalised text."""
    if line.startswith("{"):
        try:
            parsed = orjson.loads(line)
        except orjson.JSONDecodeError:
            pass
        else:
            if isinstance(parsed, dict):
                return orjson.dumps(_value(parsed, request_id)).decode()
    return normalise(line, request_id)


def invoke_view(answer: Answer, lines: list[str], request_id: str | None) -> dict[str, Any]:
    """What an Invoke API caller sees, and the lines the invocation logged."""
    try:
        body: Any = _value(orjson.loads(answer.body), request_id)
    except orjson.JSONDecodeError:
        body = normalise(answer.body.decode("utf-8", "replace"), request_id)
    return {
        "status": answer.status,
        "x-amz-function-error": answer.header("x-amz-function-error"),
        "body": body,
        "log": [log_line(line, request_id) for line in lines],
    }


def _text(body: bytes) -> str | dict[str, str]:
    try:
        return body.decode()
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(body).decode()}


def http_view(answer: Answer, lines: list[str], request_id: str | None) -> dict[str, Any]:
    """What an HTTP caller sees: status, the function's headers, cookies, body; and the log.

    A header sent several times is one field, its values joined by commas in order
    (RFC 9110 §5.3 makes the two forms equal; API Gateway sends the joined one, a server
    may send either); `set-cookie`, which cannot be joined, stays a list."""
    fields: dict[str, list[str]] = {}
    for name, value in answer.headers:
        if name not in TRANSPORT_HEADERS and name != "set-cookie":
            fields.setdefault(name, []).append(value)
    return {
        "status": answer.status,
        "headers": [[name, ",".join(fields[name])] for name in sorted(fields)],
        "cookies": [v for k, v in answer.headers if k == "set-cookie"],
        "body": _text(answer.body),
        "log": [log_line(line, request_id) for line in lines],
    }


def through_http_api(answer: Answer) -> Answer:
    """The HTTP answer API Gateway's HTTP API (payload 2.0) makes of an Invoke answer.

    A function error is a 502 `{"message":"Internal Server Error"}`. A result with
    `statusCode` gives that status, its `headers`, one `set-cookie` per `cookies` entry and
    the body (base64-decoded when `isBase64Encoded`); any other result is a 200 JSON body
    of the result itself (`multiValueHeaders` does not exist in 2.0)."""
    if answer.header("x-amz-function-error"):
        return Answer(
            502, [("content-type", "application/json")], b'{"message":"Internal Server Error"}'
        )
    result = orjson.loads(answer.body)
    if not (isinstance(result, dict) and "statusCode" in result):
        return Answer(200, [("content-type", "application/json")], answer.body)
    headers = [(str(k).lower(), str(v)) for k, v in (result.get("headers") or {}).items()]
    headers += [("set-cookie", str(c)) for c in result.get("cookies") or []]
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    return Answer(int(result["statusCode"]), headers, data)


def diff(views: Mapping[str, Any], expected: Mapping[str, Any]) -> str:
    """A unified diff per runtime whose view is not the expected one ('' when all agree)."""
    out: list[str] = []
    for name, view in views.items():
        want = expected[name]
        if view == want:
            continue
        a = _pretty(want).splitlines()
        b = _pretty(view).splitlines()
        out.append(f"--- {name} differs from the reference:")
        out.extend(difflib.unified_diff(a, b, "reference", name, n=2, lineterm=""))
    return "\n".join(out)


def _pretty(view: Any) -> str:
    """Indented JSON, keys sorted (a result's key order is no difference; a log line's is,
    and each is one string, so one diff line)."""
    return orjson.dumps(view, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
