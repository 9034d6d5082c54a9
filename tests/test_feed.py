"""The emulator's own load: N invocations always outstanding, each answer starting the next."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.client import invoke, request
from worker.emulator.feed import Feed
from worker.emulator.runtime import RuntimeApi
from worker.jobs import Job

EVENT = b'{"fed":true}'


def runtime_side(api: RuntimeApi) -> list[Job]:
    """Take one invocation the way a runtime's `/next` does."""
    got: list[Job] = []
    api.poll(lambda job, deadline: got.append(job))
    return got


def test_every_answer_starts_the_next() -> None:
    api = RuntimeApi(queue_size=8, timeout=3, function_arn="arn")
    feed = Feed(api, 3, EVENT)
    feed.start()
    assert len(api.queue) == 3 and all(job.raw == EVENT for job in api.queue)
    for answered in range(1, 6):
        (job,) = runtime_side(api)
        assert api.respond(job.request_id, b"{}") == 202
        assert feed.answered == answered and len(api.queue) == 3
    assert feed.errors == 0
    assert len({job.request_id for job in api.queue}) == 3


def test_errors_are_counted_and_fed_on() -> None:
    api = RuntimeApi(queue_size=8, timeout=3, function_arn="arn")
    feed = Feed(api, 2, EVENT)
    feed.start()
    (job,) = runtime_side(api)
    assert api.error(job.request_id, b'{"errorType":"ValueError"}', None) == 202
    assert (feed.answered, feed.errors, len(api.queue)) == (1, 1, 2)
    assert "worker_emulator_fed_errors_total 1\n" in feed.metrics_text()


def test_a_queue_the_front_filled_is_topped_up_on_the_next_answer() -> None:
    api = RuntimeApi(queue_size=3, timeout=3, function_arn="arn")
    assert api.submit(Job({"from": "front"}, lambda r, e: None))
    assert api.submit(Job({"from": "front"}, lambda r, e: None))
    feed = Feed(api, 2, EVENT)
    feed.start()
    assert len(api.queue) == 3 and feed.missing == 1  # one of the feed's had no room
    runtime_side(api)  # the front's first
    (fed,) = runtime_side(api)  # the front's second
    (fed,) = runtime_side(api)  # the feed's one
    assert fed.raw == EVENT and not api.queue
    api.respond(fed.request_id, b"{}")
    assert feed.missing == 0 and len(api.queue) == 2  # the answer brought both back


def test_a_runtime_that_exits_stops_the_feed() -> None:
    api = RuntimeApi(queue_size=8, timeout=3, function_arn="arn")
    feed = Feed(api, 4, EVENT)
    feed.start()
    runtime_side(api)
    api.runtime_exited(1)  # every invocation fails: none may start another
    assert feed.stopped and not api.queue and not api.inflight
    assert feed.answered == feed.errors == 4


def test_stop_ends_the_feed_after_what_is_outstanding() -> None:
    api = RuntimeApi(queue_size=8, timeout=3, function_arn="arn")
    feed = Feed(api, 2, EVENT)
    feed.start()
    feed.stop()
    for _ in range(2):
        (job,) = runtime_side(api)
        api.respond(job.request_id, b"{}")
    assert feed.answered == 2 and not api.queue


def fed(metrics: bytes) -> dict[str, int]:
    return {
        name: int(value)
        for name, _, value in (line.partition(" ") for line in metrics.decode().splitlines())
        if name.startswith("worker_emulator_fed_")
    }


async def test_worker_emulate_feeds_a_runtime_and_the_front_still_answers(emulate) -> None:
    emu = emulate(
        "tests.apps.basic.only_fed", "--concurrency", "4", "--feed", "8",
        "--feed-event", EVENT.decode(),
    )  # fmt: skip
    counts: dict[str, Any] = {}
    while counts.get("worker_emulator_fed_answered_total", 0) < 500:
        counts = fed((await request(emu.port, "GET", "/_worker/metrics")).body)
        await asyncio.sleep(0.01)
    assert counts["worker_emulator_fed_errors_total"] == 0  # every one was the fed event
    ans = await invoke(emu.port, {"from": "front"})
    assert ans.status == 200 and ans.headers.get("x-amz-function-error") == "Unhandled"
    assert ans.json()["errorMessage"] == "not the fed event: {'from': 'front'}"
