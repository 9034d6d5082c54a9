"""Bounded lanes: a queue per lane that slots drain, and the choice of a job's lane."""

from __future__ import annotations

import asyncio
from collections import deque

from worker.jobs import Job
from worker.profiles import SPRINTER, Profiles


class Lane:
    """A bounded queue of jobs waiting for one of the lane's slots.

    `offer()` hands a job straight to an idle slot, else queues it while there is room,
    else returns False: the caller answers 429 at once instead of queueing without bound.

    Room is bounded twice: by count (`queue_size`) and, when `wait_share` is set, by time.
    A job's predicted wait is its place in the queue over the slots, times the lane's
    typical invocation time (an EWMA of what `observe()` is told); past `wait_share` of one
    typical invocation (or `wait_floor` seconds, whichever is more) it is refused. The
    count alone lets the accepted requests of an overloaded lane wait several invocation
    times; the time bound keeps them within one, whatever the handler's speed, while the
    floor keeps a burst of fast invocations from being refused for a sub-millisecond wait.
    """

    def __init__(
        self,
        name: str,
        slots: int,
        queue_size: int,
        wait_share: float = 0.0,
        wait_floor: float = 0.0,
    ) -> None:
        self.name = name
        self.slots = slots
        self.queue_size = queue_size
        self.wait_share = wait_share
        self.wait_floor = wait_floor
        self.typical = 0.0  # EWMA of this lane's invocation seconds (0: none seen yet)
        self.in_flight = 0
        self.closed = False
        self._queue: deque[Job] = deque()
        self._idle: deque[asyncio.Future[Job | None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def depth(self) -> int:
        return len(self._queue)

    def offer(self, job: Job) -> bool:
        if self.closed:
            return False
        idle = self._idle
        while idle:
            waiter = idle.popleft()
            if not waiter.done():
                job.lane = self.name
                waiter.set_result(job)
                return True
        depth = len(self._queue)
        if depth >= self.queue_size:
            return False
        if self.wait_share and (depth + 1) * self.typical > self.slots * max(
            self.wait_share * self.typical, self.wait_floor
        ):
            return False  # its predicted wait for a slot is past the time bound
        job.lane = self.name
        self._queue.append(job)
        return True

    def take(self) -> asyncio.Future[Job | None]:
        """A future of the next job, or of None once the lane is closed and empty (the
        slot ends). A plain function, not a coroutine: a slot takes a job per invocation,
        and a coroutine object per take is a cost worth sparing."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Job | None] = loop.create_future()
        if self._queue:
            waiter.set_result(self._queue.popleft())
        elif self.closed:
            waiter.set_result(None)
        else:
            self._idle.append(waiter)
        return waiter

    def observe(self, seconds: float) -> None:
        """Fold one invocation's duration into the lane's typical time."""
        typical = self.typical
        self.typical = seconds if typical == 0.0 else typical + 0.1 * (seconds - typical)

    def close(self) -> None:
        """Refuse new jobs; queued ones still run; idle slots are told to end."""
        self.closed = True
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def drop_queued(self) -> list[Job]:
        """Take back every job that never started (drain ran out of time)."""
        jobs = list(self._queue)
        self._queue.clear()
        return jobs


class Lanes:
    """The lanes of one worker process and the rule that picks a job's lane.

    A job goes to the lane its route's profile names (sprinter unless learned or set
    otherwise); a process without that lane uses its first lane.
    """

    def __init__(self, lanes: list[Lane], profiles: Profiles | None = None) -> None:
        self.all = lanes
        self.by_name = {lane.name: lane for lane in lanes}
        self.default = self.by_name.get(SPRINTER, lanes[0])
        self.profiles = profiles
        # Each route's lane as its profile decided it (see Profiles.decided), when there is
        # a choice to make: read here directly, as this runs for every job.
        self._decided = profiles.decided if profiles is not None and len(lanes) > 1 else None

    def choose(self, job: Job) -> Lane:
        decided = self._decided
        if decided is None:
            return self.default
        return self.by_name.get(decided.get(job.route, SPRINTER), self.default)

    def observe(self, job: Job, seconds: float) -> None:
        """Teach the job's lane and its route's profile how long this invocation took."""
        lane = self.by_name.get(job.lane)
        if lane is not None and lane.wait_share:  # only a time-bounded lane needs its typical
            lane.observe(seconds)
        if self.profiles is not None and job.route:
            self.profiles.observe(job.route, seconds, job.size)
