from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from tests.client import invoke
from tests.conftest import ROOT
from worker import handler as handlers
from worker import pool as pool_module
from worker.config import Config
from worker.errors import LambdaError
from worker.jobs import Job
from worker.lanes import Lane, Lanes
from worker.placement import TRUST
from worker.pool import OBSERVE_EVERY, Pool
from worker.profiles import MARATHON, SPRINTER, Profiles
from worker.telemetry.metrics import Metrics


async def test_a_timed_out_sync_handlers_slot_goes_on_with_a_spare_thread(
    inproc, tmp_path: Path
) -> None:
    srv = await inproc("tests.apps.basic.sync_gate", slots=1, queue=4, timeout=0.2)
    hung = {"dir": str(tmp_path / "hung")}
    (tmp_path / "hung").mkdir()
    first = await invoke(srv.port, hung)
    assert first.json()["errorType"] == "Sandbox.Timedout"  # type: ignore[index]
    # Answered; its thread still blocks on the gate, but the slot went on with a spare.
    assert srv.pool.hung == 1 and srv.lane.in_flight == 0
    (tmp_path / "open").mkdir()
    (tmp_path / "open" / "release").touch()
    second = await invoke(srv.port, {"dir": str(tmp_path / "open")})
    assert second.status == 200 and "done" in second.json()  # type: ignore[operator]
    assert srv.pool.hung == 1  # the first thread still hangs
    (tmp_path / "hung" / "release").touch()
    while srv.pool.hung:
        await asyncio.sleep(0.005)


async def test_past_the_spare_threads_the_slot_waits_and_the_process_is_told(
    inproc, tmp_path: Path
) -> None:
    srv = await inproc("tests.apps.basic.sync_gate", slots=1, queue=4, timeout=0.2)
    told: list[str] = []
    srv.pool.when_stuck(told.append)
    event = {"dir": str(tmp_path)}
    assert (await invoke(srv.port, event)).json()["errorType"] == "Sandbox.Timedout"  # type: ignore[index]
    assert told == ["hung_threads"]  # its one spare is taken: recycle after a drain
    assert (await invoke(srv.port, event)).json()["errorType"] == "Sandbox.Timedout"  # type: ignore[index]
    # No spare left: this slot waits on its thread, and the process cannot go on.
    assert told == ["hung_threads", "stuck_threads"] and srv.lane.in_flight == 1
    (tmp_path / "release").touch()
    while srv.lane.in_flight or srv.pool.hung:
        await asyncio.sleep(0.005)


async def test_a_queued_call_is_answered_at_its_deadline_while_the_slot_stays_busy(
    inproc, tmp_path: Path
) -> None:
    srv = await inproc("tests.apps.basic.stubborn_gate", slots=1, queue=2, timeout=0.3)
    event = {"dir": str(tmp_path)}
    running = asyncio.ensure_future(invoke(srv.port, event))
    while not list(tmp_path.glob("started-*")):
        await asyncio.sleep(0.005)
    queued = await invoke(srv.port, event)
    body = queued.json()
    assert body["errorType"] == "Sandbox.Timedout"  # type: ignore[index]
    assert body["errorMessage"] == "Task timed out after 0.30 seconds waiting for a free slot"  # type: ignore[index]
    assert not running.done()  # the slot is still held: the queue's own deadline answered
    assert len(list(tmp_path.glob("started-*"))) == 1  # the expired call never ran
    (tmp_path / "release").touch()
    assert (await running).json()["errorType"] == "Sandbox.Timedout"  # type: ignore[index]


async def test_drain_answers_queued_jobs_that_cannot_run(inproc, tmp_path: Path) -> None:
    srv = await inproc("tests.apps.basic.gate", slots=1, queue=2)
    event = {"dir": str(tmp_path)}
    calls = [asyncio.ensure_future(invoke(srv.port, event)) for _ in range(3)]
    while srv.lane.depth < 2:
        await asyncio.sleep(0.005)
    finished = await srv.pool.drain(0.2)
    assert finished is False
    answers = await asyncio.gather(*calls)
    assert [a.json()["errorType"] for a in answers] == ["Runtime.ExitError"] * 3  # type: ignore[index]


async def test_a_timed_out_thread_that_later_raises_does_not_cost_its_slot(
    inproc, tmp_path: Path
) -> None:
    srv = await inproc("tests.apps.basic.sync_gate_then_fail", slots=1, queue=2, timeout=0.2)
    event = {"dir": str(tmp_path)}
    assert (await invoke(srv.port, event)).json()["errorType"] == "Sandbox.Timedout"  # type: ignore[index]
    (tmp_path / "release").touch()  # the abandoned thread now finishes, raising
    while srv.lane.in_flight:
        await asyncio.sleep(0.005)
    # The slot survived: the next invocation runs (and fails in its own right).
    assert (await invoke(srv.port, event)).json()["errorType"] == "RuntimeError"  # type: ignore[index]
    assert all(slot.task is not None and not slot.task.done() for slot in srv.pool.slots)


async def test_short_invocations_teach_their_route_one_in_eight_others_every_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Config(handler="tests.apps.basic.echo")
    profiles = Profiles()
    lanes = Lanes([Lane(SPRINTER, 2, 64), Lane(MARATHON, 1, 8)], profiles)
    pool = Pool(
        handlers.load(config.handler, task_root=str(ROOT)),
        lanes,
        config,
        worker_tmp=str(tmp_path),
        metrics=Metrics(),
    )
    pool.start()
    answered: asyncio.Queue[object] = asyncio.Queue()

    def reply(result: object, error: object) -> None:
        answered.put_nowait(result)

    async def run(route: str, n: int, size: int = 0) -> int:
        for i in range(n):
            assert pool.submit(Job({"i": i}, reply, route=route, size=size))
            await answered.get()
        return profiles.routes[route].count if route in profiles.routes else 0

    # Every invocation counts as short (whatever this box's speed): one in eight is seen.
    monkeypatch.setattr(pool_module, "OBSERVE_ALL_FROM", 3600.0)
    assert await run("short", 4 * OBSERVE_EVERY) == 4
    # A large payload is always seen: it alone can make a fast route a marathon.
    assert await run("large", 3, size=config.marathon_bytes + 1) == 3
    assert profiles.lane_for("large") == MARATHON
    # Every invocation counts as long: each one is seen.
    monkeypatch.setattr(pool_module, "OBSERVE_ALL_FROM", 0.0)
    assert await run("long", 5) == 5
    await pool.drain(0.5)


async def test_a_slot_cancelled_between_its_wake_up_and_its_job_answers_the_job(
    tmp_path: Path,
) -> None:
    config = Config(handler="tests.apps.basic.echo")
    lane = Lane(SPRINTER, 2, 4)
    pool = Pool(
        handlers.load(config.handler, task_root=str(ROOT)),
        Lanes([lane]),
        config,
        worker_tmp=str(tmp_path),
        metrics=Metrics(),
    )
    pool.start()
    while lane.idle < 2:  # both slots waiting for a job
        await asyncio.sleep(0)
    answers: list[tuple[object, LambdaError | None]] = []
    assert pool.submit(Job({"n": 1}, lambda result, error: answers.append((result, error))))
    # In the same pass of the loop, before any slot runs: cancel every slot (as a drain
    # out of time does). The slot handed the job must answer it on its way out.
    for slot in pool.slots:
        assert slot.task is not None
        slot.task.cancel()
    await asyncio.gather(*(s.task for s in pool.slots if s.task), return_exceptions=True)
    assert len(answers) == 1
    result, error = answers[0]
    assert result is None and error is not None and error.error_type == "Runtime.ExitError"
    await pool.drain(0.1)


async def _threads(port: int, event: dict[str, object], n: int) -> list[str]:
    """Invoke `tests.apps.basic.sync_where` n times, one after another: where each ran."""
    return [(await invoke(port, event)).json()["thread"] for _ in range(n)]  # type: ignore[index]


async def test_a_sync_handler_whose_calls_never_block_moves_onto_the_loop(inproc) -> None:
    srv = await inproc("tests.apps.basic.sync_where", slots=4)
    threads = await _threads(srv.port, {}, TRUST + 4)
    assert "MainThread" not in threads[:TRUST]
    assert threads[TRUST:] == ["MainThread"] * 4


async def test_a_call_that_blocks_on_the_loop_sends_its_handler_back_to_threads(inproc) -> None:
    srv = await inproc("tests.apps.basic.sync_where", slots=4)
    await _threads(srv.port, {}, TRUST)
    assert await _threads(srv.port, {"sleep": 0.01}, 1) == ["MainThread"]  # it blocked there
    # Back on threads, it must now earn the loop with a streak twice as long.
    after = await _threads(srv.port, {}, 2 * TRUST + 1)
    assert "MainThread" not in after[: 2 * TRUST]
    assert after[-1] == "MainThread"


async def test_a_sync_handler_whose_calls_block_stays_on_threads(inproc) -> None:
    srv = await inproc("tests.apps.basic.sync_where", slots=4)
    assert "MainThread" not in await _threads(srv.port, {"sleep": 0.001}, TRUST + 4)


async def test_sync_handlers_always_run_on_threads_when_the_bound_is_zero(inproc) -> None:
    srv = await inproc("tests.apps.basic.sync_where", slots=4, sync_on_loop_ms=0)
    assert "MainThread" not in await _threads(srv.port, {}, TRUST + 4)


async def test_a_sync_handler_on_the_loop_is_stopped_at_its_deadline(inproc) -> None:
    srv = await inproc("tests.apps.basic.sync_where", slots=4, timeout=0.5)
    await _threads(srv.port, {}, TRUST)
    answer = await invoke(srv.port, {"sleep": 60})
    assert answer.json()["errorType"] == "Sandbox.Timedout"  # type: ignore[index]
    # Stopped, not left running: no slot is still busy with it (a thread would be).
    assert srv.lane.in_flight == 0
    assert await _threads(srv.port, {}, 1) != ["MainThread"]  # and back on threads


async def test_a_timer_armed_for_an_earlier_deadline_lets_a_later_call_run_on(inproc) -> None:
    srv = await inproc("tests.apps.basic.sync_where", slots=4)
    await _threads(srv.port, {}, TRUST)
    # As an earlier call leaves it: armed for a deadline before the next call's own.
    srv.pool._arm(time.time() + 0.05)
    answer = await invoke(srv.port, {"sleep": 0.3})  # the alarm comes while it sleeps
    assert answer.json() == {"thread": "MainThread"}  # not stopped: its deadline is far
    # The alarm armed the timer again, for the rest of that call's 300 s.
    assert signal.getitimer(signal.ITIMER_REAL)[0] > 200


async def test_a_call_whose_deadline_comes_before_the_armed_timer_arms_its_own(inproc) -> None:
    srv = await inproc("tests.apps.basic.sync_where", slots=4, timeout=0.5)
    await _threads(srv.port, {}, TRUST)
    srv.pool._arm(time.time() + 1000)  # armed by a call with a later deadline
    answer = await invoke(srv.port, {"sleep": 60})
    assert answer.json()["errorType"] == "Sandbox.Timedout"  # type: ignore[index]
    assert srv.lane.in_flight == 0


async def test_a_sync_handler_on_the_loop_may_run_an_event_loop_of_its_own(inproc) -> None:
    from tests.apps.basic import sync_runs_a_loop

    srv = await inproc("tests.apps.basic.sync_runs_a_loop", slots=4)
    on_thread = (await invoke(srv.port, {"n": 1})).json()
    assert on_thread["thread"] != "MainThread" and on_thread["event"] == {"n": 1}
    # Put it on the loop as a streak of quick calls would (the streak has its own tests;
    # on a loaded machine a GIL hand-off mid-call counts as blocking and resets it).
    record = srv.pool.placements.of(sync_runs_a_loop)
    record.on_loop, record.streak = True, record.needed
    # Its own loop, run on the loop's thread. (One call: a loaded machine may count a GIL
    # hand-off inside it as blocking and send the function back to threads after it.)
    answer = (await invoke(srv.port, {"n": 2})).json()
    assert answer == {"thread": "MainThread", "event": {"n": 2}}


async def test_a_stray_alarm_between_calls_on_the_loop_is_harmless(inproc) -> None:
    srv = await inproc("tests.apps.basic.sync_where", slots=4)
    await _threads(srv.port, {}, TRUST)  # on the loop from here on
    os.kill(os.getpid(), signal.SIGALRM)  # no handler is running: nothing to interrupt
    assert await _threads(srv.port, {}, 2) == ["MainThread"] * 2
