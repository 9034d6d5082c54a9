from __future__ import annotations

import asyncio

from worker.jobs import Job
from worker.lanes import Lane, Lanes


def job(n: int) -> Job:
    return Job({"n": n}, lambda result, error: None)


async def test_offer_hands_to_an_idle_slot_then_queues_then_refuses() -> None:
    lane = Lane("default", slots=1, queue_size=2)
    taker = asyncio.ensure_future(lane.take())
    await asyncio.sleep(0)  # the slot is now idle, waiting
    assert lane.offer(job(0))
    assert (await taker).event == {"n": 0}
    assert lane.offer(job(1)) and lane.offer(job(2))
    assert lane.depth == 2
    assert not lane.offer(job(3))  # full: the caller answers 429
    assert (await lane.take()).event == {"n": 1}  # first in, first out


async def test_close_lets_queued_jobs_finish_and_ends_idle_slots() -> None:
    lane = Lane("default", slots=2, queue_size=2)
    idle = asyncio.ensure_future(lane.take())
    await asyncio.sleep(0)
    lane.close()
    assert await idle is None
    assert not lane.offer(job(0))
    lane2 = Lane("x", slots=1, queue_size=2)
    lane2.offer(job(1))
    lane2.close()
    assert (await lane2.take()).event == {"n": 1}
    assert await lane2.take() is None


async def test_lanes_choose_sets_the_job_lane() -> None:
    lanes = Lanes([Lane("default", 1, 1)])
    j = job(0)
    assert lanes.choose(j).offer(j)
    assert j.lane == "default"
