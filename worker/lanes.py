"""Bounded lanes: a queue per lane that slots drain, and the choice of a job's lane."""

from __future__ import annotations

import asyncio
import time
from collections import deque

from worker.jobs import Job
from worker.profiles import MARATHON, OFFLOAD, SPRINTER, Profiles


class Lane:
    """A bounded queue of jobs waiting for one of the lane's slots.

    `offer()` hands a job straight to an idle slot, else queues it while there is room,
    else returns False: the caller answers 429 at once instead of queueing without bound.

    One wake-up at a time: while a slot handed a job has not started it yet, further jobs
    queue (idle slots count as room) and the woken slot, when it starts, hands the next
    queued job to another idle slot (`woke()`). A burst that arrives in one pass of the
    loop so costs one or two wake-ups rather than one per job: the first slot runs what it
    can without suspending, taking queued jobs as it finishes each, and a job that suspends
    has already passed the next one on, so queued jobs still reach every idle slot, one
    more per pass of the loop (all at once behind a sync handler, whose slot will wait on
    its thread: `spread()`). Waking a slot (a future, its callback, a task step) cost more
    than a no-op invocation's whole run in the slot.

    Room is bounded twice: by count (`queue_size`) and, when `wait_share` is set, by time.
    A job's predicted wait is its place in the queue beyond the idle slots, over the slots,
    times the lane's typical invocation time (an EWMA of what `observe()` is told); past
    `wait_share` of one typical invocation (or `wait_floor` seconds, whichever is more) it
    is refused. The count alone lets the accepted requests of an overloaded lane wait
    several invocation times; the time bound keeps them within one, whatever the handler's
    speed, while the floor keeps a burst of fast invocations from being refused for a
    sub-millisecond wait.
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
        self._waking = 0  # slots handed a job that have not started it yet
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The lane whose idle slots this one borrows when its own are busy, and how many
        #: idle slots this lane never lends.
        self.lender: Lane | None = None
        self.reserve = 0

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def idle(self) -> int:
        """Slots waiting for a job."""
        return len(self._idle)

    def offer(self, job: Job) -> bool:
        if self.closed:
            return False
        idle = self._idle
        if not self._waking and self._wake(job):
            return True
        lender = self.lender
        lendable = 0
        if lender is not None:
            if not idle and not self._queue and lender.lend(job, self.name):
                return True
            lendable = lender.lendable()
        # Each idle slot (ours, or the lender's it would lend) will take one of the queued
        # jobs: only those beyond them wait.
        waiting = len(self._queue) + 1 - len(idle) - lendable
        if waiting > self.queue_size:
            return False
        if (
            self.wait_share
            and waiting > 0
            and waiting * self.typical
            > (self.slots + lendable) * max(self.wait_share * self.typical, self.wait_floor)
        ):
            return False  # its predicted wait for a slot is past the time bound
        job.lane = self.name
        job.queued_at = time.monotonic()  # only here: a job handed to an idle slot never waits
        self._queue.append(job)
        return True

    def expire(self, timeout: float) -> list[Job]:
        """Take the queued jobs that have waited `timeout` seconds (the oldest are first):
        a caller is answered at its deadline, never kept waiting past it."""
        queue = self._queue
        expired = []
        if queue:
            cutoff = time.monotonic() - timeout
            while queue and queue[0].queued_at <= cutoff:
                expired.append(queue.popleft())
        return expired

    def lend(self, job: Job, name: str) -> bool:
        """Run another lane's job on one of this lane's idle slots, if more than `reserve`
        are idle and none of this lane's own jobs waits: nothing is refused while slots sit
        idle, and a burst of this lane's own still finds `reserve` slots free. The job keeps
        its lane's name (what it teaches is that lane's); the slot goes back to this lane's
        queue when it is done."""
        if not self.lendable() or not self._wake(job):
            return False
        job.lane = name
        return True

    def lendable(self) -> int:
        """Idle slots this lane would lend now."""
        if self._queue or self.closed:
            return 0
        return max(0, len(self._idle) - self.reserve)

    def _wake(self, job: Job) -> bool:
        """Hand `job` to an idle slot, if there is one."""
        idle = self._idle
        while idle:
            waiter = idle.popleft()
            if not waiter.done():  # a slot cancelled while idle (drain) is skipped
                job.lane = self.name
                waiter.set_result(job)
                self._waking += 1
                return True
        return False

    def next(self) -> Job | None:
        """The next queued job, taken at once (None: none is queued; `take()` waits)."""
        queue = self._queue
        return queue.popleft() if queue else None

    def take(self) -> asyncio.Future[Job | None]:
        """A future of the next job, or of None once the lane is closed and empty (the
        slot ends). A plain function, not a coroutine: a slot takes a job per invocation,
        and a coroutine object per take is a cost worth sparing. A slot woken with a job
        calls `woke()` before it runs it."""
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

    def spread(self) -> None:
        """Hand every queued job an idle slot can take (a slot that is about to block on a
        sync handler's thread calls this: its job will not finish in this pass of the loop,
        so the jobs behind it should not wait one pass each for a slot)."""
        while self._pass_on():
            pass

    def woke(self) -> None:
        """A slot that waited has its job: pass the next queued one to another idle slot
        (see the class's text)."""
        self._waking -= 1
        self._pass_on()

    def _pass_on(self) -> bool:
        """Hand the first queued job to an idle slot; whether there was one to hand. With
        no idle slot of its own left, the lane's queued jobs go to the slots its lender
        would lend, all at once (borrowed slots pass nothing on: they are the lender's)."""
        queue = self._queue
        if not queue:
            return False
        if self._idle and self._wake(queue[0]):
            queue.popleft()
            return True
        lender = self.lender
        while queue and lender is not None and lender.lend(queue[0], self.name):
            queue.popleft()
        return False

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
    otherwise); a process without that lane uses its first lane. An offload route's job
    that runs here (a synchronous call, an event the queue could not take, or `worker sqs`
    consuming the queue) runs in the marathon lane.
    """

    def __init__(self, lanes: list[Lane], profiles: Profiles | None = None) -> None:
        self.all = lanes
        self.by_name = {lane.name: lane for lane in lanes}
        self.default = self.by_name.get(SPRINTER, lanes[0])
        self._choice = {**self.by_name, OFFLOAD: self.by_name.get(MARATHON, self.default)}
        self.profiles = profiles
        # Each route's lane as its profile decided it (see Profiles.decided), when there is
        # a choice to make: read here directly, as this runs for every job.
        self._decided = profiles.decided if profiles is not None and len(lanes) > 1 else None

    def choose(self, job: Job) -> Lane:
        decided = self._decided
        if decided is None:
            return self.default
        return self._choice.get(decided.get(job.route, SPRINTER), self.default)

    def observe(self, job: Job, seconds: float) -> None:
        """Teach the job's lane and its route's profile how long this invocation took."""
        lane = self.by_name.get(job.lane)
        if lane is not None and lane.wait_share:  # only a time-bounded lane needs its typical
            lane.observe(seconds)
        if self.profiles is not None and job.route:
            self.profiles.observe(job.route, seconds, job.size)
