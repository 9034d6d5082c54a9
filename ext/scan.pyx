# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The compiled JSON field scanner (worker._scan): the same rules as worker/scan.py.

Every index is checked against the end before it is read, so no input (truncated, binary,
deeply nested, huge) can read out of bounds; nesting is counted, not recursed.
"""

from libc.string cimport memchr


cdef inline bint _is_ws(unsigned char c) noexcept nogil:
    return c == 32 or c == 9 or c == 13 or c == 10


cdef inline bint _is_delim(unsigned char c) noexcept nogil:
    return c == 44 or c == 125 or c == 93 or _is_ws(c)


cdef inline Py_ssize_t _skip_ws(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    while i < n and _is_ws(p[i]):
        i += 1
    return i


cdef Py_ssize_t _skip_string(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    cdef const unsigned char* q
    cdef Py_ssize_t k, at
    i += 1
    while True:
        if i >= n:
            return -1
        q = <const unsigned char*>memchr(p + i, 34, n - i)
        if q == NULL:
            return -1
        at = q - p
        k = at - 1
        while k >= i and p[k] == 92:
            k -= 1
        if (at - 1 - k) % 2 == 0:
            return at + 1
        i = at + 1


cdef Py_ssize_t _skip_value(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    cdef unsigned char c
    cdef Py_ssize_t depth = 0, start
    if i >= n:
        return -1
    c = p[i]
    if c == 34:
        return _skip_string(p, i, n)
    if c == 123 or c == 91:
        while i < n:
            c = p[i]
            if c == 34:
                i = _skip_string(p, i, n)
                if i < 0:
                    return -1
                continue
            if c == 123 or c == 91:
                depth += 1
            elif c == 125 or c == 93:
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        return -1
    start = i
    while i < n and not _is_delim(p[i]):
        i += 1
    return i if i > start else -1


def skip_ws(bytes buf, Py_ssize_t i, Py_ssize_t n):
    return _skip_ws(buf, i, min(n, len(buf)))


def skip_string(bytes buf, Py_ssize_t i, Py_ssize_t n):
    return _skip_string(buf, i, min(n, len(buf)))


def skip_value(bytes buf, Py_ssize_t i, Py_ssize_t n):
    return _skip_value(buf, i, min(n, len(buf)))


def fields(bytes buf, Py_ssize_t start, Py_ssize_t end, frozenset wanted):
    """The wanted keys of the object at `start` and their value spans (start, end)."""
    cdef const unsigned char* p = buf
    cdef Py_ssize_t n = min(end, len(buf))
    cdef Py_ssize_t i, key_end, value_end
    cdef dict found = {}
    cdef bytes key
    if start < 0:
        return found
    i = _skip_ws(p, start, n)
    if i >= n or p[i] != 123:
        return found
    i += 1
    while True:
        i = _skip_ws(p, i, n)
        if i >= n or p[i] != 34:
            return found
        key_end = _skip_string(p, i, n)
        if key_end < 0:
            return found
        key = buf[i + 1 : key_end - 1]
        i = _skip_ws(p, key_end, n)
        if i >= n or p[i] != 58:
            return found
        i = _skip_ws(p, i + 1, n)
        value_end = _skip_value(p, i, n)
        if value_end < 0:
            return found
        if key in wanted and key not in found:
            found[key] = (i, value_end)
        i = _skip_ws(p, value_end, n)
        if i >= n or p[i] != 44:
            return found
        i += 1


def first_element(bytes buf, Py_ssize_t start, Py_ssize_t end):
    """The span of the first element of the array at `start`, or (-1, -1)."""
    cdef const unsigned char* p = buf
    cdef Py_ssize_t n = min(end, len(buf))
    cdef Py_ssize_t i, value_end
    if start < 0:
        return -1, -1
    i = _skip_ws(p, start, n)
    if i >= n or p[i] != 91:
        return -1, -1
    i = _skip_ws(p, i + 1, n)
    value_end = _skip_value(p, i, n)
    if value_end < 0:
        return -1, -1
    return i, value_end
