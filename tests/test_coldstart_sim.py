"""The cold-start simulator's accounting: on-demand environments, warm capacity, throttles,
costs, on short traces whose answers can be worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import coldstart_sim as sim
from bench import traces
from worker.forecast.schedule import Billing, on_demand_cost, units_cost


def counts_for(need: list[int]) -> np.ndarray:
    """Per-minute counts whose requests in flight need exactly `need` environments (one
    request each): the largest count whose Little's law plus jitter stays within it."""
    out = []
    for n in need:
        count = 0
        while n and sim.in_flight(np.array([(count + 1) / 60]))[0] <= n:
            count += 1
        out.append(float(count))
    return np.array(out)


def test_the_pool_reuses_newest_first_and_reclaims_the_idle() -> None:
    pool = sim.Pool(idle_reclaim=5)
    # Worked by hand: 1 new; 2 more; reuse 2; idle; at minute 9 the env last used at
    # minute 1 is gone (8 ≥ 5 idle) and so are the others: 4 new.
    created = [pool.serve(t, n) for t, n in enumerate([1, 3, 2, 0, 0, 0, 0, 0, 0, 4])]
    assert created == [1, 2, 0, 0, 0, 0, 0, 0, 0, 4]
    assert pool.created == 7 and pool.alive == 4


def test_on_demand_cold_starts_are_the_environments_created() -> None:
    need = [1, 3, 2, 0, 0, 0, 0, 0, 0, 4, 4, 1]
    counts = counts_for(need)
    result = sim.replay(counts, sim.LAMBDA, "on demand")
    pool = sim.Pool()
    expected = sum(pool.serve(t, n) for t, n in enumerate(need))
    assert result.cold_starts == expected == pool.created
    assert result.throttled == 0 and result.inits == 0
    assert result.cost == pytest.approx(
        on_demand_cost(float(counts.mean() / 60), len(counts) * 60, Billing(duration_ms=200))
    )


def test_constant_load_with_a_perfect_schedule_has_no_cold_start() -> None:
    counts = counts_for([12] * 120)
    on_demand = sim.replay(counts, sim.LAMBDA, "on demand")
    assert on_demand.cold_starts == 12  # the first minute's, then all reused
    floor = np.full(len(counts), 12, dtype=np.int64)
    # A perfect schedule with a target tracking that never wants more than the floor.
    scheduled = sim.replay(counts, sim.LAMBDA, "schedule", floor, backstop=1.0)
    assert scheduled.cold_starts == 0 and scheduled.throttled == 0
    assert scheduled.inits == 12  # started ahead of their requests, once
    busy = counts.sum() / 60 * 0.2  # request-minutes in flight by Little's law
    assert scheduled.utilisation == pytest.approx(busy / (12 * len(counts)))
    per_minute = units_cost("lambda", 12, counts[0] / 60, 60, Billing(duration_ms=200))
    assert scheduled.cost == pytest.approx(per_minute * len(counts))


def test_a_fleet_refuses_beyond_its_capacity_until_tracking_catches_up() -> None:
    base = counts_for([sim.SLOTS_PER_TASK * 2] * 10)[0]
    counts = np.array([base] * 10 + [base * 4] * 30)
    result = sim.replay(counts, sim.FLEET, "reactive")
    assert result.cold_starts == 0  # tasks start before they take traffic
    assert result.throttled > 0
    # The step's first minutes are refused in part: the alarm needs its datapoints and the
    # new tasks their start; after that nothing is.
    late = sim.replay(counts[:10].copy(), sim.FLEET, "reactive")
    assert late.throttled == 0
    assert result.throttled < counts[10:].sum() * 0.5


def test_warm_capacity_spills_to_on_demand_on_lambda() -> None:
    counts = counts_for([5] * 5 + [15] * 5)
    floor = np.full(len(counts), 5, dtype=np.int64)
    result = sim.replay(counts, sim.LAMBDA, "schedule", floor, backstop=1.0)
    # Ten requests' worth beyond the five warm: ten on-demand environments, cold.
    assert result.cold_starts == 10
    assert result.throttled == 0


def test_traces_are_seeded_and_shaped() -> None:
    a, b = traces.make("bursts", weeks=2, seed=3), traces.make("bursts", weeks=2, seed=3)
    assert np.array_equal(a.counts, b.counts)
    assert len(a.counts) == 2 * traces.MINUTES_PER_WEEK
    flat = traces.make("daily_weekly", weeks=2, seed=3)
    # Weekends are quieter than weekdays; nights than days.
    days = flat.expected.reshape(-1, traces.MINUTES_PER_DAY).sum(axis=1)
    assert days[5] < 0.7 * days[2] and days[6] < 0.7 * days[2]
    hours = flat.expected[: traces.MINUTES_PER_DAY].reshape(24, 60).mean(axis=1)
    assert hours[3] < 0.2 * hours[14]
    crowd = traces.make("flash_crowd", weeks=2, seed=3)
    ratio = crowd.week(-1).counts / crowd.week(-1).expected
    assert ratio.max() > 5  # the flash crowd, in the last week only
    assert (crowd.week(0).counts / crowd.week(0).expected).max() < 5


def test_quick_run_reports_every_trace_policy_and_target(tmp_path: Path) -> None:
    summary = sim.main(["--quick", "--out", str(tmp_path)])
    assert set(summary["traces"]) == set(traces.KINDS)
    for result in summary["traces"].values():
        assert set(result["figures"]["lambda"]) == {"on demand", "reactive", "schedule"}
        assert set(result["figures"]["fleet"]) == {"reactive", "schedule"}
        assert len(result["targets"]) == 4
        assert all(isinstance(v["holds"], bool) for v in result["targets"].values())
    assert json.loads((tmp_path / "coldstart_sim.json").read_text())["method"]["replayed_days"] == 2
    assert "| flash_crowd | lambda | on demand |" in (tmp_path / "coldstart_sim.md").read_text()
