from __future__ import annotations

import pytest

from worker.profiles import MARATHON, SPRINTER, Profiles, parse_overrides


def test_unknown_routes_are_sprinters_and_slow_ones_become_marathons() -> None:
    p = Profiles(slow_seconds=1.0)
    assert p.lane_for("GET /new") == SPRINTER
    for _ in range(5):
        p.observe("GET /report", 3.0, 100)
        p.observe("GET /fast", 0.01, 100)
    assert p.lane_for("GET /report") == MARATHON
    assert p.lane_for("GET /fast") == SPRINTER


def test_a_route_that_speeds_up_moves_back() -> None:
    p = Profiles(slow_seconds=1.0)
    p.observe("r", 2.0, 10)
    assert p.lane_for("r") == MARATHON
    for _ in range(32):  # the window forgets the slow ones
        p.observe("r", 0.1, 10)
    assert p.lane_for("r") == SPRINTER


def test_large_payloads_are_marathons() -> None:
    p = Profiles(large_bytes=1000)
    p.observe("upload", 0.01, 50_000)
    assert p.lane_for("upload") == MARATHON


def test_overrides_win_and_the_table_is_bounded() -> None:
    p = Profiles(
        overrides=parse_overrides("GET /x=marathon, sqs:arn:aws:sqs:q=sprinter"), max_routes=2
    )
    assert p.lane_for("GET /x") == MARATHON
    p.observe("sqs:arn:aws:sqs:q", 10.0, 1)
    assert p.lane_for("sqs:arn:aws:sqs:q") == SPRINTER
    p.observe("a", 5.0, 1)
    p.observe("b", 5.0, 1)  # past the bound: not profiled
    assert len(p.routes) == 2 and p.lane_for("b") == SPRINTER


def test_bad_overrides_are_refused() -> None:
    with pytest.raises(ValueError, match="WORKER_ROUTES"):
        parse_overrides("GET /x=fast")
