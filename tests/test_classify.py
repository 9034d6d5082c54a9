"""The classifier: every documented shape right, in any key order or layout, by both the
compiled scanner and its pure-Python twin; the two agree on any input, and neither fails."""

from __future__ import annotations

import collections
import random

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.events import corpus
from worker import scan
from worker.classify import Classification, Classifier

SAMPLES = corpus()
twin = Classifier(scan)
try:
    from worker import _classify as _scan  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - the build always compiles it
    _scan = None
compiled = Classifier(_scan) if _scan is not None else None
BOTH = [pytest.param(twin, id="twin"), pytest.param(compiled, id="extension")]

FORMS = {
    "aws-order": lambda e: orjson.dumps(e),
    "sorted": lambda e: orjson.dumps(e, option=orjson.OPT_SORT_KEYS),
    "pretty": lambda e: orjson.dumps(e, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2),
}


def test_the_extension_is_built() -> None:
    # The build compiles ext/classify.pyx; a missing extension would silently halve these tests.
    assert compiled is not None


def test_at_least_three_samples_per_kind() -> None:
    counts = collections.Counter(kind for kind, _, _ in SAMPLES)
    assert len(counts) >= 23
    assert min(counts.values()) >= 3, counts


@pytest.mark.parametrize("classifier", BOTH)
@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize(
    ("kind", "route", "event"), SAMPLES, ids=[f"{k}-{i % 3}" for i, (k, _, _) in enumerate(SAMPLES)]
)
def test_every_sample_in_every_form(
    classifier: Classifier, form: str, kind: str, route: str, event: dict
) -> None:  # type: ignore[type-arg]
    assert classifier(FORMS[form](event)) == Classification(kind, route)


@pytest.mark.parametrize("classifier", BOTH)
def test_hostile_inputs_are_direct_and_never_fail(classifier: Classifier) -> None:
    cases = [
        b"", b"   ", b"null", b"[]", b"{", b'{"', b'{"a', b'{"a":', b'{"a":"', b"\xff\xfe\x00",
        b"[" * 200_000, b'{"a":' + b"[" * 200_000, b'{"a":"' + b"x" * 1_000_000,
        b'{"Records":[', b'{"Records":[{"eventSource":"aws:sqs"',
        b'{"version":"2.0","requestContext":{',
        b'{"\\"Records":[]}', '{"action":"caf\u00e9"}'.encode(), b'{"action":"\xff\xfe"}',
    ]  # fmt: skip
    for raw in cases:
        result = classifier(raw)
        assert isinstance(result, Classification)
    assert classifier('{"action":"caf\u00e9"}'.encode()) == ("direct", "caf\u00e9")
    assert classifier(b'{"action":"\xff"}').route == "\ufffd"  # invalid UTF-8 replaced


def test_route_key_is_configurable() -> None:
    assert Classifier(scan, route_key="op")(b'{"op": "sync", "action": "x"}') == ("direct", "sync")


@pytest.mark.parametrize("classifier", BOTH)
def test_warmup_pings_only_where_no_aws_shape_claims_the_event(classifier: Classifier) -> None:
    eventbridge = {"source": "serverless-plugin-warmup", "detail-type": "x", "detail": {}}
    assert classifier(orjson.dumps(eventbridge)).kind == "eventbridge"
    sqs = {"Records": [{"eventSource": "aws:sqs", "eventSourceARN": "q"}], "warmer": True}
    assert classifier(orjson.dumps(sqs)).kind == "sqs"
    # lambda-warmer's flag is the JSON `true` itself, and a truncated ping is still one.
    assert classifier(b'{"warmer" : true , "concurrency": 2}') == ("warmup", "lambda-warmer")
    assert classifier(b'{"warmer":1}').kind == "direct"
    assert classifier(b'{"warmer":true').kind == "warmup"


def _mutations(raw: bytes, rnd: random.Random) -> list[bytes]:
    cut = rnd.randrange(len(raw) + 1)
    pos = rnd.randrange(len(raw))
    flipped = raw[:pos] + bytes([rnd.randrange(256)]) + raw[pos + 1 :]
    inserted = raw[:pos] + rnd.choice([b'"', b"\\", b"{", b"]", b",", b":"]) + raw[pos:]
    return [raw[:cut], flipped, inserted, raw[pos:]]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=len(SAMPLES) - 1), st.randoms(use_true_random=False))
def test_twin_and_extension_agree_on_mutated_events(index: int, rnd: random.Random) -> None:
    assert compiled is not None
    raw = FORMS[rnd.choice(list(FORMS))](SAMPLES[index][2])
    for mutated in _mutations(raw, rnd):
        assert twin(mutated) == compiled(mutated)


_keys = st.sampled_from(
    ["Records", "eventSource", "version", "requestContext", "http", "detail", "source",
     "detail-type", "routeKey", "rawPath", "action", "elb", "warmer", "worker", "x"]
) | st.text(max_size=5)  # fmt: skip
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.sampled_from(["warmup", "serverless-plugin-warmup"])  # the warm-up rule's values
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_twin_and_extension_agree_on_generated_json(value: object) -> None:
    assert compiled is not None
    raw = orjson.dumps(value)
    assert twin(raw) == compiled(raw)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.integers(-5, 310), st.integers(-5, 310))
def test_scanners_agree_on_random_bytes(raw: bytes, start: int, end: int) -> None:
    assert _scan is not None
    wanted = frozenset((b"a", b"Records", b"version", b""))
    assert scan.fields(raw, start, end, wanted) == _scan.fields(raw, start, end, wanted)
    assert scan.first_element(raw, start, end) == _scan.first_element(raw, start, end)
    assert twin(raw) == compiled(raw)  # type: ignore[misc]


def _block_edges() -> list[bytes]:
    """Strings and containers whose quotes, escapes and brackets fall on every position
    around the compiled scanner's 16-byte blocks, escapes running across a block's end."""
    cases = []
    for pad in range(0, 36):
        for slashes in range(0, 4):
            text = b"x" * pad + b"\\" * slashes + b'"'  # an odd run escapes the quote
            tail = b'"}' if slashes % 2 else b"}"
            cases.append(b'{"a":"' + text + tail)
            cases.append(b'{"a":{"b":"' + text + b'}]"' * (slashes % 2) + b', "c":[1]}' + tail)
            nested = b"{" * (pad % 5) + b'"' + text + b"]" * (pad % 5)
            cases.append(b'{"a":[' + nested + b'],"Records":[]}')
        cases.append(b'{"b":' + b"[" * pad + b"]" * pad + b',"a":"y"}')
        cases.append(b'{"b":{"k":"' + b"}" * pad + b'"},"a":"y"}')  # brackets inside a string
    return cases


@pytest.mark.parametrize("raw", _block_edges())
def test_scanners_agree_around_block_edges(raw: bytes) -> None:
    assert _scan is not None
    wanted = frozenset((b"a", b"b", b"c", b"Records"))
    for cut in (len(raw), len(raw) - 1, len(raw) // 2):
        assert scan.fields(raw[:cut], 0, cut, wanted) == _scan.fields(raw[:cut], 0, cut, wanted)
        assert twin(raw[:cut]) == compiled(raw[:cut])  # type: ignore[misc]


def test_extension_call_forms_agree() -> None:
    """The vectorcall path, tp_call (what `type(obj).__call__` runs) and kind_route give the
    same answer, and a wrong call is a TypeError, not a crash."""
    assert compiled is not None and compiled.compiled is not None
    obj = compiled.compiled
    raw = orjson.dumps(SAMPLES[0][2])
    assert obj(raw) == type(obj).__call__(obj, raw) == tuple(obj.kind_route(raw))
    assert obj(bytearray(raw)) == obj(raw)
    assert type(obj(raw)) is Classification
    for bad in ((), (raw, raw)):
        with pytest.raises(TypeError):
            obj(*bad)
    with pytest.raises(TypeError):
        obj(raw=raw)


# Wanted objects whose fields a bare value with a quote in it (or a missing end) puts out
# of step with bracket counting: the compiled reader must read them as the twin does,
# within the span bracket counting gives (found by bench/fuzz.py).
OUT_OF_STEP = [
    b'{"Records":[{"EventSource":"aws:sns","Sns":{"Type":N","X":"}","TopicArn":"arn:x"}}]}',
    b'{"Records":[{"cf":{"request":{"a":b","c":"}","method":"GET","uri":"/"}}}]}',
    b'{"Records":[{"cf":{"config":x","c":"}","request":{"method":"GET","uri":"/"}}}]}',
    b'{"Records":[{"cf":{"config":{},"request":x","y":{"method":"GET","uri":"/"}}}]}',
    b'{"Records":[{"eventSource":"aws:s3","s3":{"a":b","c":"}","bucket":{"name":"b"}}}]}',
    b'{"version":"2.0","routeKey":"$default","rawPath":"/",'
    b'"requestContext":{"a":b","c":"}","http":{"method":"GET"}}}',
    b'{"version":"2.0","routeKey":"GET /","rawPath":"/","requestContext":{"http":{"x":[}}}',
    b'{"awslogs":{"x":y","c":"}","data":"z"}}',
    # requestContext read before a Records key that decides nothing: its fields stay.
    b'{"requestContext":{"elb":{}},"httpMethod":"GET","path":"/x","Records":[1]}',
]


@pytest.mark.parametrize("raw", OUT_OF_STEP)
def test_out_of_step_nested_objects_read_as_the_twin_reads_them(raw: bytes) -> None:
    assert compiled is not None
    for cut in range(len(raw), 0, -7):
        assert twin(raw[:cut]) == compiled(raw[:cut])


def test_a_result_held_is_never_refilled() -> None:
    """The extension hands out its last result again only when nobody else holds it: a
    kept result, or one in a list, keeps its answer through later calls."""
    assert compiled is not None and compiled.compiled is not None
    obj = compiled.compiled
    raws = [orjson.dumps(event) for _, _, event in SAMPLES]
    for call in (obj, obj.kind_route):
        kept = [call(raw) for raw in raws]
        assert [tuple(k) for k in kept] == [tuple(twin(raw)) for raw in raws]
        assert len({id(k) for k in kept}) == len(kept)
        first = call(raws[0])
        second = call(raws[-1])
        assert tuple(first) == tuple(twin(raws[0])) and tuple(second) == tuple(twin(raws[-1]))
        for item in call(raws[1]):  # iterating holds the result: the next call must not refill it
            assert item in tuple(twin(raws[1]))
            assert tuple(call(raws[2])) == tuple(twin(raws[2]))
    assert all(tuple(k) == tuple(twin(raw)) for k, raw in zip(kept, raws, strict=True))


def test_a_dropped_result_comes_back_refilled() -> None:
    assert compiled is not None and compiled.compiled is not None
    obj = compiled.compiled
    raw_a, raw_b = orjson.dumps(SAMPLES[0][2]), orjson.dumps(SAMPLES[-1][2])
    first_id = id(obj(raw_a))  # dropped at once
    again = obj(raw_b)
    assert id(again) == first_id and type(again) is Classification
    assert again == twin(raw_b)
