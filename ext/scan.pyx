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


cdef inline Py_ssize_t _field(const unsigned char* p, Py_ssize_t i, Py_ssize_t n,
                              Span* key, Span* value) noexcept nogil:
    """Read one `"key": value` from `i`: the index after the value, or -1 if malformed."""
    cdef Py_ssize_t key_end, value_end
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
    i = _skip_ws(p, i + 1, n)
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

from libc.string cimport memcmp, strlen


cdef int _fields_c(const unsigned char* p, Py_ssize_t start, Py_ssize_t n,
                   const char** keys, const Py_ssize_t* lens, int nkeys, Span* out) noexcept nogil:
    """Like fields(): every slot whose key matches gets the first occurrence's span."""
    cdef Py_ssize_t i, value_end, kl
    cdef int k, found = 0
    cdef unsigned char c0
    cdef Span key, value
    for k in range(nkeys):
        out[k].s = -1
        out[k].e = -1
    i = _open_object(p, start, n)
    while i >= 0:
        value_end = _field(p, i, n, &key, &value)
        if value_end < 0:
            break
        kl = key.e - key.s
        c0 = p[key.s] if kl > 0 else 0
        for k in range(nkeys):
            # Length and first byte first: most keys are rejected without a memcmp.
            if (lens[k] == kl and out[k].s < 0
                    and (kl == 0 or <unsigned char>keys[k][0] == c0)
                    and memcmp(p + key.s, keys[k], kl) == 0):
                out[k] = value
                found += 1
        i = _after(p, value_end, n)
    return found


cdef inline Span _in(Span* spans, int k) noexcept nogil:
    return spans[k]


cdef inline bint _has(Span sp) noexcept nogil:
    return sp.s >= 0


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
    return t.s >= 0 and t.e - t.s == ln and memcmp(p + t.s, lit, ln) == 0


cdef inline bint _ends_with(const unsigned char* p, Span t, const char* lit) noexcept nogil:
    cdef Py_ssize_t ln = <Py_ssize_t>strlen(lit)
    return t.s >= 0 and t.e - t.s >= ln and memcmp(p + t.e - ln, lit, ln) == 0


cdef bint _contains(const unsigned char* p, Span t, const char* lit) noexcept nogil:
    cdef Py_ssize_t ln = <Py_ssize_t>strlen(lit), i
    if t.s < 0:
        return False
    i = t.s
    while i + ln <= t.e:
        if memcmp(p + i, lit, ln) == 0:
            return True
        i += 1
    return False


cdef Span _first(const unsigned char* p, Span arr, Py_ssize_t n) noexcept nogil:
    cdef Span out
    cdef Py_ssize_t i, value_end
    out.s = -1
    out.e = -1
    if arr.s < 0:
        return out
    i = _skip_ws(p, arr.s, arr.e)
    if i >= arr.e or p[i] != 91:
        return out
    i = _skip_ws(p, i + 1, arr.e)
    value_end = _skip_value(p, i, arr.e)
    if value_end < 0:
        return out
    out.s = i
    out.e = value_end
    return out


# Top-level keys, in the order of these indices.
cdef enum:
    T_VERSION, T_ROUTEKEY, T_RAWPATH, T_RESOURCE, T_HTTPMETHOD, T_PATH, T_RC, T_RECORDS,
    T_records, T_EVENTSOURCE, T_EVENTSOURCEARN, T_BOOTSTRAP, T_SOURCE, T_DETAILTYPE, T_DETAIL,
    T_AWSLOGS, T_TRIGGER, T_USERPOOL, T_REQTYPE, T_RESPURL, T_STACKID, T_TYPE, T_METHODARN,
    T_ROUTEARN, T_AUTHTOKEN, T_DELIVERY, T_INVOCATION, T_ROUTE, T_COUNT

cdef const char* TOP_KEYS[T_COUNT]
TOP_KEYS[:] = [
    b"version", b"routeKey", b"rawPath", b"resource", b"httpMethod", b"path", b"requestContext",
    b"Records", b"records", b"eventSource", b"eventSourceArn", b"bootstrapServers", b"source",
    b"detail-type", b"detail", b"awslogs", b"triggerSource", b"userPoolId", b"RequestType",
    b"ResponseURL", b"StackId", b"type", b"methodArn", b"routeArn", b"authorizationToken",
    b"deliveryStreamArn", b"invocationId", b"",
]

cdef Py_ssize_t TOP_LENS[T_COUNT]
for _k in range(T_COUNT):
    TOP_LENS[_k] = <Py_ssize_t>strlen(TOP_KEYS[_k])

cdef enum:
    R_EVENTSOURCE, R_EVENTSOURCE_SNS, R_ARN, R_CF, R_SNS, R_S3, R_COUNT

cdef const char* RECORD_KEYS[R_COUNT]
RECORD_KEYS[:] = [b"eventSource", b"EventSource", b"eventSourceARN", b"cf", b"Sns", b"s3"]
cdef Py_ssize_t RECORD_LENS[R_COUNT]
for _k in range(R_COUNT):
    RECORD_LENS[_k] = <Py_ssize_t>strlen(RECORD_KEYS[_k])

cdef enum:
    C_ELB, C_HTTP, C_DOMAIN, C_COUNT

cdef const char* CONTEXT_KEYS[C_COUNT]
CONTEXT_KEYS[:] = [b"elb", b"http", b"domainName"]
cdef Py_ssize_t CONTEXT_LENS[C_COUNT]
for _k in range(C_COUNT):
    CONTEXT_LENS[_k] = <Py_ssize_t>strlen(CONTEXT_KEYS[_k])

cdef inline Span _one(const unsigned char* p, Span obj, const char* key, Py_ssize_t n) noexcept nogil:
    cdef Span out[1]
    cdef const char* keys[1]
    cdef Py_ssize_t lens[1]
    keys[0] = key
    lens[0] = <Py_ssize_t>strlen(key)
    _fields_c(p, obj.s, obj.e if obj.s >= 0 else n, keys, lens, 1, out)
    return out[0]


cdef inline bytes _b(const unsigned char* p, Span t):
    return b"" if t.s < 0 else p[t.s:t.e]


cdef inline bytes _join(const unsigned char* p, Span a, Span b):
    return _b(p, a) + b" " + _b(p, b)


def classify(bytes buf, bytes route_key):
    """(kind, route bytes or None): worker.classify's rules, run entirely in C."""
    cdef const unsigned char* p = buf
    cdef Py_ssize_t n = len(buf)
    cdef Span top[T_COUNT]
    cdef Span rec[R_COUNT]
    cdef Span ctx[C_COUNT]
    cdef const char* keys[T_COUNT]
    cdef Py_ssize_t lens[T_COUNT]
    cdef Span first, t, source, arn, version, a, b, domain, rk
    cdef int k
    for k in range(T_COUNT):
        keys[k] = TOP_KEYS[k]
        lens[k] = TOP_LENS[k]
    keys[T_ROUTE] = route_key
    lens[T_ROUTE] = len(route_key)
    if _fields_c(p, 0, n, keys, lens, T_COUNT, top) == 0:
        return "direct", None
    if _has(top[T_RECORDS]):
        first = _first(p, top[T_RECORDS], n)
        if first.s >= 0:
            _fields_c(p, first.s, first.e, RECORD_KEYS, RECORD_LENS, R_COUNT, rec)
        else:
            for k in range(R_COUNT):
                rec[k].s = -1
                rec[k].e = -1
        if _eq(p, _text(p, rec[R_EVENTSOURCE_SNS]), b"aws:sns"):
            return "sns", _b(p, _text(p, _one(p, rec[R_SNS], b"TopicArn", 0))) if rec[R_SNS].s >= 0 else None
        if _has(rec[R_CF]):
            t = _one(p, rec[R_CF], b"request", 0)
            if _has(t):
                a = _text(p, _one(p, t, b"method", 0))
                b = _text(p, _one(p, t, b"uri", 0))
            else:
                a.s = -1
                b.s = -1
            return "lambda-edge", _join(p, a, b)
        source = _text(p, rec[R_EVENTSOURCE])
        arn = _text(p, rec[R_ARN])
        if _eq(p, source, b"aws:sqs"):
            return "sqs", _b(p, arn) if arn.s >= 0 else None
        if _eq(p, source, b"aws:s3"):
            t = _one(p, rec[R_S3], b"bucket", 0) if _has(rec[R_S3]) else rec[R_S3]
            t = _one(p, t, b"name", 0) if _has(t) else t
            t = _text(p, t)
            return "s3", _b(p, t) if t.s >= 0 else None
        if _eq(p, source, b"aws:dynamodb"):
            return "dynamodb", _b(p, arn) if arn.s >= 0 else None
        if _eq(p, source, b"aws:kinesis"):
            return "kinesis", _b(p, arn) if arn.s >= 0 else None
        if _eq(p, source, b"aws:ses"):
            return "ses", None
    if _has(top[T_records]) and _has(top[T_DELIVERY]) and _has(top[T_INVOCATION]):
        t = _text(p, top[T_DELIVERY])
        return "firehose", _b(p, t) if t.s >= 0 else None
    source = _text(p, top[T_EVENTSOURCE])
    if _eq(p, source, b"aws:kafka"):
        t = _text(p, top[T_EVENTSOURCEARN])
        return "kafka", _b(p, t) if t.s >= 0 else None
    if _eq(p, source, b"SelfManagedKafka"):
        t = _text(p, top[T_BOOTSTRAP])
        return "kafka", _b(p, t) if t.s >= 0 else None
    if _eq(p, source, b"aws:mq") or _eq(p, source, b"aws:rmq"):
        t = _text(p, top[T_EVENTSOURCEARN])
        return "mq", _b(p, t) if t.s >= 0 else None
    if _has(top[T_AWSLOGS]) and _has(_one(p, top[T_AWSLOGS], b"data", 0)):
        return "cloudwatch-logs", None
    version = _text(p, top[T_VERSION])
    if _eq(p, version, b"0") and _has(top[T_DETAIL]):
        a = _text(p, top[T_SOURCE])
        b = _text(p, top[T_DETAILTYPE])
        if a.s >= 0 and b.s >= 0:
            if _eq(p, a, b"aws.events") and _eq(p, b, b"Scheduled Event"):
                return "schedule", _join(p, a, b)
            return "eventbridge", _join(p, a, b)
    if _has(top[T_TRIGGER]) and _has(top[T_USERPOOL]):
        t = _text(p, top[T_TRIGGER])
        return "cognito", _b(p, t) if t.s >= 0 else None
    if _has(top[T_REQTYPE]) and _has(top[T_RESPURL]) and _has(top[T_STACKID]):
        t = _text(p, top[T_REQTYPE])
        return "cfn-custom-resource", _b(p, t) if t.s >= 0 else None
    t = _text(p, top[T_TYPE])
    if _eq(p, t, b"TOKEN") and _has(top[T_AUTHTOKEN]) and _has(top[T_METHODARN]):
        a = _text(p, top[T_METHODARN])
        return "apigw-authorizer", _b(p, a) if a.s >= 0 else None
    if _eq(p, t, b"REQUEST") and (_has(top[T_METHODARN]) or _has(top[T_ROUTEARN])):
        a = _text(p, top[T_METHODARN])
        if a.s >= 0 and a.e > a.s:
            return "apigw-authorizer", _b(p, a)
        b = _text(p, top[T_ROUTEARN])
        return "apigw-authorizer", _b(p, b) if b.s >= 0 else None
    if _has(top[T_RC]):
        _fields_c(p, top[T_RC].s, top[T_RC].e, CONTEXT_KEYS, CONTEXT_LENS, C_COUNT, ctx)
        if _eq(p, version, b"2.0") and _has(top[T_ROUTEKEY]) and _has(top[T_RAWPATH]) and _has(ctx[C_HTTP]):
            a = _text(p, _one(p, ctx[C_HTTP], b"method", 0))
            b = _text(p, top[T_RAWPATH])
            domain = _text(p, ctx[C_DOMAIN])
            if _contains(p, domain, b".lambda-url.") and _ends_with(p, domain, b".on.aws"):
                return "function-url", _join(p, a, b)
            rk = _text(p, top[T_ROUTEKEY])
            if rk.s >= 0 and rk.e > rk.s and not _eq(p, rk, b"$default"):
                return "apigw-http", _b(p, rk)
            return "apigw-http", _join(p, a, b)
        if _has(ctx[C_ELB]) and _has(top[T_HTTPMETHOD]):
            return "alb", _join(p, _text(p, top[T_HTTPMETHOD]), _text(p, top[T_PATH]))
        if _has(top[T_HTTPMETHOD]) and _has(top[T_RESOURCE]):
            a = _text(p, top[T_HTTPMETHOD])
            b = _text(p, top[T_RESOURCE])
            if _eq(p, version, b"1.0"):
                return "apigw-http-v1", _join(p, a, b)
            return "apigw-rest", _join(p, a, b)
    t = _text(p, top[T_ROUTE])
    return "direct", _b(p, t) if t.s >= 0 else None
