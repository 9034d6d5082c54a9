# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The fast path of every HTTP reader here (worker._httphead): a whole, plain HTTP/1.1
request (the front, the emulator's Runtime API) or response (the Runtime API client) read
from the bytes in one call, where httptools calls back into Python once per part and
header. `scan_response` is described where it is defined; the rest of this text is `scan`.

`scan(data, start, max_head, max_headers, max_body)` reads the request at `data[start:]`
and returns `(method, target, headers, body, end)` (header names lower-cased, values
without leading blanks, `end` the index after the body), or None. None means
"not here": the request is incomplete, or it has anything but the plainest shape, and the
caller hands the bytes to httptools, which parses everything and enforces every limit.
So this accepts a strict subset of what httptools accepts and gives the same reading of
it (tests compare the two); it never refuses anything itself.

The subset: a known method; an origin-form target of visible ASCII; `HTTP/1.1`; header
names of token characters right before the colon; values of visible ASCII, spaces and
tabs; every line ending in CRLF; at most `max_headers` headers and `max_head` bytes of
target and headers, counted as the front counts them; at most one Content-Length, of
digits only, not over `max_body`, with the whole body present. Transfer-Encoding, Expect,
Upgrade and any Connection value but `keep-alive` go to httptools: a request that closes
its connection is its business.

Every index is checked against the end before it is read.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcmp


cdef unsigned char TCHAR[256]   # header-name characters (RFC 9110 token)
cdef unsigned char VCHAR[256]   # header-value characters: visible ASCII, space, tab
cdef unsigned char UCHAR[256]   # request-target characters: visible ASCII
cdef unsigned char LOWER[256]

cdef int _c
for _c in range(256):
    TCHAR[_c] = 0
    VCHAR[_c] = 1 if (0x20 <= _c <= 0x7E or _c == 9) else 0
    UCHAR[_c] = 1 if 0x21 <= _c <= 0x7E else 0
    LOWER[_c] = _c + 32 if 65 <= _c <= 90 else _c
for _c in b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ":
    TCHAR[_c] = 1

cdef bytes GET = b"GET"
cdef bytes PUT = b"PUT"
cdef bytes POST = b"POST"
cdef bytes HEAD = b"HEAD"
cdef bytes PATCH = b"PATCH"
cdef bytes DELETE = b"DELETE"
cdef bytes OPTIONS = b"OPTIONS"
cdef bytes EMPTY = b""
# Names nearly every request carries: shared objects, not a new bytes per request.
cdef bytes HOST = b"host"
cdef bytes CONTENT_TYPE = b"content-type"
cdef bytes CONTENT_LENGTH = b"content-length"


cdef inline bint _named(const unsigned char* p, Py_ssize_t n, const char* lower,
                        Py_ssize_t size) noexcept nogil:
    """Whether the `n` bytes at `p` are `lower`, ignoring ASCII case."""
    cdef Py_ssize_t k
    if n != size:
        return False
    for k in range(n):
        if LOWER[p[k]] != <unsigned char>lower[k]:
            return False
    return True


cdef inline object _method(const unsigned char* p, Py_ssize_t n):
    if n == 3:
        if memcmp(p, b"GET", 3) == 0:
            return GET
        if memcmp(p, b"PUT", 3) == 0:
            return PUT
    elif n == 4:
        if memcmp(p, b"POST", 4) == 0:
            return POST
        if memcmp(p, b"HEAD", 4) == 0:
            return HEAD
    elif n == 5:
        if memcmp(p, b"PATCH", 5) == 0:
            return PATCH
    elif n == 6:
        if memcmp(p, b"DELETE", 6) == 0:
            return DELETE
    elif n == 7:
        if memcmp(p, b"OPTIONS", 7) == 0:
            return OPTIONS
    return None


cdef inline bytes _lowered(const unsigned char* p, Py_ssize_t n):
    cdef bytes out
    cdef unsigned char* q
    cdef Py_ssize_t k
    if _named(p, n, b"host", 4):
        return HOST
    if _named(p, n, b"content-type", 12):
        return CONTENT_TYPE
    out = PyBytes_FromStringAndSize(NULL, n)
    q = <unsigned char*>PyBytes_AS_STRING(out)
    for k in range(n):
        q[k] = LOWER[p[k]]
    return out


cdef Py_ssize_t _headers(const unsigned char* p, Py_ssize_t i, Py_ssize_t limit,
                         Py_ssize_t max_head, Py_ssize_t max_headers, Py_ssize_t* size,
                         Py_ssize_t* length, list headers) except -2:
    """Header lines from `p[i]` through the empty line, appended to `headers`: the index
    after the empty line, or -1 when they are not all there or not plain. `size` counts
    as the front counts against `max_head`; `length` is the Content-Length (-1: none)."""
    cdef Py_ssize_t name, name_end, value, value_end, k, j, count = 0
    while True:
        if i + 2 > limit:
            return -1
        if p[i] == 13:
            if p[i + 1] != 10:
                return -1
            return i + 2
        name = i
        while i < limit and TCHAR[p[i]]:
            i += 1
        if i == name or i >= limit or p[i] != 58:  # ":"
            return -1
        name_end = i
        i += 1
        while i < limit and (p[i] == 32 or p[i] == 9):
            i += 1
        value = i
        while i < limit and VCHAR[p[i]]:
            i += 1
        if i + 2 > limit or p[i] != 13 or p[i + 1] != 10:
            return -1
        value_end = i  # trailing blanks stay, as httptools keeps them
        i += 2
        count += 1
        size[0] += name_end - name + value_end - value + 4
        if count > max_headers or size[0] > max_head:
            return -1
        k = name_end - name
        if _named(p + name, k, b"content-length", 14):
            if length[0] >= 0 or value_end == value or value_end - value > 15:
                return -1
            length[0] = 0
            for j in range(value, value_end):
                if not 48 <= p[j] <= 57:
                    return -1
                length[0] = length[0] * 10 + (p[j] - 48)
            headers.append((CONTENT_LENGTH, PyBytes_FromStringAndSize(
                <const char*>p + value, value_end - value)))
            continue
        if (_named(p + name, k, b"transfer-encoding", 17) or _named(p + name, k, b"expect", 6)
                or _named(p + name, k, b"upgrade", 7)):
            return -1
        if _named(p + name, k, b"connection", 10) and not _named(
                p + value, value_end - value, b"keep-alive", 10):
            return -1
        headers.append((_lowered(p + name, k), PyBytes_FromStringAndSize(
            <const char*>p + value, value_end - value)))


def scan(bytes data, Py_ssize_t start, Py_ssize_t max_head, Py_ssize_t max_headers,
         Py_ssize_t max_body):
    """The plain, complete request at `data[start:]`, or None (see the module's text)."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t i = start, j
    cdef Py_ssize_t limit = n
    cdef Py_ssize_t length = -1, size
    cdef object method
    cdef bytes target
    cdef list headers = []

    if start < 0 or start >= n:
        return None
    if n - start > max_head:
        limit = start + max_head  # the head must end within max_head bytes
    # Request line: METHOD SP /target SP HTTP/1.1 CRLF
    j = i
    while j < limit and 65 <= p[j] <= 90:
        j += 1
    if j >= limit or p[j] != 32:
        return None
    method = _method(p + i, j - i)
    if method is None:
        return None
    i = j + 1
    if i >= limit or p[i] != 47:  # "/": origin-form only
        return None
    j = i
    while j < limit and UCHAR[p[j]]:
        j += 1
    if j + 11 > limit or p[j] != 32 or memcmp(p + j + 1, b"HTTP/1.1\r\n", 10) != 0:
        return None
    target = PyBytes_FromStringAndSize(<const char*>p + i, j - i)
    size = j - i  # the head's size as the front counts it against max_head
    i = _headers(p, j + 11, limit, max_head, max_headers, &size, &length, headers)
    if i < 0:
        return None
    if length < 0:
        length = 0
    if length > max_body or n - i < length:
        return None
    body = PyBytes_FromStringAndSize(<const char*>p + i, length) if length else EMPTY
    return method, target, headers, body, i + length


def scan_response(bytes data, Py_ssize_t start, Py_ssize_t max_body):
    """The plain, complete response at `data[start:]` as `(status, headers, body, end)`,
    or None, by the same rules as `scan`: `HTTP/1.1`, a status of 200 to 599 but 204 and
    304 (whose bodies have other rules) with a reason of visible ASCII and spaces, a
    Content-Length (a response without one runs to the connection's end: httptools')."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t i = start + 13, j
    cdef Py_ssize_t length = -1, size = 0
    cdef int status
    cdef list headers = []

    if start < 0 or n - start < 15 or memcmp(p + start, b"HTTP/1.1 ", 9) != 0:
        return None
    for j in range(start + 9, start + 12):
        if not 48 <= p[j] <= 57:
            return None
    status = (p[start + 9] - 48) * 100 + (p[start + 10] - 48) * 10 + (p[start + 11] - 48)
    if status < 200 or status == 204 or status == 304 or status > 599 or p[start + 12] != 32:
        return None
    while i < n and (VCHAR[p[i]] and p[i] != 9):
        i += 1
    if i + 2 > n or p[i] != 13 or p[i + 1] != 10:
        return None
    i = _headers(p, i + 2, n, n, n, &size, &length, headers)
    if i < 0 or length < 0 or length > max_body or n - i < length:
        return None
    body = PyBytes_FromStringAndSize(<const char*>p + i, length) if length else EMPTY
    return status, headers, body, i + length
