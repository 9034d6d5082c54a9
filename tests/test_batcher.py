"""The batcher on the test's loop: batch closing, deadlines, failures, bounds, the cost model,
and K batches in flight at once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from worker.errors import LambdaError
from worker.inference.batcher import Batcher, CostModel, is_out_of_memory
from worker.inference.registry import ModelSpec
from worker.telemetry.metrics import Metrics, render


class Model:
    """A batch function that records every batch and can be held at a gate."""

    def __init__(self, fail_on: Any = None, oom_over: int = 0) -> None:
        self.batches: list[list[Any]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail_on = fail_on
        self.oom_over = oom_over

    def __call__(self, xs: list[Any]) -> list[Any]:
        self.batches.append(list(xs))
        self.entered.set()
        self.gate.wait(10)
        if self.oom_over and len(xs) > self.oom_over:
            raise MemoryError("no room for this batch")
        if self.fail_on is not None and self.fail_on in xs:
            raise RuntimeError(f"bad input {self.fail_on!r}")
        return [x * 10 for x in xs]

    async def hold(self) -> None:
        """Close the gate and wait until a batch is inside the model."""
        self.gate.clear()
        self.entered.clear()

    async def wait_inside(self, batches: int = 0) -> None:
        """Until a batch is inside the model, or until `batches` batches have entered it."""
        while not (len(self.batches) >= batches if batches else self.entered.is_set()):
            await asyncio.sleep(0.005)


def batcher(
    model: Callable[[list[Any]], list[Any]], concurrency: int = 1, **settings: Any
) -> Batcher:
    spec = ModelSpec(name="m", loader=lambda: model, **settings)
    spec.fn = model
    return Batcher(spec, Metrics(), concurrency=concurrency)


async def start_blocking_batch(model: Model, b: Batcher, item: Any = 0) -> asyncio.Task[Any]:
    """One request in flight with the model held: what comes next queues behind it."""
    await model.hold()
    first = asyncio.ensure_future(b.infer(item))
    await model.wait_inside()
    return first


async def test_an_idle_model_runs_a_lone_request_at_once() -> None:
    model = Model()
    b = batcher(model, max_wait_ms=1000)
    assert await b.infer(3) == 30
    assert model.batches == [[3]]


async def test_requests_arriving_during_a_batch_go_together_in_the_next() -> None:
    model = Model()
    b = batcher(model, max_batch_size=8)
    first = await start_blocking_batch(model, b)
    rest = [asyncio.ensure_future(b.infer(i)) for i in range(1, 6)]
    await asyncio.sleep(0)  # every request enqueued
    model.gate.set()
    assert await first == 0
    assert await asyncio.gather(*rest) == [10, 20, 30, 40, 50]
    assert model.batches == [[0], [1, 2, 3, 4, 5]]


async def test_a_batch_closes_at_max_batch_size() -> None:
    model = Model()
    b = batcher(model, max_batch_size=3)
    first = await start_blocking_batch(model, b)
    rest = [asyncio.ensure_future(b.infer(i)) for i in range(1, 8)]
    await asyncio.sleep(0)
    model.gate.set()
    await asyncio.gather(first, *rest)
    assert [len(x) for x in model.batches] == [1, 3, 3, 1]


async def test_size_fn_counts_tokens_not_items() -> None:
    model = Model()
    b = batcher(model, max_batch_size=10, size_fn=len)
    first = await start_blocking_batch(model, b, "x")
    rest = [asyncio.ensure_future(b.infer("abcd")) for _ in range(4)]
    await asyncio.sleep(0)
    model.gate.set()
    await asyncio.gather(first, *rest)
    assert [len(x) for x in model.batches] == [1, 2, 2]  # 4 + 4 tokens fit in 10, not 12


async def test_a_request_past_its_deadline_never_reaches_the_model() -> None:
    model = Model()
    b = batcher(model)
    first = await start_blocking_batch(model, b)
    deadline = time.time() + 0.05
    late = asyncio.ensure_future(b.infer("late", deadline=deadline))
    on_time = asyncio.ensure_future(b.infer(7))
    while time.time() <= deadline:  # the state under test: the deadline has passed
        await asyncio.sleep(0.01)
    model.gate.set()
    await first
    with pytest.raises(LambdaError) as caught:
        await late
    assert caught.value.error_type == "Sandbox.Timedout"
    assert await on_time == 70
    assert all("late" not in batch for batch in model.batches)
    assert 'worker_inference_expired_total{model="m"} 1' in render(b.metrics.snapshot())


async def test_a_failing_batch_fails_only_its_own_requests() -> None:
    model = Model(fail_on="boom")
    b = batcher(model, max_batch_size=2)
    first = await start_blocking_batch(model, b)
    doomed = [asyncio.ensure_future(b.infer(x)) for x in ("boom", 1)]
    fine = [asyncio.ensure_future(b.infer(x)) for x in (2, 3)]
    await asyncio.sleep(0)
    model.gate.set()
    assert await first == 0
    for call in doomed:
        with pytest.raises(RuntimeError, match="bad input 'boom'"):
            await call
    assert await asyncio.gather(*fine) == [20, 30]


async def test_out_of_memory_splits_the_batch_and_retries_the_halves() -> None:
    model = Model(oom_over=2)
    b = batcher(model, max_batch_size=8)
    first = await start_blocking_batch(model, b)
    rest = [asyncio.ensure_future(b.infer(i)) for i in range(1, 6)]
    await asyncio.sleep(0)
    model.gate.set()
    await first
    assert await asyncio.gather(*rest) == [10, 20, 30, 40, 50]
    # 5 -> out of memory -> 2 + 3 -> 3 is out of memory too -> 1 + 2
    assert [len(x) for x in model.batches[1:]] == [5, 2, 3, 1, 2]


async def test_a_single_item_out_of_memory_is_its_error() -> None:
    model = Model(oom_over=-1)  # every batch, even of one
    b = batcher(model)
    with pytest.raises(MemoryError):
        await b.infer(1)


async def test_a_full_queue_refuses_at_once_with_too_many_requests() -> None:
    model = Model()
    b = batcher(model, max_queue=2)
    first = await start_blocking_batch(model, b)
    queued = [asyncio.ensure_future(b.infer(i)) for i in (1, 2)]
    await asyncio.sleep(0)
    with pytest.raises(LambdaError) as caught:
        await b.infer(3)
    assert caught.value.error_type == "TooManyRequestsException"
    assert "max_queue 2" in caught.value.message
    model.gate.set()
    await asyncio.gather(first, *queued)
    text = render(b.metrics.snapshot())
    assert 'worker_inference_rejections_total{model="m",reason="queue"} 1' in text


async def test_a_request_that_would_miss_its_deadline_is_refused_up_front() -> None:
    model = Model()
    b = batcher(model)
    b.cost.add(1, 5.0)  # the model is known to take 5 s a batch
    with pytest.raises(LambdaError) as caught:
        await b.infer(1, deadline=time.time() + 1.0)
    assert caught.value.error_type == "TooManyRequestsException"
    assert model.batches == []
    assert await b.infer(1, deadline=time.time() + 60) == 10


async def test_batch_size_and_wait_are_metrics() -> None:
    model = Model()
    b = batcher(model, max_batch_size=4)
    first = await start_blocking_batch(model, b)
    rest = [asyncio.ensure_future(b.infer(i)) for i in range(4)]
    await asyncio.sleep(0)
    model.gate.set()
    await asyncio.gather(first, *rest)
    text = render(b.metrics.snapshot())
    assert 'worker_batch_size_count{model="m"} 2' in text
    assert 'worker_batch_size_sum{model="m"} 5' in text
    assert 'worker_batch_wait_seconds_count{model="m"} 2' in text


def gauge(b: Batcher, name: str) -> float:
    return float(b.metrics.snapshot()["gauges"][f"{name}|model=m"])


async def test_k_batches_run_at_once_and_the_metrics_show_it() -> None:
    model = Model()
    b = batcher(model, max_batch_size=1, concurrency=2)
    await model.hold()
    two = [asyncio.ensure_future(b.infer(i)) for i in (0, 1)]
    await model.wait_inside(batches=2)  # both inside the model, neither let out yet
    third = asyncio.ensure_future(b.infer(2))
    while len(b.queue) < 1:  # no launch thread is free: it waits
        await asyncio.sleep(0.005)
    assert gauge(b, "worker_inference_batches_in_flight") == 2
    assert gauge(b, "worker_inference_batches_in_flight_peak") == 2
    text = render(b.metrics.snapshot())
    assert 'worker_inference_overlapped_batches_total{model="m"} 1' in text
    assert "# TYPE worker_inference_batches_in_flight gauge" in text
    model.gate.set()
    assert await asyncio.gather(*two, third) == [0, 10, 20]
    assert sorted(model.batches) == [[0], [1], [2]]
    assert gauge(b, "worker_inference_batches_in_flight") == 0
    assert gauge(b, "worker_inference_batches_in_flight_peak") == 2


async def test_a_free_launch_thread_takes_waiting_work_without_waiting_for_company() -> None:
    model = Model()
    b = batcher(model, max_wait_ms=60_000, concurrency=2)
    first = await start_blocking_batch(model, b)  # nothing fitted yet: no wait
    for n in (1, 8):
        b.cost.add(n, 30.0)  # a fixed cost that would make an idle model wait 30 s
    b.gap = 0.001
    assert b.wait() == 30.0
    second = asyncio.ensure_future(b.infer(1))
    await asyncio.wait_for(model.wait_inside(batches=2), 30)  # launched, not held back
    model.gate.set()
    assert await asyncio.gather(first, second) == [0, 10]


async def test_waiting_requests_are_shared_out_over_the_idle_launch_threads() -> None:
    model = Model()
    b = batcher(model, max_batch_size=8, max_wait_ms=20, concurrency=2)
    for n in (1, 8):
        b.cost.add(n, 1.0)  # a fixed cost only: an idle model waits max_wait for company
    b.gap = 0.001
    answers = await asyncio.gather(*(b.infer(i) for i in range(6)))
    assert answers == [i * 10 for i in range(6)]
    assert sorted(len(x) for x in model.batches) == [3, 3]  # not 6 beside an idle thread


async def test_a_failing_batch_fails_only_its_requests_while_another_runs() -> None:
    model = Model(fail_on="boom")
    b = batcher(model, max_batch_size=4, concurrency=2)
    await model.hold()
    fine = asyncio.ensure_future(b.infer(1))
    doomed = asyncio.ensure_future(b.infer("boom"))
    await model.wait_inside(batches=2)  # [1] and ["boom"], side by side
    later = [asyncio.ensure_future(b.infer(x)) for x in (2, 3)]
    await asyncio.sleep(0)
    model.gate.set()
    with pytest.raises(RuntimeError, match="bad input 'boom'"):
        await doomed
    assert await fine == 10
    assert await asyncio.gather(*later) == [20, 30]
    assert sorted(model.batches, key=str) == sorted([[1], ["boom"], [2, 3]], key=str)


async def test_out_of_memory_splits_only_the_batch_that_ran_out() -> None:
    model = Model(oom_over=4)
    b = batcher(model, max_batch_size=5, concurrency=2)
    await model.hold()
    held = [asyncio.ensure_future(b.infer(i)) for i in (0, 1)]
    await model.wait_inside(batches=2)
    rest = [asyncio.ensure_future(b.infer(i)) for i in range(2, 11)]
    while len(b.queue) < 9:
        await asyncio.sleep(0.005)
    model.gate.set()
    assert await asyncio.gather(*held, *rest) == [i * 10 for i in range(11)]
    # Each freed thread takes a batch: 2-6 (five, out of memory: 2 + 3) and 7-10 (four,
    # which fits and runs once, whole, beside the split).
    assert sorted(len(x) for x in model.batches[2:]) == [2, 3, 4, 5]
    assert model.batches.count([7, 8, 9, 10]) == 1


async def test_drain_waits_for_every_batch_in_flight() -> None:
    model = Model()
    b = batcher(model, max_batch_size=1, concurrency=2)
    await model.hold()
    calls = [asyncio.ensure_future(b.infer(i)) for i in (0, 1)]
    await model.wait_inside(batches=2)
    waiting = asyncio.ensure_future(b.infer(2))
    while len(b.queue) < 1:
        await asyncio.sleep(0.005)
    b.close()
    with pytest.raises(LambdaError, match="shut down"):
        await waiting  # queued, never started: failed at once
    drained = asyncio.ensure_future(b.drain())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not drained.done()  # both batches are still inside the model
    model.gate.set()
    await drained
    assert [c.result() for c in calls] == [0, 10]  # answered by the time drain returns


def test_cost_model_recovers_a_linear_cost() -> None:
    cost = CostModel()
    for n in (1, 2, 4, 8, 16, 32):
        cost.add(n, 0.002 * n + 0.010)
    assert cost.a == pytest.approx(0.002)
    assert cost.b == pytest.approx(0.010)
    assert cost.predict(10) == pytest.approx(0.030)


def test_the_wait_adapts_to_load() -> None:
    b = batcher(Model(), max_wait_ms=50)
    assert b.wait() == 0.0  # nothing known yet: no waiting
    for n in (1, 8, 16):
        b.cost.add(n, 0.001 * n + 0.010)  # 10 ms fixed cost per batch
    b.gap = 1.0  # light load: one request a second
    assert b.wait() == 0.0
    b.gap = 0.001  # heavy load: ten requests expected within the fixed cost
    assert b.wait() == pytest.approx(0.010)
    b.max_wait = 0.004
    assert b.wait() == pytest.approx(0.004)  # never beyond max_wait


def test_out_of_memory_is_recognised_without_torch() -> None:
    class OutOfMemoryError(RuntimeError):
        pass

    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(OutOfMemoryError("CUDA out of memory"))
    assert not is_out_of_memory(RuntimeError())
