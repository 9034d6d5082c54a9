"""Lambda mode (`worker lambda`) under the emulator, and the Runtime API client's pieces."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import simplejson

from tests.client import invoke
from tests.conftest import ROOT, _environ
from tests.fake_runtime_api import FakeRuntimeApi, Runtime, worker_lambda
from worker.config import DEFAULT_MAX_PAYLOAD
from worker.errors import LambdaError
from worker.jobs import Job
from worker.placement import TRUST
from worker.sources.http_client import ClientConnection, Response
from worker.sources.runtime_api import (
    RuntimeApiSource,
    _decode_event,
    error_type_header,
    parse_address,
)


def test_error_type_header_always_matches_the_platform_pattern() -> None:
    assert error_type_header("Runtime.ImportModuleError") == "Runtime.ImportModuleError"
    assert error_type_header("Function.ResponseSizeTooLarge") == "Function.ResponseSizeTooLarge"
    assert error_type_header("ValueError") == "Function.ValueError"
    assert error_type_header("Sandbox.Timedout") == "Function.Timedout"
    assert error_type_header("my_error") == "Function.Myerror"


def test_events_that_are_not_json() -> None:
    raw = Response(200, {b"content-type": b"application/octet-stream"}, b"\x00\x01")
    assert _decode_event(raw) == b"\x00\x01"
    with pytest.raises(LambdaError) as info:
        _decode_event(Response(200, {b"content-type": b"application/json"}, b"{nope"))
    assert info.value.error_type == "Runtime.UnmarshalError"
    assert _decode_event(Response(200, {}, b'{"a": 1}')) == {"a": 1}


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:9001") == ("127.0.0.1", 9001)
    with pytest.raises(ValueError):
        parse_address("nowhere")


async def test_sync_and_async_handlers(emulate) -> None:
    for handler in ("tests.apps.basic.echo", "tests.apps.basic.sync_echo"):
        emu = emulate(handler)
        ans = await invoke(emu.port, {"n": 1})
        assert ans.status == 200
        assert ans.json() in ({"n": 1}, {"event": {"n": 1}, "thread": ans.json().get("thread")})  # type: ignore[union-attr]


async def test_slots_reach_max_concurrency_with_fewer_processes(emulate, tmp_path: Path) -> None:
    # 32 slots: two processes (one per 16 slots, LMI's per-vCPU sizing), not 32.
    emu = emulate("tests.apps.basic.peak", "--concurrency", "32", "--queue-size", "200")
    calls = [asyncio.ensure_future(invoke(emu.port, {"dir": str(tmp_path)})) for _ in range(80)]
    runtime_pid = emu.children()[0]
    while len(Path(f"/proc/{runtime_pid}/task/{runtime_pid}/children").read_text().split()) < 2:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0)  # the slots start as the invocations arrive
    (tmp_path / "release").touch()
    answers = await asyncio.gather(*calls)
    assert {a.status for a in answers} == {200}
    peaks = {}
    for a in answers:
        body = a.json()
        peaks[body["pid"]] = max(peaks.get(body["pid"], 0), body["peak"])  # type: ignore[index]
    assert len(peaks) == 2  # two processes, not a process per concurrent event
    assert sum(peaks.values()) <= 32


async def test_peak_concurrency_is_the_configured_one(emulate, tmp_path: Path) -> None:
    emu = emulate("tests.apps.basic.gate", "--concurrency", "8", "--queue-size", "200")
    calls = [asyncio.ensure_future(invoke(emu.port, {"dir": str(tmp_path)})) for _ in range(30)]
    while len(list(tmp_path.glob("started-*"))) < 8:
        await asyncio.sleep(0.01)
    assert len(list(tmp_path.glob("started-*"))) == 8  # not one more: 8 slots, 8 /next
    (tmp_path / "release").touch()
    answers = await asyncio.gather(*calls)
    assert [a.status for a in answers] == [200] * 30


async def test_handler_error_timeout_and_oversize(emulate) -> None:
    emu = emulate("tests.apps.basic.fail")
    ans = await invoke(emu.port)
    assert ans.status == 200 and ans.headers["x-amz-function-error"] == "Unhandled"
    assert ans.json()["errorType"] == "ValueError" and ans.json()["errorMessage"] == "boom"  # type: ignore[index]
    emu = emulate("tests.apps.basic.hang", "--timeout", "1")
    body = (await invoke(emu.port)).json()
    assert body["errorType"] == "Sandbox.Timedout"  # type: ignore[index]
    assert body["errorMessage"] == "Task timed out after 1.00 seconds"  # type: ignore[index]
    emu = emulate("tests.apps.basic.oversize")
    body = (await invoke(emu.port, {"bytes": 7 * 1024 * 1024})).json()
    assert body["errorType"] == "Function.ResponseSizeTooLarge"  # type: ignore[index]


async def test_context_gets_every_next_header(emulate) -> None:
    emu = emulate("tests.apps.basic.context_info", "--timeout", "30")
    cc = base64.b64encode(orjson.dumps({"client": {"installation_id": "i-1"}, "custom": {"a": 1}}))
    ans = await invoke(emu.port, {}, {"X-Amz-Client-Context": cc.decode()})
    info = ans.json()
    assert info["aws_request_id"] == ans.headers["x-amzn-requestid"]  # type: ignore[index]
    assert info["invoked_function_arn"].endswith(":function:runtime-worker")  # type: ignore[index]
    assert 25_000 < info["remaining"] <= 30_000  # type: ignore[index]
    assert info["client_context"]["installation_id"] == "i-1"  # type: ignore[index]
    assert info["memory_limit_in_mb"] == "3008"  # type: ignore[index]
    emu = emulate("tests.apps.basic.trace")
    trace = "Root=1-abc-def;Sampled=1"
    assert (await invoke(emu.port, {}, {"X-Amzn-Trace-Id": trace})).json() == {"trace_id": trace}


async def test_init_error_reaches_every_invoke_and_the_runtime_exits_1(emulate) -> None:
    emu = emulate("no_such_module_xyz.handler", ready=False)
    while "the runtime exited" not in emu.logs():
        await asyncio.sleep(0.02)
    assert '"status":1' in emu.logs()
    ans = await invoke(emu.port)
    assert ans.headers["x-amz-function-error"] == "Unhandled"
    assert ans.json()["errorType"] == "Runtime.ImportModuleError"  # type: ignore[index]


async def test_sigterm_lets_in_flight_invocations_post_their_answers(
    emulate, tmp_path: Path
) -> None:
    emu = emulate("tests.apps.basic.gate", "--concurrency", "4")
    calls = [asyncio.ensure_future(invoke(emu.port, {"dir": str(tmp_path)})) for _ in range(4)]
    while len(list(tmp_path.glob("started-*"))) < 4:
        await asyncio.sleep(0.01)
    runtime = emu.children()[0]
    emu.proc.send_signal(signal.SIGTERM)  # the emulator forwards it to the runtime
    while "draining" not in emu.logs():
        await asyncio.sleep(0.01)
    (tmp_path / "release").touch()
    answers = await asyncio.gather(*calls)
    assert [a.status for a in answers] == [200] * 4
    assert all("done" in a.json() for a in answers)  # type: ignore[operator]
    assert await asyncio.to_thread(emu.proc.wait, 30) == 0
    assert '"drained":true' in emu.logs() and runtime not in emu.children()


def _garbage_server(mode: str) -> tuple[socket.socket, threading.Thread]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                if mode == "garbage":
                    conn.sendall(b"this is not HTTP at all\r\n\r\n")
                elif mode == "500":
                    conn.sendall(b"HTTP/1.1 500 Oops\r\ncontent-length: 2\r\n\r\nno")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return srv, thread


@pytest.mark.parametrize("mode", ["garbage", "500", "drop"])
def test_a_failing_runtime_api_ends_the_environment_with_a_clear_line(mode: str) -> None:
    srv, _ = _garbage_server(mode)
    env = _environ(
        {
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{srv.getsockname()[1]}",
            "WORKER_RUNTIME_API_ATTEMPTS": "3",
        }
    )
    try:
        run = subprocess.run(
            [sys.executable, "-m", "worker", "tests.apps.basic.echo"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        srv.close()
    assert run.returncode == 1
    assert "the Runtime API failed 3 times in a row, ending the environment" in run.stdout


def test_lambda_mode_without_a_runtime_api_is_refused() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "worker", "lambda", "tests.apps.basic.echo"],
        cwd=ROOT,
        env=_environ(None),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "AWS_LAMBDA_RUNTIME_API" in run.stdout


async def test_the_trace_id_is_exported_to_the_environment_and_the_context(emulate) -> None:
    one = emulate("tests.apps.basic.trace_env")
    ans = (await invoke(one.port, {}, {"X-Amzn-Trace-Id": "Root=1-one"})).json()
    assert ans["env"] == ans["ctx"] == "Root=1-one"  # type: ignore[index]


@pytest.mark.parametrize("handler", ["trace_after_others", "sync_trace_after_others"])
async def test_concurrent_invocations_each_read_their_own_trace_id(emulate, handler) -> None:
    many = emulate(f"tests.apps.environment_apps.{handler}", "--concurrency", "8")
    ids = [f"Root=1-{n:08x}-many;Sampled=1" for n in range(8)]
    answers = await asyncio.gather(
        *(invoke(many.port, {}, {"X-Amzn-Trace-Id": trace}) for trace in ids)
    )
    # Libraries read `_X_AMZN_TRACE_ID` (Powertools, the X-Ray SDK): each invocation sees
    # its own although they share the process.
    assert [a.json() for a in answers] == [{"env": t, "ctx": t} for t in ids]


async def test_a_killed_lambda_worker_is_replaced(emulate) -> None:
    emu = emulate("tests.apps.basic.whoami", "--concurrency", "4", env={"WORKER_PROCESSES": "2"})
    runtime = emu.children()[0]

    def workers() -> list[int]:
        path = Path(f"/proc/{runtime}/task/{runtime}/children")
        return [int(p) for p in path.read_text().split()]

    while len(workers()) < 2:
        await asyncio.sleep(0.01)
    victim = workers()[0]
    os.kill(victim, signal.SIGKILL)
    while victim in workers() or len(workers()) < 2:
        await asyncio.sleep(0.01)
    replacement = (set(workers()) - {victim}).pop()
    served = set()
    for _ in range(200):
        served.add((await invoke(emu.port)).json()["pid"])  # type: ignore[index]
        if replacement in served:
            break
    assert replacement in served and victim not in served


async def test_one_slot_sync_handler_runs_inline_and_is_interrupted_at_its_deadline(
    emulate, tmp_path: Path
) -> None:
    emu = emulate("tests.apps.basic.sync_marked_sleep", "--timeout", "1")
    first = (await invoke(emu.port, {"dir": str(tmp_path), "seconds": 60})).json()
    assert first["errorType"] == "Sandbox.Timedout"  # type: ignore[index]
    second = (await invoke(emu.port, {"dir": str(tmp_path), "seconds": 0})).json()
    assert second["thread"] == "MainThread"  # type: ignore[index]
    # Only the second left its mark: the first was stopped, and its slot freed at once
    # (a thread would have held the slot, and this call, for its whole minute).
    assert len(list(tmp_path.glob("finished-*"))) == 1


async def test_one_slot_sync_handler_on_the_loop_may_run_an_event_loop_of_its_own(
    emulate,
) -> None:
    """`asyncio.run()` in a sync handler (how many call async libraries) works on the loop's
    thread, as it does under awslambdaric."""
    emu = emulate("tests.apps.basic.sync_runs_a_loop")
    for n in range(3):
        answer = (await invoke(emu.port, {"n": n})).json()
        assert answer == {"thread": "MainThread", "event": {"n": n}}


def _event(request_id: bytes) -> bytes:
    """A fake Runtime API's `/next` response: one invocation, event `{"x": 1}`."""
    body = b'{"x": 1}'
    head = b"HTTP/1.1 200 OK\r\nlambda-runtime-aws-request-id: %s\r\ncontent-length: %d\r\n\r\n"
    return head % (request_id, len(body)) + body


def _answering(ran: list[Any] | None = None) -> Callable[[Job], bool]:
    """A pool's `submit` that answers every job at once with `{"got": x}` (and notes the
    event in `ran`)."""

    def submit(job: Job) -> bool:
        if ran is not None:
            ran.append(job.event)
        asyncio.get_running_loop().call_soon(job.reply, {"got": job.event["x"]}, None)
        return True

    return submit


async def test_an_answer_whose_connection_breaks_is_posted_again_on_a_fresh_one() -> None:
    """The slot writes the answer on the poller's connection; when that connection dies
    before the Runtime API replies, the same answer goes out again on a new one."""
    posts: list[tuple[bytes, bytes]] = []
    delivered, accepted = asyncio.Event(), asyncio.Event()

    async def runtime_api(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            line, *fields = head.split(b"\r\n")
            sizes = [
                int(f.split(b":")[1]) for f in fields if f.lower().startswith(b"content-length")
            ]
            body = await reader.readexactly(sizes[0] if sizes else 0)
            if line.startswith(b"GET"):
                if delivered.is_set():
                    await asyncio.Event().wait()  # no second event: the long poll waits
                delivered.set()
                writer.write(_event(b"r1"))
                continue
            posts.append((line, body))
            if len(posts) == 1:  # the first answer: the connection dies under it
                writer.close()
                return
            writer.write(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
            accepted.set()

    server = await asyncio.start_server(runtime_api, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    source = RuntimeApiSource(f"127.0.0.1:{port}", _answering(), slots=1)
    running = asyncio.ensure_future(source.run())
    await asyncio.wait_for(accepted.wait(), 10)
    source.stop()
    assert await asyncio.wait_for(running, 10) == 0
    server.close()
    line = b"POST /2018-06-01/runtime/invocation/r1/response HTTP/1.1"
    assert posts == [(line, b'{"got":1}'), (line, b'{"got":1}')]


class _OneEventApi(asyncio.Protocol):
    """A Runtime API that hands out one event (r1), then long-polls every `/next`.

    `hold`: the answer's reply waits until the next request has arrived, which only a
    pipelining client sends before that reply. Records what was read behind the answer.
    """

    def __init__(self, hold: bool) -> None:
        self.hold = hold
        self.buf = b""
        self.lines: list[bytes] = []
        self.behind_answer: bytes | None = None
        self.held = False
        self.polled_again = asyncio.Event()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, _, rest = self.buf.partition(b"\r\n\r\n")
            size = sum(
                int(f.split(b":")[1])
                for f in head.split(b"\r\n")
                if f.lower().startswith(b"content-length")
            )
            if len(rest) < size:
                return
            self.buf = rest[size:]
            line = head.split(b"\r\n")[0]
            self.lines.append(line)
            if line.startswith(b"POST"):
                self.behind_answer = self.buf
                if self.hold:
                    self.held = True
                    continue
                self._accepted()
            elif len(self.lines) == 1:
                self.transport.write(_event(b"r1"))
            else:
                if self.held:  # the `/next` came before the answer's reply
                    self._accepted()
                self.polled_again.set()  # and long-polls: no reply

    def _accepted(self) -> None:
        assert self.transport is not None
        self.held = False
        self.transport.write(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")


async def _serve_one_event(pipeline: bool) -> _OneEventApi:
    api = _OneEventApi(hold=pipeline)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: api, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    source = RuntimeApiSource(f"127.0.0.1:{port}", _answering(), slots=1, pipeline=pipeline)
    running = asyncio.ensure_future(source.run())
    await asyncio.wait_for(api.polled_again.wait(), 10)
    source.stop()
    assert await asyncio.wait_for(running, 10) == 0
    server.close()
    return api


async def test_the_next_poll_goes_out_with_the_answer() -> None:
    """Pipelined: the `/next` reaches the Runtime API before it has replied to the answer
    (the fake holds that reply until then), in the same read as the answer."""
    api = await _serve_one_event(pipeline=True)
    answer = b"POST /2018-06-01/runtime/invocation/r1/response HTTP/1.1"
    next_line = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1"
    assert api.lines == [next_line, answer, next_line]
    assert api.behind_answer is not None and api.behind_answer.startswith(next_line)


async def test_without_pipelining_the_next_poll_waits_for_the_reply() -> None:
    api = await _serve_one_event(pipeline=False)
    assert api.lines[1].startswith(b"POST /2018-06-01/runtime/invocation/r1/response ")
    assert api.lines[2].startswith(b"GET /2018-06-01/runtime/invocation/next ")
    assert api.behind_answer == b""  # nothing could be sent before the reply


async def test_a_runtime_api_that_closes_after_each_answer_costs_no_failures() -> None:
    """A Runtime API that closes the connection after replying to an answer drops the
    `/next` written behind it; that `/next` is asked again on a fresh connection, and
    it is no failure of the API (with `attempts=1` one failure would end it)."""
    events = 3
    served: list[bytes] = []
    answers: list[bytes] = []
    done = asyncio.Event()

    async def runtime_api(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n")[0]
            if line.startswith(b"POST"):
                answers.append(line.split(b"/")[4])
                writer.write(
                    b"HTTP/1.1 202 Accepted\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
                )
                await writer.drain()
                writer.close()
                return
            if len(served) == events:
                done.set()
                await asyncio.Event().wait()  # no more events: the long poll waits
            served.append(b"r%d" % len(served))
            writer.write(_event(served[-1]))

    server = await asyncio.start_server(runtime_api, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    source = RuntimeApiSource(f"127.0.0.1:{port}", _answering(), slots=1, attempts=1)
    running = asyncio.ensure_future(source.run())
    await asyncio.wait_for(done.wait(), 10)
    assert not source.gone
    source.stop()
    assert await asyncio.wait_for(running, 10) == 0
    server.close()
    assert answers == served == [b"r0", b"r1", b"r2"]


async def test_an_event_that_comes_back_as_the_stop_cancels_the_wait_still_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stop cancels pollers waiting in `/next`; one whose `/next` has just come back
    with an event (its result set, the poller not yet resumed) runs it and posts the
    answer instead of dropping it."""
    api = _OneEventApi(hold=False)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: api, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    ran: list[Any] = []

    source = RuntimeApiSource(f"127.0.0.1:{port}", _answering(ran), slots=1)
    complete = ClientConnection._complete

    def then_stop(conn: ClientConnection, response: Any, keep_alive: bool) -> None:
        complete(conn, response, keep_alive)  # the `/next` future now holds the event
        if response.status == 200:
            source.stop()  # cancels the poller before it resumes

    monkeypatch.setattr(ClientConnection, "_complete", then_stop)
    assert await asyncio.wait_for(source.run(), 10) == 0
    server.close()
    assert ran == [{"x": 1}]
    assert api.lines[1] == b"POST /2018-06-01/runtime/invocation/r1/response HTTP/1.1"


# -- what AWS's own Runtime API sees: payload limit, user-only stack traces, deadline ------

APP = ROOT / "tests" / "apps" / "lambda_errors.py"
_ENTRY = re.compile(r'  File "(?P<path>[^"]+)", line (?P<line>\d+), in (?P<name>\S+)\n    .+\n')


def _line_of(text: str) -> int:
    """The line of APP that holds `text`."""
    return [line.strip() for line in APP.read_text().splitlines()].index(text) + 1


def _frames(stack: list[str]) -> list[tuple[str, int, str]]:
    """(path, line, function) of each stackTrace entry, each checked to be in
    awslambdaric's format."""
    frames = []
    for entry in stack:
        match = _ENTRY.fullmatch(entry)
        assert match is not None, entry
        frames.append((match["path"], int(match["line"]), match["name"]))
    return frames


async def test_a_response_of_the_runtime_apis_limit_is_delivered_and_one_byte_more_refused(
    emulate,
) -> None:
    emu = emulate("tests.apps.lambda_errors.sized")
    ok = await invoke(emu.port, {"bytes": DEFAULT_MAX_PAYLOAD})
    assert ok.status == 200 and "x-amz-function-error" not in ok.headers
    assert ok.body == b'"' + b"x" * (DEFAULT_MAX_PAYLOAD - 2) + b'"'
    over = await invoke(emu.port, {"bytes": DEFAULT_MAX_PAYLOAD + 1})
    assert over.headers["x-amz-function-error"] == "Unhandled"
    body = over.json()
    assert body["errorType"] == "Function.ResponseSizeTooLarge"  # type: ignore[index]
    assert body["errorMessage"] == (  # type: ignore[index]
        "Response payload size (6291557 bytes) exceeded maximum allowed payload size "
        "(6291556 bytes)."
    )


SYNC_RAISE = [(str(APP), _line_of('raise ValueError("sync boom")'), "sync_raise")]


@pytest.mark.parametrize(
    ("handler", "args", "env", "frames"),
    [
        # One slot: a sync handler runs on the loop's thread (pool._run_inline).
        ("sync_raise", (), None, SYNC_RAISE),
        # Several: on a thread, through the executor and placement.run_counted.
        ("sync_raise", ("--concurrency", "2"), None, SYNC_RAISE),
        # On a thread, never judged for the loop.
        ("sync_raise", ("--concurrency", "2"), {"WORKER_SYNC_ON_LOOP_MS": "0"}, SYNC_RAISE),
        # From the loop, in the slot's task.
        (
            "async_raise",
            ("--concurrency", "2"),
            None,
            [(str(APP), _line_of('raise ValueError("async boom")'), "async_raise")],
        ),
    ],
    ids=["inline", "thread-judged", "thread", "async"],
)
async def test_a_handlers_stack_trace_holds_its_own_frames_only(
    emulate,
    handler: str,
    args: tuple[str, ...],
    env: dict[str, str] | None,
    frames: list[tuple[str, int, str]],
) -> None:
    emu = emulate(f"tests.apps.lambda_errors.{handler}", *args, env=env)
    body = (await invoke(emu.port, {"fail": True})).json()
    assert body["errorType"] == "ValueError"  # type: ignore[index]
    assert _frames(body["stackTrace"]) == frames  # type: ignore[index]


async def test_a_sync_handler_placed_on_the_loop_shows_its_own_frames_only(emulate) -> None:
    emu = emulate("tests.apps.lambda_errors.sync_raise", "--concurrency", "2")
    # Calls that never block earn the function its place on the loop (worker.placement).
    for _ in range(20 * TRUST):
        if (await invoke(emu.port, {})).json() == {"thread": "MainThread"}:
            break
    else:
        pytest.fail("the handler was never placed on the loop")
    body = (await invoke(emu.port, {"fail": True})).json()
    assert _frames(body["stackTrace"]) == SYNC_RAISE  # type: ignore[index]


async def test_frames_of_a_library_the_handler_called_are_kept(emulate) -> None:
    emu = emulate("tests.apps.lambda_errors.through_library", "--concurrency", "2")
    body = (await invoke(emu.port, {})).json()
    assert body["errorType"] == "JSONDecodeError"  # type: ignore[index]
    frames = _frames(body["stackTrace"])  # type: ignore[index]
    assert frames[0] == (
        str(APP),
        _line_of('return simplejson.loads("{not json")'),
        "through_library",
    )
    library = os.path.dirname(simplejson.__file__) + os.sep
    assert len(frames) > 1 and all(path.startswith(library) for path, _, _ in frames[1:])
    assert frames[-1][2] == "raw_decode"  # down to where the library raised


def _timeout_lines(logs: str, request_id: str) -> list[dict[str, Any]]:
    lines = [orjson.loads(line) for line in logs.splitlines() if line.startswith("{")]
    return [
        line
        for line in lines
        if line.get("requestId") == request_id and "Task timed out after" in line["message"]
    ]


@pytest.mark.parametrize(
    ("handler", "slots"),
    [
        ("tests.apps.basic.gate", 1),  # async: cancelled at its deadline
        ("tests.apps.basic.sync_gate", 1),  # one slot: on the loop, stopped by SIGALRM
        # On a thread that cannot be stopped: counted, and its slot goes on with a spare.
        ("tests.apps.basic.sync_gate", 2),
    ],
    ids=["async", "sync-inline", "sync-thread"],
)
async def test_at_the_deadline_the_runtime_posts_nothing_and_asks_for_the_next_event(
    tmp_path: Path, handler: str, slots: int
) -> None:
    """On Lambda the platform answers a timeout: the runtime logs it (error level, with the
    request id), posts nothing for it, and its poller asks for the next invocation."""
    api = FakeRuntimeApi()
    await api.start()
    env = {"AWS_LAMBDA_MAX_CONCURRENCY": str(slots)} if slots > 1 else None
    runtime = Runtime(worker_lambda(handler), api.address, tmp_path / "runtime.log", env)
    held, free = tmp_path / "held", tmp_path / "free"
    held.mkdir()
    free.mkdir()
    (free / "release").touch()
    try:
        await api.wait_for(lambda: api.polls == slots)  # every slot waits for an event
        polls = api.polls
        api.add("r1", {"dir": str(held)}, timeout=2)
        # The runtime's next `/next` comes once it gave up on r1 (it has one slot free).
        await api.wait_for(lambda: api.polls > polls)
        api.add("r2", {"dir": str(free)})
        await api.wait_for(lambda: bool(api.posted("r2")))
        assert [(p.kind, p.json()) for p in api.posted("r2")] == [("response", {"done": "r2"})]
        assert (held / "started-r1").exists()
        lines = _timeout_lines(runtime.logs(), "r1")
        assert len(lines) == 1 and lines[0]["level"] == "ERROR", runtime.logs()
        assert re.fullmatch(r"Task timed out after \d+\.\d\d seconds", lines[0]["message"])
        assert api.posted("r1") == []  # the platform's answer, not ours
    finally:
        (held / "release").touch()  # a thread still waiting there ends
        await runtime.stop()
        await api.close()
    assert api.posted("r1") == []  # not even late
    warnings = [line for line in runtime.logs().splitlines() if '"level":"WARNING"' in line]
    hung = "a sync handler's thread outlived its deadline"
    assert all(hung in line for line in warnings), warnings  # no other warning


async def test_a_timeout_in_lambda_mode_is_answered_by_the_emulators_clock(
    emulate, tmp_path: Path
) -> None:
    emu = emulate("tests.apps.basic.gate", "--timeout", "2")
    held, free = tmp_path / "held", tmp_path / "free"
    held.mkdir()
    free.mkdir()
    (free / "release").touch()
    timed_out = await invoke(emu.port, {"dir": str(held)})
    request_id = timed_out.headers["x-amzn-requestid"]
    body = timed_out.json()
    assert body["errorType"] == "Sandbox.Timedout"  # type: ignore[index]
    assert body["errorMessage"] == "Task timed out after 2.00 seconds"  # type: ignore[index]
    # The one slot is free for the next invocation at once.
    assert (await invoke(emu.port, {"dir": str(free)})).status == 200
    # The runtime logged its own line for the timeout and posted nothing for it: had it
    # posted, that post would have reached the emulator, in order on its connection,
    # before the `/next` that fetched the second invocation.
    assert len(_timeout_lines(emu.logs(), request_id)) == 1
    assert "after its deadline" not in emu.logs()
