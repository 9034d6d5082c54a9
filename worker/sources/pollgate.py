"""The service's quiet long poll: on a drained queue, one worker process polls for them all.

Each worker process of `worker sqs` keeps its own long polls (see `worker.sources.sqs`),
which is what a backlog needs. On a drained queue, though, every process would keep at
least one long poll open and split each arrival between them: more, smaller receives (SQS
bills per request) and more delete calls for the same messages. A process whose last
receive showed no backlog therefore polls only while it holds this gate, an exclusive
`flock` on one file in the service's scratch root. A process with a backlog, or with
every slot busy, polls without it, so work still spreads over every process.

`flock` belongs to an open file description, which a fork would share, so each process
opens the file itself. The kernel frees the lock when its holder dies (kill -9 included):
no poll is lost with a process; a waiting one takes over at its next try.
"""

from __future__ import annotations

import asyncio
import fcntl
import os

#: Seconds between a waiting process's tries. The holder gives the gate up after every
#: receive and takes it again at once; this only bounds the hand-over when it stops
#: polling quietly (a backlog, busy slots, its death). A blocking `flock` would need a
#: thread that cannot be cancelled.
RETRY = 0.05


class PollGate:
    """An exclusive lock shared by a service's processes, taken on the event loop."""

    def __init__(self, path: str, retry: float = RETRY) -> None:
        self.path = path
        self.retry = retry
        self.held = False
        self._fd = -1
        # flock does not exclude a second poller of this process (same file description).
        self._local = asyncio.Lock()

    async def acquire(self) -> None:
        await self._local.acquire()
        try:
            while not self._try():
                await asyncio.sleep(self.retry)
        except BaseException:
            self._local.release()
            raise
        self.held = True

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self.held = False
        self._local.release()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # frees the lock too, if it was held
            self._fd = -1

    def _try(self) -> bool:
        if self._fd < 0:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
