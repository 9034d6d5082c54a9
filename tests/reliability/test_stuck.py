"""A hung sync handler: its timeout is answered, its slot goes on with a spare thread, and
a worker whose spare threads are all held by hung ones is drained and replaced."""

from __future__ import annotations

import asyncio
import re

from tests.client import invoke
from tests.test_supervisor import wait_for

#: Two slots whose sync handler may sleep past a 1 s timeout; a short grace at the end.
SLEEPY = ("tests.apps.basic.sync_sleep", "--workers", "1", "--concurrency", "2",
          "--timeout", "1", "--grace", "2")  # fmt: skip


async def test_a_worker_whose_spare_threads_are_all_hung_is_replaced(serve) -> None:
    srv = serve(*SLEEPY)
    wait_for(lambda: len(srv.children()) == 1, "the worker")
    first = srv.children()[0]
    hung = await asyncio.gather(*(invoke(srv.port, {"seconds": 3600}) for _ in range(2)))
    for answer in hung:  # each answered at its deadline, not when (if ever) it returns
        assert answer.json()["errorType"] == "Sandbox.Timedout"  # type: ignore[index]
    wait_for(lambda: srv.children() and srv.children()[0] != first, "a fresh worker")
    answer = await invoke(srv.port, {"seconds": 0})  # the new worker has free slots
    assert answer.json() == {"slept": 0}
    assert '"reason":"hung_threads"' in srv.logs()
    metrics = srv.admin("/_worker/metrics")[1].decode()
    assert re.search(r"^worker_recycles_total 1", metrics, re.M)


async def test_one_hung_thread_leaves_the_other_slots_working(serve) -> None:
    srv = serve(*SLEEPY)
    first = srv.children()[0]
    hung = await invoke(srv.port, {"seconds": 3600})
    assert hung.json()["errorType"] == "Sandbox.Timedout"  # type: ignore[index]
    for _ in range(5):  # the other slot serves; the worker is not replaced
        assert (await invoke(srv.port, {"seconds": 0})).json() == {"slept": 0}
    assert srv.children() == [first]
    metrics = srv.admin("/_worker/metrics")[1].decode()
    hung_total = re.search(r"^worker_hung_threads_total (\S+)$", metrics, re.M)
    assert hung_total is not None and float(hung_total.group(1)) == 1.0  # counted
    assert re.search(r'^worker_in_flight\{lane="sprinter"\} 0', metrics, re.M)  # slot free
    assert "a sync handler's thread outlived its deadline" in srv.logs()
