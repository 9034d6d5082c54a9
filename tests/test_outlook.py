"""Mission Control's look ahead: the fitted trend, time to the queue bound, utilisation,
the throttle rate and cost per hour from `worker cost`'s own model."""

from __future__ import annotations

from typing import Any

import pytest

from worker.cost.model import HOURS_PER_MONTH, Profile, estimate, load_prices
from worker.telemetry import outlook
from worker.telemetry.outlook import History, seconds_to_bound, slope

PRICES = load_prices()
LANES = {"sprinter": (4, 8), "marathon": (2, 8)}


def snap(
    depth: float = 0,
    busy: float = 0,
    invocations: float = 0,
    seconds: float = 0.0,
    rejections: float = 0,
    lane: str = "sprinter",
) -> dict[str, Any]:
    """A registry snapshot in `Metrics.snapshot()`'s shape, one lane's figures set."""
    hist = [0.0] * 21
    hist[-2], hist[-1] = seconds, invocations
    return {
        "counters": {
            f"worker_invocations_total|lane={lane}": invocations,
            f"worker_rejections_total|lane={lane}": rejections,
        },
        "gauges": {
            f"worker_queue_depth|lane={lane}": depth,
            f"worker_in_flight|lane={lane}": busy,
            "worker_queue_depth|lane=marathon": 0.0,
            "worker_in_flight|lane=marathon": 0.0,
        },
        "hists": {f"worker_invocation_duration_seconds|lane={lane}": hist},
    }


def test_the_slope_is_the_least_squares_fit() -> None:
    assert slope([(0, 1), (1, 3), (2, 5), (3, 7)]) == pytest.approx(2.0)
    assert slope([(0, 4), (1, 4), (2, 4)]) == 0.0
    assert slope([(0, 0), (1, 2), (2, 1), (3, 3)]) == pytest.approx(0.8)  # noisy, rising
    assert slope([(0, 1), (1, 2)]) is None  # two points are no trend
    assert slope([(5, 1), (5, 2), (5, 3)]) is None  # no spread in time


def test_a_rising_queue_has_a_finite_time_to_its_bound() -> None:
    trend = slope([(t, float(t)) for t in range(5)])  # one more waiting a second
    assert seconds_to_bound(4, 10, trend) == pytest.approx(6.0)


def test_a_flat_or_falling_queue_has_none() -> None:
    assert seconds_to_bound(3, 10, slope([(t, 3.0) for t in range(5)])) is None
    assert seconds_to_bound(3, 10, slope([(t, 7.0 - t) for t in range(5)])) is None
    assert seconds_to_bound(3, 10, None) is None


def test_a_queue_at_its_bound_has_zero() -> None:
    assert seconds_to_bound(10, 10, None) == 0.0
    assert seconds_to_bound(10, 10, -1.0) == 0.0


def test_the_history_forecasts_from_its_window_only() -> None:
    history = History(window=3, lanes=dict(LANES))
    for t, depth in enumerate([7, 7, 0, 2, 4, 6]):  # the early 7s fall out of the window
        summary = history.sample(snap(depth=depth, busy=4), now=float(t))
    lane = summary["lanes"]["sprinter"]
    assert lane["slope"] == pytest.approx(2.0)
    assert lane["seconds_to_bound"] == pytest.approx(1.0)  # 6 now, bound 8, two a second
    assert summary["lanes"]["marathon"]["seconds_to_bound"] is None
    ahead = outlook.combine([summary], window=3, prices=PRICES)
    assert ahead["saturation"] == {
        "lane": "sprinter",
        "seconds": pytest.approx(1.0),
        "warning": True,
    }


def test_a_forecast_past_the_window_is_no_warning() -> None:
    history = History(window=10, lanes=dict(LANES))
    for t in range(4):
        summary = history.sample(snap(depth=t * 0.1), now=float(t))  # 0.1 a second: 77 s off
    ahead = outlook.combine([summary], window=10, prices=PRICES)
    assert ahead["lanes"]["sprinter"]["seconds_to_bound"] > 10
    assert ahead["lanes"]["sprinter"]["warning"] is False and ahead["saturation"] is None


def test_processes_add_up_and_the_soonest_lane_warns() -> None:
    def part(busy: float, depth: float, soon: float | None) -> dict[str, Any]:
        lane = {"busy": busy, "slots": 4, "depth": depth, "bound": 8, "seconds_to_bound": soon}
        return {
            "span_s": 10.0,
            "lanes": {"sprinter": lane},
            "invocations": 0,
            "duration_s": 0.0,
            "cpu_s": 0.0,
            "rejections": 0,
            "requests": 0,
            "rss_mb": 50.0,
        }

    ahead = outlook.combine([part(4, 7, 3.0), part(1, 0, None), {}], window=60, prices=PRICES)
    lane = ahead["lanes"]["sprinter"]
    assert (lane["busy"], lane["slots"], lane["depth"], lane["bound"]) == (5, 8, 7, 16)
    assert lane["utilisation"] == pytest.approx(5 / 8)
    assert ahead["saturation"]["seconds"] == 3.0
    assert ahead["throttle"]["rate"] is None  # no request: no rate
    assert ahead["cost"] is None  # no invocation finished: nothing to price
    assert ahead["rps"] == 0.0  # measured, and nothing finished


def test_the_served_rate_adds_each_process_over_its_own_span() -> None:
    def part(invocations: int, span: float) -> dict[str, Any]:
        return {"span_s": span, "invocations": invocations}

    assert outlook.served_rate([part(100, 10.0), part(30, 2.0)]) == pytest.approx(25.0)
    assert outlook.served_rate([part(0, 0.0)]) is None  # one sample: no span, no rate yet


@pytest.mark.parametrize(("busy", "slots"), [(0, 4), (2, 4), (4, 4), (6, 4), (-1, 4), (3, 0)])
def test_utilisation_is_a_share(busy: float, slots: float) -> None:
    assert 0.0 <= outlook.utilisation(busy, slots) <= 1.0


def test_utilisation_per_lane_in_the_outlook_is_a_share() -> None:
    history = History(window=60, lanes=dict(LANES))
    for t, busy in enumerate([0, 2, 4, 4]):
        summary = history.sample(snap(busy=busy), now=float(t))
    lanes = outlook.combine([summary], window=60, prices=PRICES)["lanes"]
    assert lanes["sprinter"]["utilisation"] == 1.0 and lanes["marathon"]["utilisation"] == 0.0
    assert all(0.0 <= lane["utilisation"] <= 1.0 for lane in lanes.values())


def test_the_throttle_rate_counts_arrivals_still_waiting() -> None:
    history = History(window=60, lanes=dict(LANES))
    history.sample(snap(invocations=10), now=0.0)
    history.sample(snap(invocations=50, busy=4, depth=8), now=1.0)
    summary = history.sample(snap(invocations=90, busy=4, depth=8, rejections=2), now=2.0)
    # 80 finished, 12 still hold a slot or a queue place, 2 refused: 94 arrived.
    assert summary["requests"] == 94
    throttle = outlook.combine([summary], window=60, prices=PRICES)["throttle"]
    assert throttle["rate"] == pytest.approx(2 / 94) and throttle["line"] == 0.01
    assert outlook.throttle_rate(0, 10) == 0.0 and outlook.throttle_rate(1, 0) is None


def test_cost_per_hour_is_the_cost_model_over_a_months_hours() -> None:
    profile = Profile(rps=200, duration_ms=45, memory_mb=1024, cpu_ms=30)
    rows = outlook.cost_per_hour(profile, PRICES)
    expected = estimate(profile, PRICES)
    assert [r["platform"] for r in rows] == [e.platform for e in expected]
    for row, e in zip(rows, expected, strict=True):
        assert row["hourly"] == pytest.approx(e.monthly / HOURS_PER_MONTH)
        assert row["units"] == e.units


def test_the_live_profile_feeds_the_same_model() -> None:
    # 100 invocations over 10 s, 5 s of handler time, 2 s of CPU: 10 req/s, 50 ms, 20 ms.
    history = History(window=60, lanes=dict(LANES))
    history.samples.append(outlook.read(snap(), LANES, 0.0, cpu_s=1.0, rss_mb=90.0))
    history.samples.append(
        outlook.read(snap(invocations=100, seconds=5.0), LANES, 10.0, cpu_s=3.0, rss_mb=100.0)
    )
    ahead = outlook.combine([history.summary()], window=60, memory_mb=0, arch="arm64",
                            prices=PRICES)  # fmt: skip
    cost = ahead["cost"]
    assert cost["rps"] == pytest.approx(10.0)
    assert cost["duration_ms"] == pytest.approx(50.0) and cost["cpu_ms"] == pytest.approx(20.0)
    assert cost["memory_mb"] == outlook.MIN_MEMORY_MB  # a smaller RSS is billed as Lambda's least
    profile = Profile(rps=10, duration_ms=50, memory_mb=128, cpu_ms=20, arch="arm64")
    expected = {e.platform: e.monthly / HOURS_PER_MONTH for e in estimate(profile, PRICES)}
    assert {r["platform"]: pytest.approx(r["hourly"]) for r in cost["per_hour"]} == expected
    assert cost["cheapest"] == min(expected, key=expected.__getitem__)
    configured = outlook.combine([history.summary()], window=60, memory_mb=2048, prices=PRICES)
    assert configured["cost"]["memory_mb"] == 2048  # the function's configured memory wins
