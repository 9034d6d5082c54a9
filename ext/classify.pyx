# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The compiled classifier (worker._classify): worker/scan.py's JSON field scanner and
worker/classify.py's rules, in C, giving the same answers as those pure-Python twins.

Every index is checked against the end before it is read, so no input (truncated, binary,
deeply nested, huge) can read out of bounds; nesting is counted, not recursed.
"""


cdef extern from "structural.h":
    void rw_block_masks(const unsigned char* p, unsigned int* quote, unsigned int* slash,
                        unsigned int* open, unsigned int* close) noexcept nogil
    void rw_string_masks(const unsigned char* p, unsigned int* quote,
                         unsigned int* slash) noexcept nogil
    int rw_lowest(unsigned int m) noexcept nogil
    int rw_leading_spaces8(const unsigned char* p) noexcept nogil


cdef inline bint _is_ws(unsigned char c) noexcept nogil:
    return c == 32 or c == 9 or c == 13 or c == 10


cdef inline bint _is_delim(unsigned char c) noexcept nogil:
    return c == 44 or c == 125 or c == 93 or _is_ws(c)


cdef inline Py_ssize_t _skip_ws(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    # Pretty JSON puts a line break and spaces before a key: the spaces go 8 at a time.
    while i < n and _is_ws(p[i]):
        if p[i] == 10 and i + 9 <= n:
            i += 1 + rw_leading_spaces8(p + i + 1)
        else:
            i += 1
    return i


cdef inline Py_ssize_t _skip_string(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """`p[i]` is a quote: the index after the closing quote, or -1 if unterminated.

    Sixteen bytes at a time (structural.h): the first quote with no backslash before it in
    its block ends the string; a block with a backslash is stepped byte by byte, where an
    escape skips the byte after it (so an escaped quote does not end the string)."""
    cdef unsigned int quote, slash
    cdef Py_ssize_t end
    i += 1
    while i < n:
        if i + 16 <= n:
            rw_string_masks(p + i, &quote, &slash)
            if slash == 0 or (quote != 0 and (slash & (quote & (~quote + 1)) - 1) == 0):
                if quote:
                    return i + rw_lowest(quote) + 1
                i += 16
                continue
            end = i + 16
        else:
            end = n
        while i < end:
            if p[i] == 92:
                i += 2  # the escaped byte may be the next block's first: end stays
            elif p[i] == 34:
                return i + 1
            else:
                i += 1
    return -1


cdef Py_ssize_t _skip_container(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """`p[i]` opens an object or array: the index after its close, or -1 if it does not end.

    Brackets are counted outside strings, whatever their kind (as the twin does). Sixteen
    bytes at a time: a block's quotes and brackets come as bitmasks (structural.h) and only
    those bits are visited; a block with a backslash in it, and the last few bytes, are
    stepped byte by byte, where an escape inside a string skips the byte after it."""
    cdef Py_ssize_t depth = 0, end
    cdef bint in_string = False
    cdef unsigned int quote, slash, opens, closes, todo, bit
    cdef unsigned char c
    while i < n:
        if i + 16 <= n:
            rw_block_masks(p + i, &quote, &slash, &opens, &closes)
            if slash == 0:
                todo = quote | opens | closes
                while todo:
                    bit = todo & (~todo + 1)
                    todo ^= bit
                    if in_string:
                        if quote & bit:
                            in_string = False
                    elif quote & bit:
                        in_string = True
                    elif opens & bit:
                        depth += 1
                    else:
                        depth -= 1
                        if depth == 0:
                            return i + rw_lowest(bit) + 1
                i += 16
                continue
            end = i + 16
        else:
            end = n
        while i < end:
            c = p[i]
            if in_string:
                if c == 92:
                    i += 2  # the escaped byte may be the next block's first: end stays
                    continue
                if c == 34:
                    in_string = False
            elif c == 34:
                in_string = True
            elif c == 123 or c == 91:
                depth += 1
            elif c == 125 or c == 93:
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
    return -1


cdef Py_ssize_t _skip_value(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    cdef unsigned char c
    cdef Py_ssize_t start
    if i >= n:
        return -1
    c = p[i]
    if c == 34:
        return _skip_string(p, i, n)
    if c == 123 or c == 91:
        return _skip_container(p, i, n)
    start = i
    while i < n and not _is_delim(p[i]):
        i += 1
    return i if i > start else -1


cdef struct Span:
    Py_ssize_t s
    Py_ssize_t e


cdef inline Py_ssize_t _open_object(const unsigned char* p, Py_ssize_t start, Py_ssize_t n) noexcept nogil:
    """The index after the `{` of the object at `start`, or -1 when there is none."""
    cdef Py_ssize_t i
    if start < 0:
        return -1
    i = _skip_ws(p, start, n)
    if i >= n or p[i] != 123:
        return -1
    return i + 1


cdef inline Py_ssize_t _key(const unsigned char* p, Py_ssize_t i, Py_ssize_t n,
                            Span* key) noexcept nogil:
    """Read one `"key":` from `i`: the index where its value starts, or -1 if malformed."""
    cdef Py_ssize_t key_end
    i = _skip_ws(p, i, n)
    if i >= n or p[i] != 34:
        return -1
    key_end = _skip_string(p, i, n)
    if key_end < 0:
        return -1
    key.s = i + 1
    key.e = key_end - 1
    i = _skip_ws(p, key_end, n)
    if i >= n or p[i] != 58:
        return -1
    return _skip_ws(p, i + 1, n)


cdef inline Py_ssize_t _field(const unsigned char* p, Py_ssize_t i, Py_ssize_t n,
                              Span* key, Span* value) noexcept nogil:
    """Read one `"key": value` from `i`: the index after the value, or -1 if malformed."""
    cdef Py_ssize_t value_end
    i = _key(p, i, n, key)
    if i < 0:
        return -1
    value_end = _skip_value(p, i, n)
    if value_end < 0:
        return -1
    value.s = i
    value.e = value_end
    return value_end


cdef inline Py_ssize_t _after(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """After a value: the index past the `,` that announces another field, or -1."""
    i = _skip_ws(p, i, n)
    if i >= n or p[i] != 44:
        return -1
    return i + 1


def fields(bytes buf, Py_ssize_t start, Py_ssize_t end, frozenset wanted):
    """The wanted keys of the object at `start` and their value spans (start, end)."""
    cdef const unsigned char* p = buf
    cdef Py_ssize_t n = min(end, len(buf))
    cdef Py_ssize_t i, value_end
    cdef Span k, v
    cdef dict found = {}
    cdef bytes key
    i = _open_object(p, start, n)
    while i >= 0:
        value_end = _field(p, i, n, &k, &v)
        if value_end < 0:
            break
        key = buf[k.s : k.e]
        if key in wanted and key not in found:
            found[key] = (v.s, v.e)
        i = _after(p, value_end, n)
    return found


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


# -- the whole classification in C: the same rules as worker/classify.py, branch for branch --

from libc.string cimport memcpy, strlen


cdef inline bint _same(const unsigned char* a, const char* b, Py_ssize_t n) noexcept nogil:
    """`a[:n] == b[:n]`, inline: keys are short, and a libc memcmp call per candidate key
    cost more than the comparison (8 bytes at a time; the fixed-size copies are loads)."""
    cdef Py_ssize_t j = 0
    cdef unsigned long long x, y
    while j + 8 <= n:
        memcpy(&x, a + j, 8)
        memcpy(&y, b + j, 8)
        if x != y:
            return False
        j += 8
    while j < n:
        if a[j] != <unsigned char>b[j]:
            return False
        j += 1
    return True


cdef struct Spec:
    # An object's wanted keys, where their spans go in the caller's array (`slot`), and
    # for a key whose value is itself searched, that object's Spec (else NULL).
    int nkeys
    const char* keys[6]
    Py_ssize_t lens[6]
    int slot[6]
    Spec* child[6]
    unsigned int subtree  # the slots of these keys and of everything under them


cdef void _want(Spec* spec, const char* key, int slot, Spec* child):
    spec.keys[spec.nkeys] = key
    spec.lens[spec.nkeys] = <Py_ssize_t>strlen(key)
    spec.slot[spec.nkeys] = slot
    spec.child[spec.nkeys] = child
    spec.nkeys += 1
    spec.subtree |= (1u << slot) | (child.subtree if child != NULL else 0)


cdef inline bint _clean_scalar(const unsigned char* p, Py_ssize_t s, Py_ssize_t e) noexcept nogil:
    """No quote or opener in a bare value: bracket counting would skip it the same way."""
    while s < e:
        if p[s] == 34 or p[s] == 123 or p[s] == 91:
            return False
        s += 1
    return True


cdef struct Found:
    # Which slots were found (bit k) and their spans: a span is only read when its bit is
    # set, so nothing is cleared per call (clearing ~700 bytes of spans was a third of
    # classifying a small event).
    unsigned int have
    Span at[32]


cdef inline bint _has(const Found* f, int k) noexcept nogil:
    return (f.have >> k) & 1


cdef inline Span _at(const Found* f, int k) noexcept nogil:
    """Slot k's span, or (-1, -1) when it was not found."""
    cdef Span none
    if (f.have >> k) & 1:
        return f.at[k]
    none.s = -1
    none.e = -1
    return none


cdef inline void _put(Found* f, int k, Py_ssize_t s, Py_ssize_t e) noexcept nogil:
    f.have |= 1u << k
    f.at[k].s = s
    f.at[k].e = e


cdef inline Span _text(const unsigned char* p, Span sp) noexcept nogil:
    """The inside of a string value, or s = -1 when the value is not a string."""
    cdef Span t
    if sp.s < 0 or p[sp.s] != 34 or sp.e - sp.s < 2:
        t.s = -1
        t.e = -1
    else:
        t.s = sp.s + 1
        t.e = sp.e - 1
    return t


cdef inline bint _eq(const unsigned char* p, Span t, const char* lit) noexcept nogil:
    cdef Py_ssize_t ln = <Py_ssize_t>strlen(lit)
    return t.s >= 0 and t.e - t.s == ln and _same(p + t.s, lit, ln)


cdef inline bint _ends_with(const unsigned char* p, Span t, const char* lit) noexcept nogil:
    cdef Py_ssize_t ln = <Py_ssize_t>strlen(lit)
    return t.s >= 0 and t.e - t.s >= ln and _same(p + t.e - ln, lit, ln)


cdef bint _contains(const unsigned char* p, Span t, const char* lit) noexcept nogil:
    cdef Py_ssize_t ln = <Py_ssize_t>strlen(lit), i
    if t.s < 0:
        return False
    i = t.s
    while i + ln <= t.e:
        if _same(p + i, lit, ln):
            return True
        i += 1
    return False


# Top-level keys, in the order of these indices.
cdef enum:
    T_VERSION, T_ROUTEKEY, T_RAWPATH, T_RESOURCE, T_HTTPMETHOD, T_PATH, T_RC, T_RECORDS,
    T_records, T_EVENTSOURCE, T_EVENTSOURCEARN, T_BOOTSTRAP, T_SOURCE, T_DETAILTYPE, T_DETAIL,
    T_AWSLOGS, T_TRIGGER, T_USERPOOL, T_REQTYPE, T_RESPURL, T_STACKID, T_TYPE, T_METHODARN,
    T_ROUTEARN, T_AUTHTOKEN, T_DELIVERY, T_INVOCATION, T_APPLICATION, T_WARMER, T_WORKER,
    T_ROUTE, T_COUNT

cdef const char* TOP_KEYS[T_COUNT]
TOP_KEYS[:] = [
    b"version", b"routeKey", b"rawPath", b"resource", b"httpMethod", b"path", b"requestContext",
    b"Records", b"records", b"eventSource", b"eventSourceArn", b"bootstrapServers", b"source",
    b"detail-type", b"detail", b"awslogs", b"triggerSource", b"userPoolId", b"RequestType",
    b"ResponseURL", b"StackId", b"type", b"methodArn", b"routeArn", b"authorizationToken",
    b"deliveryStreamArn", b"invocationId", b"applicationArn", b"warmer", b"worker", b"",
]

cdef Py_ssize_t TOP_LENS[T_COUNT]
for _k in range(T_COUNT):
    TOP_LENS[_k] = <Py_ssize_t>strlen(TOP_KEYS[_k])

# The top-level keys bucketed by length: a key read from the event is compared with the
# two or three of its length only (a loop over all of them cost ~25 ns per key read).
DEF MAX_TOP_LEN = 18
cdef int BUCKET_AT[MAX_TOP_LEN + 2]
cdef int BUCKET[T_COUNT]
_next = 0
for _ln in range(MAX_TOP_LEN + 1):
    BUCKET_AT[_ln] = _next
    for _k in range(T_ROUTE):
        if TOP_LENS[_k] == _ln:
            BUCKET[_next] = _k
            _next += 1
BUCKET_AT[MAX_TOP_LEN + 1] = _next


cdef inline int _top_index(const unsigned char* p, Py_ssize_t s, Py_ssize_t kl) noexcept nogil:
    """Which fixed top-level key `p[s:s+kl]` is, or -1."""
    cdef int j, k
    if kl <= 0 or kl > MAX_TOP_LEN:
        return -1
    for j in range(BUCKET_AT[kl], BUCKET_AT[kl + 1]):
        k = BUCKET[j]
        if <unsigned char>TOP_KEYS[k][0] == p[s] and _same(p + s, TOP_KEYS[k], kl):
            return k
    return -1


cdef Py_ssize_t _read(const unsigned char* p, Py_ssize_t i, Py_ssize_t n, Spec* spec,
                      Found* out, bint* exact) noexcept nogil:
    """The value at `i`, read once: its end (what _skip_value gives), and when it is an
    object, the first occurrence of each wanted key put in its `out` slot, the wanted objects
    under it read as it goes (`_nested`), so no value is skipped and then read again.

    Fields are read as `fields()` reads them (first occurrence wins, the first malformed
    byte stops the reading), up to `n`. `exact` says whether the end is where the object's
    `}` closes a clean field list, and so the same as bracket counting's. When it is not
    (malformed, or a bare value with a quote or bracket in it, which bracket counting reads
    differently) the end comes from counting brackets from the start."""
    cdef Py_ssize_t start = i, value_end, kl
    cdef Span key
    cdef int j, at
    cdef bint clean = True
    exact[0] = True
    if i >= n or p[i] != 123:
        return _skip_value(p, i, n)
    i += 1
    while True:
        i = _key(p, i, n, &key)
        if i < 0:
            break
        kl = key.e - key.s
        at = -1
        for j in range(spec.nkeys):
            if (spec.lens[j] == kl and not _has(out, spec.slot[j])
                    and (kl == 0 or <unsigned char>spec.keys[j][0] == p[key.s])
                    and _same(p + key.s, spec.keys[j], kl)):
                at = j
                break
        if at >= 0 and spec.child[at] != NULL:
            value_end = _nested(p, i, n, spec.child[at], out)
        else:
            value_end = _skip_value(p, i, n)
        # A bare value (where a wanted object was expected, too) with a quote or bracket
        # in it: bracket counting reads it differently, so it decides the end.
        if value_end >= 0 and clean and p[i] != 34 and p[i] != 123 and p[i] != 91:
            clean = _clean_scalar(p, i, value_end)
        if value_end < 0:
            break
        if at >= 0:
            _put(out, spec.slot[at], i, value_end)
        i = _skip_ws(p, value_end, n)
        if i < n and p[i] == 44:
            i += 1
            continue
        if i < n and p[i] == 125 and clean:
            return i + 1
        break
    exact[0] = False
    return _skip_container(p, start, n)


cdef Py_ssize_t _nested(const unsigned char* p, Py_ssize_t i, Py_ssize_t n, Spec* spec,
                        Found* out) noexcept nogil:
    """A wanted object under another: its end, and its fields as `fields()` reads them from
    its span (the twin's rule): up to the end bracket counting gives it. A clean object
    ends there anyway; otherwise what was read past that end is dropped and the object is
    read again within it (malformed input only)."""
    cdef bint exact
    cdef Py_ssize_t end = _read(p, i, n, spec, out, &exact)
    if not exact:
        out.have &= ~spec.subtree
        if end >= 0:
            _read(p, i, end, spec, out, &exact)
    return end


# Where the nested fields land: the first record's (and inside it), the requestContext's
# and the awslogs object's. One array of spans per classification, on the stack.
cdef enum:
    R_EVENTSOURCE, R_EVENTSOURCE_SNS, R_ARN, R_CF, R_SNS, R_S3, R_CF_REQUEST, R_METHOD,
    R_URI, R_TOPIC, R_BUCKET, R_BUCKET_NAME, C_ELB, C_HTTP, C_DOMAIN, C_METHOD, L_DATA,
    S_COUNT

cdef Spec RECORD, CF, CF_REQUEST, SNS, S3, S3_BUCKET, CONTEXT, HTTP, AWSLOGS  # static: zeroed
# Innermost first: a Spec's subtree takes in its children's as they are when it is made.
_want(&CF_REQUEST, b"method", R_METHOD, NULL)
_want(&CF_REQUEST, b"uri", R_URI, NULL)
_want(&CF, b"request", R_CF_REQUEST, &CF_REQUEST)
_want(&SNS, b"TopicArn", R_TOPIC, NULL)
_want(&S3_BUCKET, b"name", R_BUCKET_NAME, NULL)
_want(&S3, b"bucket", R_BUCKET, &S3_BUCKET)
_want(&RECORD, b"eventSource", R_EVENTSOURCE, NULL)
_want(&RECORD, b"EventSource", R_EVENTSOURCE_SNS, NULL)
_want(&RECORD, b"eventSourceARN", R_ARN, NULL)
_want(&RECORD, b"cf", R_CF, &CF)
_want(&RECORD, b"Sns", R_SNS, &SNS)
_want(&RECORD, b"s3", R_S3, &S3)
_want(&HTTP, b"method", C_METHOD, NULL)
_want(&CONTEXT, b"elb", C_ELB, NULL)
_want(&CONTEXT, b"http", C_HTTP, &HTTP)
_want(&CONTEXT, b"domainName", C_DOMAIN, NULL)
_want(&AWSLOGS, b"data", L_DATA, NULL)
assert S_COUNT <= 32 and T_COUNT <= 32, "Found marks its slots in 32 bits"


from cpython.unicode cimport PyUnicode_DecodeUTF8


cdef inline str _b(const unsigned char* p, Span t):
    """A string value's raw text (escapes left as they are), decoded; "" when absent."""
    if t.s < 0 or t.e <= t.s:
        return ""
    return PyUnicode_DecodeUTF8(<const char*>p + t.s, t.e - t.s, "replace")


cdef str _join(const unsigned char* p, Span a, Span b):
    """`a b` (method and path, source and detail-type), decoded once."""
    cdef char small[256]
    cdef Py_ssize_t la = a.e - a.s if a.s >= 0 else 0
    cdef Py_ssize_t lb = b.e - b.s if b.s >= 0 else 0
    if la + lb + 1 > 256:
        return (p[a.s:a.e] if la else b"").decode("utf-8", "replace") + " " + _b(p, b)
    if la:
        memcpy(small, p + a.s, la)
    small[la] = 32
    if lb:
        memcpy(small + la + 1, p + b.s, lb)
    return PyUnicode_DecodeUTF8(small, la + 1 + lb, "replace")


cdef object _records_rule(const unsigned char* p, Py_ssize_t at, Py_ssize_t n, Found* sp,
                         type rt, object owner):
    """The Records rule on the first element of the array at `at`: (kind, route) when it
    decides, else None. It reads only that element (in one pass, nested fields included),
    not the rest of the array."""
    cdef Span a, b, source, arn
    cdef bint exact
    cdef Py_ssize_t i = _skip_ws(p, at, n)
    if i >= n or p[i] != 91:
        return None
    # The record's own fields are read up to the end of the input (the twin's rule), the
    # objects under it within their spans.
    _read(p, _skip_ws(p, i + 1, n), n, &RECORD, sp, &exact)
    # A nested span is only read when its parent was recorded (a parent that did not end
    # leaves what was read inside it, unused, as `fields()` would never have looked).
    if _eq(p, _text(p, _at(sp, R_EVENTSOURCE_SNS)), b"aws:sns"):
        return _pair(rt, owner, "sns", _b(p, _text(p, _at(sp, R_TOPIC))) if _has(sp, R_SNS) else "")
    if _has(sp, R_CF):
        a.s = -1
        b.s = -1
        if _has(sp, R_CF_REQUEST):
            a = _text(p, _at(sp, R_METHOD))
            b = _text(p, _at(sp, R_URI))
        return _pair(rt, owner, "lambda-edge", _join(p, a, b))
    source = _text(p, _at(sp, R_EVENTSOURCE))
    arn = _text(p, _at(sp, R_ARN))
    if _eq(p, source, b"aws:sqs"):
        return _pair(rt, owner, "sqs", _b(p, arn))
    if _eq(p, source, b"aws:s3"):
        if _has(sp, R_S3) and _has(sp, R_BUCKET):
            return _pair(rt, owner, "s3", _b(p, _text(p, _at(sp, R_BUCKET_NAME))))
        return _pair(rt, owner, "s3", "")
    if _eq(p, source, b"aws:dynamodb"):
        return _pair(rt, owner, "dynamodb", _b(p, arn))
    if _eq(p, source, b"aws:kinesis"):
        return _pair(rt, owner, "kinesis", _b(p, arn))
    if _eq(p, source, b"aws:ses"):
        return _pair(rt, owner, "ses", "")
    return None


def classify(bytes buf, bytes route_key):
    """(kind, route): worker.classify's rules, run entirely in C, in one pass over the top
    level. The Records rule comes first, so it is decided as soon as the first `Records`
    key is read: an SQS batch is known by its first record, the other nine never read."""
    return _classify(buf, route_key, tuple, None)


cdef extern from "Python.h":
    object PyType_GenericAlloc(type t, Py_ssize_t n)

from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM


cdef class Compiled:
    """worker.classify's classifier with the whole call in C: `obj(raw)` gives a
    `result_type` (a two-field named tuple) and `obj.kind_route(raw)` a plain tuple, with no
    Python frame in between (the frame and the named tuple's `__new__` cost more than
    classifying a small event). A call takes the vectorcall path (`_call` below)."""

    cdef void* vectorcall  # PEP 590: the type's tp_vectorcall_offset points here
    cdef readonly bytes route_key
    cdef readonly type result_type
    cdef readonly str backend
    # The last result of each form, handed out again when nobody else holds it (below).
    cdef object last_named, last_plain

    def __cinit__(self, *args):
        self.vectorcall = <void*>_call

    def __init__(self, bytes route_key, type result_type):
        self.route_key = route_key
        self.result_type = result_type
        self.backend = "extension"

    def __call__(self, raw):
        # Only for a caller that insists on tp_call: the interpreter itself calls `_call`.
        raw = raw if type(raw) is bytes else bytes(raw)
        return _classify(raw, self.route_key, self.result_type, self)

    def kind_route(self, raw):
        return _classify(raw if type(raw) is bytes else bytes(raw), self.route_key, tuple, self)


cdef object _call(PyObject* callable, PyObject** args, size_t nargsf, PyObject* kwnames):
    """`obj(raw)` through vectorcall: straight from the interpreter's argument vector,
    without tp_call's argument tuple and its parsing (~25 ns of a small event's call)."""
    cdef Compiled self = <Compiled>callable
    if PyVectorcall_NARGS(nargsf) != 1 or (kwnames != NULL and len(<tuple>kwnames) != 0):
        raise TypeError("classify() takes exactly one argument, the raw event")
    raw = <object>args[0]
    raw = raw if type(raw) is bytes else bytes(raw)
    return _classify(raw, self.route_key, self.result_type, self)


cdef extern from *:
    """
    /* Switch a type's instances to vectorcall once its instances carry the function
       pointer at `offset`; tp_call then defers to it, so both ways agree (PEP 590). */
    static void rw_use_vectorcall(PyTypeObject *t, Py_ssize_t offset) {
        t->tp_vectorcall_offset = offset;
        t->tp_call = PyVectorcall_Call;
        t->tp_flags |= Py_TPFLAGS_HAVE_VECTORCALL;
    }
    """
    void rw_use_vectorcall(PyTypeObject* t, Py_ssize_t offset)
    Py_ssize_t PyVectorcall_NARGS(size_t nargsf)


cdef Compiled _probe = Compiled(b"", tuple)
rw_use_vectorcall(<PyTypeObject*>Compiled, <char*>&_probe.vectorcall - <char*><PyObject*>_probe)
_probe = None


cdef inline object _pair(type rt, object owner, str kind, str route):
    """(kind, route) as `rt` (a tuple, or for the named tuple what tuple.__new__ does for a
    subclass, without a plain tuple to copy from).

    An owner's last result of the same form is refilled and handed out again when the
    owner's is the only reference left (the caller dropped it, as a caller that unpacks or
    reads it and moves on does): CPython's zip() and dict.items() iterators recycle their
    result tuple the same way. Allocating and freeing the named tuple was ~20 ns of the
    ~90 ns a small event takes; the items are strings, so no cycle can form."""
    cdef Compiled by = <Compiled>owner if owner is not None else None
    cdef bint plain = rt is tuple
    cdef object result
    if by is not None:
        result = by.last_plain if plain else by.last_named
        if result is not None and rw_refcnt(<PyObject*>result) == 2:  # by's and `result`
            rw_refill(<PyObject*>result, <PyObject*>kind, <PyObject*>route)
            return result
    result = PyTuple_New(2) if plain else PyType_GenericAlloc(rt, 2)
    Py_INCREF(kind)
    PyTuple_SET_ITEM(result, 0, kind)
    Py_INCREF(route)
    PyTuple_SET_ITEM(result, 1, route)
    if by is not None:
        if plain:
            by.last_plain = result
        else:
            by.last_named = result
    return result


cdef extern from *:
    """
    static inline Py_ssize_t rw_refcnt(PyObject *o) { return Py_REFCNT(o); }

    /* A two-item tuple nobody else holds gets new items (new references taken, the old
       ones dropped after, in case they are the same objects). */
    static inline void rw_refill(PyObject *t, PyObject *a, PyObject *b) {
        PyObject *old_a = PyTuple_GET_ITEM(t, 0), *old_b = PyTuple_GET_ITEM(t, 1);
        Py_INCREF(a);
        Py_INCREF(b);
        PyTuple_SET_ITEM(t, 0, a);
        PyTuple_SET_ITEM(t, 1, b);
        Py_DECREF(old_a);
        Py_DECREF(old_b);
    }
    """
    Py_ssize_t rw_refcnt(PyObject* o)
    void rw_refill(PyObject* t, PyObject* a, PyObject* b)


cdef object _classify(bytes buf, bytes route_key, type rt, object owner):
    # rt: the result's type, a tuple or a two-field tuple subclass (the named tuple);
    # owner: the Compiled object whose last results may be reused (None: never)
    cdef const unsigned char* p = buf
    cdef Py_ssize_t n = len(buf)
    cdef const char* rkey = route_key
    cdef Py_ssize_t rlen = len(route_key)
    cdef Found top, sp
    cdef Span key, t, source, version, a, b, domain, rk
    cdef Py_ssize_t i, value_end, kl
    cdef int k
    cdef object decided
    top.have = 0
    sp.have = 0
    i = _open_object(p, 0, n)
    while i >= 0:
        i = _key(p, i, n, &key)
        if i < 0:
            break
        kl = key.e - key.s
        k = _top_index(p, key.s, kl)
        if k == T_RECORDS and not _has(&top, T_RECORDS):
            decided = _records_rule(p, i, n, &sp, rt, owner)
            if decided is not None:
                return decided
            sp.have &= ~RECORD.subtree  # the first record decided nothing (keep requestContext)
        # The objects whose fields the rules read are read as they are passed, once.
        if k == T_RC and not _has(&top, T_RC):
            value_end = _nested(p, i, n, &CONTEXT, &sp)
        elif k == T_AWSLOGS and not _has(&top, T_AWSLOGS):
            value_end = _nested(p, i, n, &AWSLOGS, &sp)
        else:
            value_end = _skip_value(p, i, n)
        if value_end < 0:
            break
        if k >= 0 and not _has(&top, k):
            _put(&top, k, i, value_end)
        # The direct route's key may also be one of the fixed ones: it is checked apart.
        if kl == rlen and not _has(&top, T_ROUTE) and _same(p + key.s, rkey, kl):
            _put(&top, T_ROUTE, i, value_end)
        i = _after(p, value_end, n)
    if top.have == 0:
        return _pair(rt, owner, "direct", "")
    # As the twin (worker/classify.py): by the invocation id and the records.
    if _has(&top, T_records) and _has(&top, T_INVOCATION) and not _has(&top, T_APPLICATION):
        t = _text(p, _at(&top, T_DELIVERY))
        return _pair(rt, owner, "firehose", _b(p, t))
    source = _text(p, _at(&top, T_EVENTSOURCE))
    if _eq(p, source, b"aws:kafka"):
        t = _text(p, _at(&top, T_EVENTSOURCEARN))
        return _pair(rt, owner, "kafka", _b(p, t))
    if _eq(p, source, b"SelfManagedKafka"):
        t = _text(p, _at(&top, T_BOOTSTRAP))
        return _pair(rt, owner, "kafka", _b(p, t))
    if _eq(p, source, b"aws:mq") or _eq(p, source, b"aws:rmq"):
        t = _text(p, _at(&top, T_EVENTSOURCEARN))
        return _pair(rt, owner, "mq", _b(p, t))
    if _has(&top, T_AWSLOGS) and _has(&sp, L_DATA):
        return _pair(rt, owner, "cloudwatch-logs", "")
    version = _text(p, _at(&top, T_VERSION))
    if (_eq(p, version, b"0") or not _has(&top, T_VERSION)) and _has(&top, T_DETAIL):
        a = _text(p, _at(&top, T_SOURCE))
        b = _text(p, _at(&top, T_DETAILTYPE))
        if a.s >= 0 and b.s >= 0:
            if _eq(p, a, b"aws.events") and _eq(p, b, b"Scheduled Event"):
                return _pair(rt, owner, "schedule", _join(p, a, b))
            return _pair(rt, owner, "eventbridge", _join(p, a, b))
    if _has(&top, T_TRIGGER) and _has(&top, T_USERPOOL):
        t = _text(p, _at(&top, T_TRIGGER))
        return _pair(rt, owner, "cognito", _b(p, t))
    if _has(&top, T_REQTYPE) and _has(&top, T_RESPURL) and _has(&top, T_STACKID):
        t = _text(p, _at(&top, T_REQTYPE))
        return _pair(rt, owner, "cfn-custom-resource", _b(p, t))
    t = _text(p, _at(&top, T_TYPE))
    if _eq(p, t, b"TOKEN") and _has(&top, T_AUTHTOKEN) and _has(&top, T_METHODARN):
        a = _text(p, _at(&top, T_METHODARN))
        return _pair(rt, owner, "apigw-authorizer", _b(p, a))
    if _eq(p, t, b"REQUEST") and (_has(&top, T_METHODARN) or _has(&top, T_ROUTEARN)):
        a = _text(p, _at(&top, T_METHODARN))
        if a.s >= 0 and a.e > a.s:
            return _pair(rt, owner, "apigw-authorizer", _b(p, a))
        b = _text(p, _at(&top, T_ROUTEARN))
        return _pair(rt, owner, "apigw-authorizer", _b(p, b))
    if _has(&top, T_RC):
        if _eq(p, version, b"2.0") and _has(&top, T_ROUTEKEY) and _has(&top, T_RAWPATH) and _has(&sp, C_HTTP):
            a = _text(p, _at(&sp, C_METHOD))
            b = _text(p, _at(&top, T_RAWPATH))
            domain = _text(p, _at(&sp, C_DOMAIN))
            if _ends_with(p, domain, b".on.aws") and _contains(p, domain, b".lambda-url."):
                return _pair(rt, owner, "function-url", _join(p, a, b))
            rk = _text(p, _at(&top, T_ROUTEKEY))
            if rk.s >= 0 and rk.e > rk.s and not _eq(p, rk, b"$default"):
                return _pair(rt, owner, "apigw-http", _b(p, rk))
            return _pair(rt, owner, "apigw-http", _join(p, a, b))
        if _has(&sp, C_ELB) and _has(&top, T_HTTPMETHOD):
            a = _text(p, _at(&top, T_HTTPMETHOD))
            b = _text(p, _at(&top, T_PATH))
            return _pair(rt, owner, "alb", _join(p, a, b))
        if _has(&top, T_HTTPMETHOD) and _has(&top, T_RESOURCE):
            a = _text(p, _at(&top, T_HTTPMETHOD))
            b = _text(p, _at(&top, T_RESOURCE))
            if _eq(p, version, b"1.0"):
                return _pair(rt, owner, "apigw-http-v1", _join(p, a, b))
            return _pair(rt, owner, "apigw-rest", _join(p, a, b))
    # Warm-up pings come last, as in the twin: one mask test for the events with none of
    # the three keys, which is every direct invoke but a ping.
    if top.have & ((1u << T_SOURCE) | (1u << T_WARMER) | (1u << T_WORKER)):
        if _eq(p, _text(p, _at(&top, T_SOURCE)), b"serverless-plugin-warmup"):
            return _pair(rt, owner, "warmup", "serverless-plugin-warmup")
        a = _at(&top, T_WARMER)
        if a.s >= 0 and a.e - a.s == 4 and _same(p + a.s, b"true", 4):
            return _pair(rt, owner, "warmup", "lambda-warmer")
        if _eq(p, _text(p, _at(&top, T_WORKER)), b"warmup"):
            return _pair(rt, owner, "warmup", "worker")
    t = _text(p, _at(&top, T_ROUTE))
    return _pair(rt, owner, "direct", _b(p, t))
