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


async def test_a_burst_wakes_one_slot_which_passes_the_next_job_on_when_it_starts() -> None:
    lane = Lane("default", slots=3, queue_size=0)
    waiters = [lane.take() for _ in range(3)]  # three idle slots
    assert all(lane.offer(job(n)) for n in range(3))  # idle slots are room: none refused
    assert waiters[0].done() and waiters[0].result().event == {"n": 0}
    # One wake-up at a time: the rest wait in the queue, not in more wake-ups.
    assert not waiters[1].done() and not waiters[2].done() and lane.depth == 2
    lane.woke()  # the first slot starts its job: the next goes to another idle slot
    assert waiters[1].result().event == {"n": 1} and lane.depth == 1
    assert lane.next() is not None  # a slot that finished takes a queued job at once
    assert lane.next() is None and lane.depth == 0
    lane.woke()
    assert not waiters[2].done()  # nothing left to pass on: that slot stays idle
    assert lane.offer(job(3))  # and no wake-up is on its way: the next job wakes it
    assert waiters[2].result().event == {"n": 3}


async def test_spread_hands_every_queued_job_an_idle_slot() -> None:
    lane = Lane("default", slots=4, queue_size=0)
    waiters = [lane.take() for _ in range(3)]
    assert all(lane.offer(job(n)) for n in range(3))
    assert [w.done() for w in waiters] == [True, False, False]
    lane.spread()  # the woken slot is about to block on a thread
    assert [w.result().event for w in waiters] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert lane.depth == 0


async def test_room_beyond_the_idle_slots_is_the_queue_size() -> None:
    lane = Lane("default", slots=2, queue_size=1)
    waiters = [lane.take() for _ in range(2)]
    assert lane.offer(job(0))  # handed to a slot
    assert lane.offer(job(1))  # queued, but an idle slot will take it
    assert lane.offer(job(2))  # the one place in the queue proper
    assert not lane.offer(job(3))
    assert waiters[0].done() and not waiters[1].done()


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


def test_the_time_bound_keeps_a_queued_wait_within_its_share_of_an_invocation() -> None:
    lane = Lane("default", slots=4, queue_size=100, wait_share=0.5, wait_floor=0.005)
    lane.observe(0.2)  # a typical invocation: 200 ms; 4 slots free one every 50 ms
    admitted = 0
    while lane.offer(job(admitted)):
        admitted += 1
    # Place p waits about p x 50 ms: places 1 and 2 are within 100 ms, place 3 is not.
    assert admitted == 2


def test_fast_invocations_are_bounded_by_count_not_by_a_tiny_wait() -> None:
    lane = Lane("default", slots=4, queue_size=8, wait_share=0.5, wait_floor=0.005)
    lane.observe(0.00002)  # 20 µs: a whole queue waits far less than the 5 ms floor
    assert all(lane.offer(job(n)) for n in range(8))
    assert not lane.offer(job(8))


def test_the_typical_time_follows_the_lane_and_unset_share_means_count_only() -> None:
    lane = Lane("default", slots=1, queue_size=3)
    lane.observe(10.0)
    assert all(lane.offer(job(n)) for n in range(3))  # no time bound without a share
    lane.observe(20.0)
    assert 10.0 < lane.typical < 20.0  # an average, not the last value
    timed = Lane("timed", slots=1, queue_size=3, wait_share=0.5)
    lanes = Lanes([lane, timed])
    for name in ("default", "timed"):
        j = job(9)
        j.lane = name
        lanes.observe(j, 30.0)
    assert 10.0 < lane.typical < 20.0  # a count-only lane keeps no typical time
    assert timed.typical == 30.0  # the job's own lane learns its duration


async def test_expire_takes_the_queued_jobs_that_waited_their_timeout_oldest_first() -> None:
    lane = Lane("sprinter", slots=1, queue_size=4)
    jobs = [job(n) for n in range(3)]
    for j in jobs:
        assert lane.offer(j)  # no idle slot: all three queue
    assert lane.expire(3600.0) == []  # none has waited that long
    jobs[0].queued_at -= 10.0
    jobs[1].queued_at -= 10.0
    assert lane.expire(5.0) == jobs[:2]
    assert lane.depth == 1 and lane.next() is jobs[2]


async def test_the_marathon_lane_borrows_idle_sprinter_slots_beyond_the_reserve() -> None:
    sprinter = Lane("sprinter", slots=4, queue_size=4)
    marathon = Lane("marathon", slots=1, queue_size=0)
    marathon.lender, sprinter.reserve = sprinter, 1
    own = marathon.take()  # the marathon lane's one slot, idle
    idle = [sprinter.take() for _ in range(4)]  # four idle sprinter slots
    assert marathon.offer(job(0)) and own.result().event == {"n": 0}
    # Its own slot busy and no queue: idle sprinter slots run marathons, but one stays free.
    borrowed = [job(n) for n in range(1, 4)]
    assert all(marathon.offer(j) for j in borrowed)
    assert [w.result() for w in idle[:3]] == borrowed
    assert all(j.lane == "marathon" for j in borrowed)  # they teach the marathon lane
    assert not marathon.offer(job(4))  # the reserve is not lent: refused (no queue room)
    assert not idle[3].done()
    assert sprinter.offer(job(5))  # queued behind the wake-ups on their way...
    sprinter.woke()  # ...until a borrowed slot starts its marathon and passes it on
    assert idle[3].result().event == {"n": 5}  # the reserved slot runs the sprinter


async def test_nothing_is_lent_while_the_lenders_own_jobs_wait() -> None:
    sprinter = Lane("sprinter", slots=2, queue_size=4)
    marathon = Lane("marathon", slots=1, queue_size=1)
    marathon.lender = sprinter
    idle = [sprinter.take() for _ in range(2)]
    assert sprinter.offer(job(0)) and sprinter.offer(job(1))  # one woken, one queued
    assert idle[0].done() and sprinter.depth == 1
    assert marathon.offer(job(2))  # queued in its own lane, not lent
    assert marathon.depth == 1 and not idle[1].done()
