"""`worker serve` end to end, as a user runs it: real processes, real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from pathlib import Path

import orjson
import pytest

from tests.client import INVOKE, encode, invoke, read_answer, request


async def _metric(port: int, name: str) -> float:
    text = (await request(port, "GET", "/_worker/metrics")).body.decode()
    match = re.search(rf'^{name}{{lane="sprinter"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else -1.0


async def test_200_concurrent_requests_reach_the_configured_concurrency(
    serve, tmp_path: Path
) -> None:
    srv = serve(
        "tests.apps.basic.peak",
        "--workers",
        "1",
        "--concurrency",
        "16",
        "--queue-size",
        "400",
        # One lane holding every slot: the marathon lane's share would cap one route at 12.
        env={"WORKER_MARATHON_SHARE": "0"},
    )
    calls = [asyncio.ensure_future(invoke(srv.port, {"dir": str(tmp_path)})) for _ in range(200)]
    # Every slot busy and the rest waiting: the state that proves the concurrency.
    while (
        await _metric(srv.admin_port, "worker_in_flight") < 16
        or await _metric(srv.admin_port, "worker_queue_depth") < 184
    ):
        await asyncio.sleep(0.01)
    (tmp_path / "release").touch()
    answers = await asyncio.gather(*calls)
    assert {a.status for a in answers} == {200}
    # The handler's own count: exactly the configured concurrency, never more.
    assert max(a.json()["peak"] for a in answers) == 16  # type: ignore[index]


async def test_overload_answers_429_and_every_other_request_200(serve, tmp_path: Path) -> None:
    srv = serve(
        "tests.apps.basic.gate", "--workers", "1", "--concurrency", "2", "--queue-size", "2"
    )
    calls = [asyncio.ensure_future(invoke(srv.port, {"dir": str(tmp_path)})) for _ in range(20)]
    while len([c for c in calls if c.done()]) < 16:  # 2 running + 2 queued; the rest refused
        await asyncio.sleep(0.01)
    (tmp_path / "release").touch()
    answers = await asyncio.gather(*calls)
    statuses = sorted(a.status for a in answers)
    assert statuses == [200] * 4 + [429] * 16
    throttled = next(a for a in answers if a.status == 429)
    assert throttled.headers["retry-after"] == "1"
    assert throttled.json()["errorType"] == "TooManyRequestsException"  # type: ignore[index]
    assert "WORKER_QUEUE_SIZE" in throttled.json()["errorMessage"]  # type: ignore[index]
    # Nothing else was owed on its connection: it is closed, so the client reconnects
    # (and the kernel may place it on a process with room).
    assert throttled.headers["connection"] == "close"
    text = (await request(srv.admin_port, "GET", "/_worker/metrics")).body.decode()
    assert 'worker_rejections_total{lane="sprinter"} 16' in text


async def test_a_request_pipelined_after_a_closing_429_is_never_admitted(
    serve, tmp_path: Path
) -> None:
    # Three sprinter slots and one marathon slot; `slow` invocations are marathons.
    srv = serve(
        "tests.apps.basic.gate",
        *("--workers", "1", "--concurrency", "4", "--queue-size", "1"),
        env={"WORKER_ROUTES": "slow=marathon"},
    )
    sprinter = {"dir": str(tmp_path)}
    calls = []
    for n in range(1, 5):  # the sprinter slots, and the idle marathon slot they borrow, busy
        calls.append(asyncio.ensure_future(invoke(srv.port, sprinter)))
        while len(list(tmp_path.glob("started-*"))) < n:
            await asyncio.sleep(0.01)
    calls.append(asyncio.ensure_future(invoke(srv.port, sprinter)))  # its one queued place
    while 'worker_queue_depth{lane="sprinter"} 1' not in await _metrics(srv.admin_port):
        await asyncio.sleep(0.01)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    # One packet: a sprinter (refused: its lane is full), then a marathon its lane has room
    # for (a queued place). The 429 closes the connection, so the marathon must not run
    # unanswered.
    marathon = {"dir": str(tmp_path), "action": "slow"}
    writer.write(encode("POST", INVOKE, orjson.dumps(sprinter)))
    writer.write(encode("POST", INVOKE, orjson.dumps(marathon)))
    refused = await read_answer(reader)
    assert refused.status == 429 and refused.headers["connection"] == "close"
    # Closed: the marathon got no answer (a close with its bytes unread may be a reset)...
    with contextlib.suppress(ConnectionResetError):
        assert await reader.read() == b""
    writer.close()
    (tmp_path / "release").touch()
    assert [(await c).status for c in calls] == [200] * 5
    # ...and never ran: only the five accepted invocations started.
    assert len(list(tmp_path.glob("started-*"))) == 5


async def _metrics(port: int) -> str:
    return (await request(port, "GET", "/_worker/metrics")).body.decode()


@pytest.mark.parametrize(("queue_wait", "accepted"), [("0.5", 3), ("0", 4)])
async def test_a_wait_past_half_a_typical_invocation_is_refused(
    serve, tmp_path: Path, queue_wait: str, accepted: int
) -> None:
    srv = serve(
        "tests.apps.basic.gate",
        *("--workers", "1", "--concurrency", "2", "--queue-wait", queue_wait),
    )
    warm = tmp_path / "warm"
    warm.mkdir()
    (warm / "release").touch()
    # The lane learns its typical invocation: 0.4 s.
    assert (await invoke(srv.port, {"dir": str(warm), "hold": 0.4})).status == 200
    calls = []
    for n in range(1, 5):  # two run, then queued places 1 and 2 (the count bound is 4)
        calls.append(asyncio.ensure_future(invoke(srv.port, {"dir": str(tmp_path)})))
        while len(list(tmp_path.glob("started-*"))) < min(n, 2):
            await asyncio.sleep(0.01)
    while accepted < 4 and not calls[3].done():  # place 2 waits a whole invocation: refused
        await asyncio.sleep(0.01)
    (tmp_path / "release").touch()
    answers = await asyncio.gather(*calls)
    assert [a.status for a in answers] == [200] * accepted + [429] * (4 - accepted)
    if accepted < 4:
        assert answers[3].json()["errorType"] == "TooManyRequestsException"  # type: ignore[index]


async def test_concurrent_invocations_get_private_scratch_dirs(serve, tmp_path: Path) -> None:
    srv = serve("tests.apps.basic.scratch", "--workers", "1", "--concurrency", "4")
    calls = [asyncio.ensure_future(invoke(srv.port, {"dir": str(tmp_path)})) for _ in range(2)]
    while len(list(tmp_path.glob("started-*"))) < 2:
        await asyncio.sleep(0.01)
    live = [p.read_text() for p in tmp_path.glob("started-*")]
    assert len(set(live)) == 2 and all(os.path.isdir(p) for p in live)
    (tmp_path / "release").touch()
    results = [a.json() for a in await asyncio.gather(*calls)]
    assert all(r["mine"] for r in results)  # type: ignore[index]
    assert {r["tmp"] for r in results} == set(live)  # type: ignore[index]
    assert not any(os.path.exists(p) for p in live)  # neither's files survive it
    tmpdir = results[0]["tmpdir"]  # type: ignore[index]
    assert tmpdir.startswith("/tmp/") and os.stat(tmpdir).st_mode & 0o777 == 0o700


async def test_request_ids_in_logs_match_per_invocation_across_threads(serve) -> None:
    # JSON lines at INFO: as on Lambda, a handler's INFO lines pass only at a level set.
    srv = serve(
        "tests.apps.basic.logs_in_thread",
        "--workers",
        "2",
        "--concurrency",
        "8",
        "--queue-size",
        "64",
        env={"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "INFO"},
    )
    answers = await asyncio.gather(
        *(invoke(srv.port, {"tag": f"t{i}", "lines": 5}) for i in range(24))
    )
    by_tag = {f"t{i}": a.json()["requestId"] for i, a in enumerate(answers)}  # type: ignore[index]
    assert len(set(by_tag.values())) == 24
    srv.stop()  # flushes every worker's output
    lines = [orjson.loads(x) for x in srv.logs().splitlines() if x.startswith("{")]
    handler_lines = [x for x in lines if x.get("logger") == "tests.apps"]
    assert len(handler_lines) == 24 * 5
    for line in handler_lines:
        tag = line["message"].rsplit(" ", 1)[1]
        assert line["requestId"] == by_tag[tag]
        assert {"timestamp", "level", "message", "logger", "requestId"} <= set(line)


async def test_payloads_are_not_logged(serve) -> None:
    srv = serve("tests.apps.basic.fail", "--workers", "1")
    await invoke(srv.port, {"secret": "do-not-log-me"})
    srv.stop()
    assert "do-not-log-me" not in srv.logs()
    assert "ValueError" in srv.logs()


async def test_metrics_add_up_across_worker_processes(serve) -> None:
    srv = serve("tests.apps.basic.whoami", "--workers", "2")
    pids = {(await invoke(srv.port)).json()["pid"] for _ in range(60)}  # type: ignore[index]
    assert len(pids) == 2  # both workers served
    # Each worker publishes its counts at least once a second; the scrape adds them up.
    while await _metric(srv.admin_port, "worker_invocations_total") != 60:
        await asyncio.sleep(0.05)
    text = (await request(srv.admin_port, "GET", "/_worker/metrics")).body.decode()
    assert "worker_processes 2" in text


async def test_bad_input_never_costs_a_worker(serve) -> None:
    srv = serve(
        "tests.apps.basic.mixed", "--workers", "1", "--timeout", "0.3", "--max-payload", "4096"
    )
    before = srv.children()
    assert (await invoke(srv.port, {"do": "raise"})).json()["errorType"] == "RuntimeError"  # type: ignore[index]
    assert (await invoke(srv.port, {"do": "hang"})).json()["errorType"] == "Sandbox.Timedout"  # type: ignore[index]
    unmarshal = (await invoke(srv.port, {"do": "unmarshalable"})).json()
    assert unmarshal["errorType"] == "Runtime.MarshalError"  # type: ignore[index]
    assert (
        await request(srv.port, "POST", "/2015-03-31/functions/f/invocations", b"{oops")
    ).status == 400
    assert (
        await request(srv.port, "POST", "/2015-03-31/functions/f/invocations", b"x" * 8192)
    ).status == 413
    assert srv.children() == before
    assert (await invoke(srv.port, {})).json()["pid"] == before[0]  # type: ignore[index]


async def test_a_marathon_flood_does_not_starve_sprinters(serve, tmp_path: Path) -> None:
    # 4 slots: 3 sprinters (1 never lent), 1 marathon; "slow" is a marathon by configuration.
    srv = serve(
        "tests.apps.basic.lanes_app",
        "--workers", "1", "--concurrency", "4", "--queue-size", "4",
        env={"WORKER_ROUTES": "slow=marathon"},
    )  # fmt: skip
    slow = {"action": "slow", "dir": str(tmp_path)}
    flood = [asyncio.ensure_future(invoke(srv.port, slow)) for _ in range(8)]
    # The marathon lane's slot and the 2 sprinter slots it may borrow run 3, 4 queue, and
    # the last one is refused at once.
    while len([f for f in flood if f.done()]) < 1:
        await asyncio.sleep(0.01)
    while len(list(tmp_path.glob("started-*"))) < 3:
        await asyncio.sleep(0.01)
    assert [f.result().status for f in flood if f.done()] == [429]
    # One after another, on the reserved sprinter slot.
    fast = [await invoke(srv.port, {"action": "fast"}) for _ in range(20)]
    assert [a.json() for a in fast] == [{"action": "fast", "lane": "sprinter"}] * 20
    assert len(list(tmp_path.glob("started-*"))) == 3  # the flood is still held
    (tmp_path / "release").touch()
    answers = await asyncio.gather(*flood)
    assert sorted(a.status for a in answers) == [200] * 7 + [429]
    assert all(a.json()["lane"] == "marathon" for a in answers if a.status == 200)  # type: ignore[index]


async def test_a_route_learned_as_slow_moves_to_the_marathon_lane(serve) -> None:
    srv = serve(
        "tests.apps.basic.lanes_app",
        "--workers", "1", "--concurrency", "4",
        env={"WORKER_MARATHON_SECONDS": "0.05"},
    )  # fmt: skip
    lanes = [
        (await invoke(srv.port, {"action": "learn", "seconds": 0.1})).json()["lane"]
        for _ in range(4)
    ]  # type: ignore[index]
    # Unknown at first (a sprinter); once it has taken longer than the threshold, a marathon.
    assert lanes == ["sprinter", "marathon", "marathon", "marathon"]
    assert (await invoke(srv.port, {"action": "fast"})).json()["lane"] == "sprinter"  # type: ignore[index]


async def test_marathons_borrow_idle_sprinter_slots_and_a_sprinter_still_finds_one(
    serve, tmp_path: Path
) -> None:
    # 8 slots: 2 marathon, 6 sprinter of which 1 is never lent (WORKER_LEND_RESERVE).
    srv = serve(
        "tests.apps.basic.gate",
        *("--workers", "1", "--concurrency", "8"),
        env={"WORKER_ROUTES": "slow=marathon"},
    )
    held = tmp_path / "held"
    held.mkdir()
    marathons = [
        asyncio.ensure_future(invoke(srv.port, {"dir": str(held), "action": "slow"}))
        for _ in range(7)
    ]
    while len(list(held.glob("started-*"))) < 7:  # every one runs: none queued or refused
        await asyncio.sleep(0.01)
    free = tmp_path / "free"
    free.mkdir()
    (free / "release").touch()
    sprinter = await invoke(srv.port, {"dir": str(free)})
    assert sprinter.status == 200  # the reserved slot was left to it
    (held / "release").touch()
    assert [(await m).status for m in marathons] == [200] * 7
