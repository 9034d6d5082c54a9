"""The classification benchmark's baseline answers the same question as the classifier,
so the ratio it prints compares equal work."""

from __future__ import annotations

import orjson
import pytest

from bench.classify import FORMS, parsed
from tests.events import corpus
from worker.classify import classify


@pytest.mark.parametrize("form", list(FORMS))
def test_baseline_gives_the_classifiers_kind_and_route(form: str) -> None:
    for kind, name, event in corpus():
        raw = FORMS[form](event)
        assert parsed(raw) == tuple(classify.kind_route(raw)), (kind, name)
        assert parsed(raw)[0] == kind


def test_baseline_on_what_is_not_an_event() -> None:
    for raw in (b"[]", b"3", b'"x"', b"{}", orjson.dumps({"action": "go"})):
        assert parsed(raw) == tuple(classify.kind_route(raw))
