from __future__ import annotations

import ast
import math
import random
from pathlib import Path

import worker
from worker.telemetry.metrics import (
    BUCKETS,
    FAMILIES,
    Labels,
    LaneStats,
    Metrics,
    SnapshotStore,
    _count,
    merge,
    render,
)


def test_render_prometheus_text() -> None:
    m = Metrics()
    lane = (("lane", "default"),)
    m.inc("worker_invocations_total", lane, 3)
    m.observe("worker_invocation_duration_seconds", lane, 0.002)
    m.observe("worker_invocation_duration_seconds", lane, 10_000)  # past every bucket
    m.gauge("worker_in_flight", lane, lambda: 2)
    text = render(merge([m.snapshot()]))
    assert "# TYPE worker_invocations_total counter" in text
    assert 'worker_invocations_total{lane="default"} 3' in text
    assert 'worker_in_flight{lane="default"} 2' in text
    assert 'worker_invocation_duration_seconds_bucket{lane="default",le="0.001"} 0' in text
    assert 'worker_invocation_duration_seconds_bucket{lane="default",le="0.0025"} 1' in text
    assert f'le="{BUCKETS[-1]!r}"}} 1' in text
    assert 'worker_invocation_duration_seconds_bucket{lane="default",le="+Inf"} 2' in text
    assert 'worker_invocation_duration_seconds_count{lane="default"} 2' in text


def test_snapshots_merge_across_processes_and_survive_restarts(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path / "m"))
    a, b = Metrics(), Metrics()
    a.inc("worker_invocations_total", (("lane", "default"),), 5)
    b.inc("worker_invocations_total", (("lane", "default"),), 7)
    b.gauge("worker_in_flight", (("lane", "default"),), lambda: 1)
    store.write("worker-0", a.snapshot())
    store.write("worker-1", b.snapshot())
    text = render(merge(store.read_all()))
    assert 'worker_invocations_total{lane="default"} 12' in text
    # worker-1 dies; its replacement continues the counter but not the gauge.
    again = Metrics()
    again.restore(store.read("worker-1") or {})
    snap = again.snapshot()
    assert snap["counters"] == {"worker_invocations_total|lane=default": 7.0}
    assert snap["gauges"] == {}


def test_every_metric_the_worker_records_has_a_type_and_help() -> None:
    """A name missing from FAMILIES would render as `untyped` with its name for help."""
    recorded: set[str] = set()
    for path in Path(worker.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("inc", "observe", "gauge")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and str(node.args[0].value).startswith("worker_")
            ):
                recorded.add(str(node.args[0].value))
    assert "worker_sqs_receives_total" in recorded  # the scan sees the sources' calls
    assert sorted(recorded - set(FAMILIES)) == []


def test_lane_stats_fold_durations_into_the_same_histogram_as_one_by_one() -> None:
    rng = random.Random(5)
    durations = [rng.choice(BUCKETS) for _ in range(300)]  # exactly on a bound: `le`
    durations += [rng.uniform(0, 1000) for _ in range(300)]  # past the last bound too
    durations += [rng.expovariate(1000) for _ in range(LaneStats.FOLD_AT)]  # folds midway
    one_by_one = [0.0] * (len(BUCKETS) + 3)
    stats = LaneStats("sprinter")
    for i, seconds in enumerate(durations):
        _count(one_by_one, seconds)
        stats.record(seconds, "Boom" if i % 100 == 0 else None)
    assert stats.invocations == len(durations)
    assert len(stats.durations) < LaneStats.FOLD_AT  # it folded once along the way
    counters, hists = stats.export()
    (hist,) = hists.values()
    assert hist[:-2] == one_by_one[:-2] and hist[-1] == one_by_one[-1] == len(durations)
    assert math.isclose(hist[-2], one_by_one[-2])
    assert counters == {
        "worker_invocations_total|lane=sprinter": float(len(durations)),
        "worker_errors_total|lane=sprinter,type=Boom": float(len(range(0, len(durations), 100))),
    }
    assert stats.durations == [] and stats.export()[1] == hists  # exporting again: the same


def test_a_lane_tells_bulk_of_every_invocation_once_and_the_listener_of_each_error() -> None:
    told: list[tuple[Labels, list[float]]] = []
    errors: list[tuple[str, Labels, float]] = []
    stats = LaneStats(
        "sprinter",
        listener=lambda name, labels, value: errors.append((name, labels, value)),
        bulk=lambda labels, durations: told.append((labels, list(durations))),
    )
    durations = [i / 1e6 for i in range(LaneStats.FOLD_AT + 10)]
    for i, seconds in enumerate(durations):
        stats.record(seconds, "Boom" if i == 3 else None)
    assert [len(d) for _, d in told] == [LaneStats.FOLD_AT]  # the fold along the way
    stats.export()  # a scrape folds the rest
    stats.fold()  # nothing left: nothing told
    assert [d for _, d in told] == [durations[: LaneStats.FOLD_AT], durations[LaneStats.FOLD_AT :]]
    assert all(labels == (("lane", "sprinter"),) for labels, _ in told)
    assert errors == [("worker_errors_total", (("lane", "sprinter"),), 1.0)]


def test_listen_reaches_lanes_made_before_and_after_and_fold_lanes_folds_them_all() -> None:
    metrics = Metrics()
    before = metrics.lane("sprinter")
    told: list[tuple[Labels, int]] = []
    metrics.listen(lambda *_: None, lambda labels, durations: told.append((labels, len(durations))))
    after = metrics.lane("marathon")
    before.record(0.001, None)
    after.record(2.0, None)
    after.record(3.0, None)
    metrics.fold_lanes()
    assert sorted(told) == [((("lane", "marathon"),), 2), ((("lane", "sprinter"),), 1)]
    assert before.durations == after.durations == []
