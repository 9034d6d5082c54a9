"""Event loops for synchronous handler code: `asyncio.get_event_loop()` works as it does
under the official runtime, wherever this runtime runs the handler.

Under awslambdaric a sync handler runs on the process's main thread with no loop running,
so `asyncio.get_event_loop()` hands it the thread's own loop (made on first use) and
`run_until_complete()` on it works; so does `asyncio.run()`. Mangum and some SDKs rely on
that. Here a sync handler runs either on a handler thread (where the default policy has
no loop: "There is no current event loop in thread 'handler_0'") or on the worker's own
thread while its loop is busy calling it (where the policy's loop is the worker's, which
"is already running").

`SyncCodePolicy` keeps the default policy's behaviour for everything async and changes
what synchronous code gets when it asks for "the" event loop:
- a thread with no loop, or whose loop was closed or cleared (`asyncio.run()` clears it
  when it ends), gets a new one, set as the thread's loop for its later calls;
- synchronous code called from a callback of the thread's own running loop gets a side
  loop of the thread's own, so `run_until_complete()` runs there and leaves the worker's
  loop alone.
A coroutine asking from inside a running loop still gets that loop.

A loop made during the init phase (at import) belongs to the supervisor; the workers are
forked after it, so a handler that kept such a loop in a global and runs it on several
threads at once fails where awslambdaric (one handler per process) would not. Asking for
the loop inside the handler avoids that.
"""

from __future__ import annotations

import asyncio
import threading
from asyncio.events import _get_running_loop


class _Loops(threading.local):
    loop: asyncio.AbstractEventLoop | None = None  # the thread's loop, as set
    side: asyncio.AbstractEventLoop | None = None  # for sync code inside the running one


class SyncCodePolicy(asyncio.DefaultEventLoopPolicy):
    """The default policy, but synchronous code always gets a loop it can run."""

    def __init__(self) -> None:
        super().__init__()
        self._loops = _Loops()

    def set_event_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        super().set_event_loop(loop)
        self._loops.loop = loop

    def get_event_loop(self) -> asyncio.AbstractEventLoop:
        running = _get_running_loop()
        if running is not None:
            return running
        loops = self._loops
        loop = loops.loop
        if loop is None or loop.is_closed():
            loop = self.new_event_loop()
            self.set_event_loop(loop)
            return loop
        if loop.is_running():
            # Sync code called from the thread's own running loop (a sync handler on the
            # worker's loop): that loop cannot be run again from inside itself.
            side = loops.side
            if side is None or side.is_closed():
                side = loops.side = self.new_event_loop()
            return side
        return loop

    def current(self) -> asyncio.AbstractEventLoop | None:
        """The loop set for this thread (None when there is none), without making one."""
        return self._loops.loop


def install() -> SyncCodePolicy:
    """Make `SyncCodePolicy` the process's policy (once), keeping this thread's loop."""
    current = asyncio.get_event_loop_policy()
    if isinstance(current, SyncCodePolicy):
        return current
    loop = _get_running_loop()
    policy = SyncCodePolicy()
    asyncio.set_event_loop_policy(policy)
    if loop is not None:
        policy.set_event_loop(loop)
    return policy
