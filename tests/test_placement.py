from __future__ import annotations

import time
from typing import Any

from worker.placement import MAX_FUNCTIONS, TRUST, TRUST_MAX, Placements, run_counted

# (voluntary switches, involuntary switches, wall seconds, CPU seconds or -1.0: not read)
QUICK = (0, 0, 0.00001, -1.0)  # 10 µs, no context switch
BLOCKED = (1, 0, 0.00001, -1.0)
LONG = (0, 0, 0.005, -1.0)  # 5 ms without leaving its core: 5 ms of CPU, over the 1 ms bound
PREEMPTED_LONG = (0, 1, 0.005, -1.0)  # 5 ms, some of it spent by others: unclear


def handler(event: Any, context: Any) -> Any:
    return event


def _judged(placements: Placements, fn: Any, *costs: tuple[int, int, float, float]) -> Any:
    record = placements.of(fn)
    assert record is not None
    for cost in costs:
        placements.judge(record, cost)
    return record


def test_a_function_moves_onto_the_loop_after_a_streak_of_calls_that_never_blocked() -> None:
    placements = Placements(0.001)
    record = _judged(placements, handler, *[QUICK] * (TRUST - 1))
    assert not record.on_loop
    placements.judge(record, QUICK)
    assert record.on_loop


def test_a_blocked_or_long_call_breaks_the_streak() -> None:
    for bad in (BLOCKED, LONG):
        placements = Placements(0.001)
        record = _judged(placements, handler, *[QUICK] * (TRUST - 1), bad, *[QUICK] * (TRUST - 1))
        assert not record.on_loop  # the streak started again after the bad call
        placements.judge(record, QUICK)
        assert record.on_loop


def test_a_call_that_blocks_on_the_loop_sends_it_back_for_a_streak_twice_as_long() -> None:
    placements = Placements(0.001)
    record = _judged(placements, handler, *[QUICK] * TRUST, BLOCKED)
    assert not record.on_loop and record.needed == 2 * TRUST
    placements.judge(record, QUICK)
    _judged(placements, handler, *[QUICK] * (2 * TRUST - 2))
    assert not record.on_loop
    placements.judge(record, QUICK)
    assert record.on_loop


def test_the_streak_asked_grows_to_its_bound_for_a_function_that_keeps_blocking() -> None:
    placements = Placements(0.001)
    record = placements.of(handler)
    assert record is not None
    asked = []
    for _ in range(12):
        _judged(placements, handler, *[QUICK] * record.needed, BLOCKED)
        asked.append(record.needed)
    assert asked == [min(TRUST << n, TRUST_MAX) for n in range(1, 13)]


def test_after_a_long_stay_on_the_loop_one_blocked_call_is_the_exception() -> None:
    placements = Placements(0.001)
    record = _judged(placements, handler, *[QUICK] * TRUST, BLOCKED)  # needed: 2 x TRUST
    _judged(placements, handler, *[QUICK] * (8 * TRUST), BLOCKED)  # 4 x needed on the loop
    assert not record.on_loop and record.needed == TRUST


def test_closures_of_one_function_share_a_record_and_the_table_is_bounded() -> None:
    placements = Placements(0.001)

    def make(n: int) -> Any:
        return lambda event, context: n

    assert placements.of(make(1)) is placements.of(make(2))

    class Call:  # a callable object with no code of its own: a record per object
        def __call__(self, event: Any, context: Any) -> Any:
            return event

    for _ in range(MAX_FUNCTIONS + 10):
        placements.of(Call())
    assert len(placements.records) == MAX_FUNCTIONS
    assert placements.of(Call()) is None


def test_a_preempted_long_call_is_not_judged_and_the_next_is_measured_by_cpu() -> None:
    placements = Placements(0.001)
    record = _judged(placements, handler, *[QUICK] * (TRUST - 1), PREEMPTED_LONG)
    assert record.streak == TRUST - 1 and record.precise and not record.on_loop
    placements.judge(record, (0, 1, 0.005, 0.00002))  # preempted, but 20 µs of its own
    assert record.on_loop and not record.precise


def test_a_call_measured_by_cpu_over_the_bound_needs_a_thread() -> None:
    placements = Placements(0.001)
    record = _judged(placements, handler, *[QUICK] * TRUST, PREEMPTED_LONG)
    assert record.on_loop  # unclear: it stays, and its next call is measured
    placements.judge(record, (0, 1, 0.009, 0.004))
    assert not record.on_loop and not record.precise


def test_a_sleep_counts_as_blocking_and_a_computation_does_not() -> None:
    result, cost = run_counted(lambda event, context: sum(range(event)), 1000, None)
    assert result == sum(range(1000)) and cost[0] == 0 and cost[2] > 0
    assert cost[3] == -1.0  # CPU time is read only when asked
    start = time.perf_counter()
    _, (switches, _, wall, cpu) = run_counted(
        lambda event, context: time.sleep(event), 0.01, None, True
    )
    assert switches >= 1 and wall >= 0.01
    assert 0 <= cpu < time.perf_counter() - start  # the sleep took no CPU
