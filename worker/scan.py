"""The pure-Python JSON field scanner: the twin of the compiled `ext/classify.pyx`.

It reads the fields of one JSON object straight from the raw bytes, without parsing the
values: nested values are skipped by counting brackets (strings skipped whole, escapes
honoured). Both implementations follow the same rules byte for byte, so they give the same
answer for every input, valid JSON or not, and neither can fail: malformed input ends the
scan and returns what was found before it.
"""

from __future__ import annotations

_WS = b" \t\r\n"
_QUOTE = 0x22
_BACKSLASH = 0x5C
_OPEN = b"{["
_CLOSE = b"}]"
_DELIMS = b",}] \t\r\n"


def skip_ws(buf: bytes, i: int, n: int) -> int:
    while i < n and buf[i] in _WS:
        i += 1
    return i


def skip_string(buf: bytes, i: int, n: int) -> int:
    """`buf[i]` is a quote: the index after the closing quote, or -1 if unterminated."""
    i += 1
    while True:
        q = buf.find(b'"', i, n)
        if q < 0:
            return -1
        # A quote ends the string unless an odd run of backslashes escapes it.
        k = q - 1
        while k >= i and buf[k] == _BACKSLASH:
            k -= 1
        if (q - 1 - k) % 2 == 0:
            return q + 1
        i = q + 1


def skip_value(buf: bytes, i: int, n: int) -> int:
    """The index after the value starting at `i`, or -1 when it does not end."""
    if i >= n:
        return -1
    c = buf[i]
    if c == _QUOTE:
        return skip_string(buf, i, n)
    if c in _OPEN:
        depth = 0
        while i < n:
            c = buf[i]
            if c == _QUOTE:
                i = skip_string(buf, i, n)
                if i < 0:
                    return -1
                continue
            if c in _OPEN:
                depth += 1
            elif c in _CLOSE:
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        return -1
    start = i
    while i < n and buf[i] not in _DELIMS:
        i += 1
    return i if i > start else -1


def fields(
    buf: bytes, start: int, end: int, wanted: frozenset[bytes]
) -> dict[bytes, tuple[int, int]]:
    """The wanted keys of the object at `start` and their value spans (start, end).

    Keys are compared as raw bytes (no escape decoding); the first occurrence wins. The
    scan stops at the object's end or at the first malformed byte.
    """
    return _walk(buf, start, end, wanted, None)[0]


def value_start(buf: bytes, start: int, end: int, wanted: bytes) -> int:
    """Where the value of the first `wanted` key of the object at `start` begins, read in
    order and stopping there (that value need not end), or -1 when the scan ends first."""
    return _walk(buf, start, end, frozenset(), wanted)[1]


def _walk(
    buf: bytes, start: int, end: int, wanted: frozenset[bytes], stop_at: bytes | None
) -> tuple[dict[bytes, tuple[int, int]], int]:
    """Read the object at `start` key by key: the spans of the `wanted` keys, and where the
    value of the first `stop_at` key begins (the walk ends there; -1 if never met)."""
    found: dict[bytes, tuple[int, int]] = {}
    end = min(end, len(buf))
    if start < 0:
        return found, -1
    i = skip_ws(buf, start, end)
    if i >= end or buf[i] != 0x7B:  # "{"
        return found, -1
    i += 1
    while True:
        i = skip_ws(buf, i, end)
        if i >= end or buf[i] != _QUOTE:
            return found, -1
        key_end = skip_string(buf, i, end)
        if key_end < 0:
            return found, -1
        key = buf[i + 1 : key_end - 1]
        i = skip_ws(buf, key_end, end)
        if i >= end or buf[i] != 0x3A:  # ":"
            return found, -1
        i = skip_ws(buf, i + 1, end)
        if key == stop_at:
            return found, i
        value_end = skip_value(buf, i, end)
        if value_end < 0:
            return found, -1
        if key in wanted and key not in found:
            found[key] = (i, value_end)
        i = skip_ws(buf, value_end, end)
        if i >= end or buf[i] != 0x2C:  # ","
            return found, -1
        i += 1


def array_start(buf: bytes, i: int, end: int) -> int:
    """Where the first element of the array at `i` begins, or -1 when `i` holds none."""
    end = min(end, len(buf))
    i = skip_ws(buf, i, end)
    if i >= end or buf[i] != 0x5B:  # "["
        return -1
    return skip_ws(buf, i + 1, end)


def first_element(buf: bytes, start: int, end: int) -> tuple[int, int]:
    """The span of the first element of the array at `start`, or (-1, -1)."""
    end = min(end, len(buf))
    if start < 0:
        return -1, -1
    i = skip_ws(buf, start, end)
    if i >= end or buf[i] != 0x5B:  # "["
        return -1, -1
    i = skip_ws(buf, i + 1, end)
    value_end = skip_value(buf, i, end)
    if value_end < 0:
        return -1, -1
    return i, value_end
