"""The ASGI bridge: scopes, whole and streamed answers, disconnects, deadlines, lifespan.

In-process tests run real FastAPI, Starlette and raw ASGI apps behind the HTTP front on
the test's loop (the `inproc` fixture); the apps wait on events the tests set, so a
stream's next chunk is sent only after the test has read the one before. Lifespan and
drain run in real `worker serve` processes.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import types
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.apps import asgi_apps
from tests.client import INVOKE, encode, invoke, read_answer, request
from tests.conftest import wait_answering
from worker import httpmsg
from worker.errors import LambdaError
from worker.httpmsg import HttpRequest, HttpResponse
from worker.sources.asgi import AsgiApp, Lifespan, run_asgi

BOUND = 10.0  # seconds any awaited state may take before the test fails


@pytest.fixture(autouse=True)
def fresh_apps() -> Iterator[None]:
    asgi_apps.reset()
    yield
    asgi_apps.reset()


def _request(path: str = "/", body: bytes = b"", **fields: Any) -> HttpRequest:
    return HttpRequest(
        fields.pop("method", "GET"),
        path,
        fields.pop("raw_path", path.encode()),
        fields.pop("query_string", b""),
        fields.pop("headers", [(b"host", b"example.com")]),
        body,
        **fields,
    )


async def _wait(name: str) -> None:
    await asyncio.wait_for(asgi_apps.gate(name).wait(), BOUND)


async def _chunk(reader: asyncio.StreamReader) -> bytes:
    """One chunk of a chunked body (b"" for the last)."""
    size = int((await reader.readuntil(b"\r\n")).strip(), 16)
    data = await reader.readexactly(size + 2)
    return data[:-2]


async def _head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return int(lines[0].split(" ")[1]), headers


# -- the bridge alone ---------------------------------------------------------------------


async def test_the_scope_is_asgi3_http_with_a_copy_of_the_lifespan_state() -> None:
    state = {"db": "pool"}
    req = _request(
        "/a b",
        b"payload",
        method="POST",
        query_string=b"x=1&y=%202",
        headers=[(b"host", b"example.com"), (b"x-many", b"1"), (b"x-many", b"2")],
        client=("10.0.0.1", 5555),
        server=("127.0.0.1", 8080),
        raw_path=b"/a%20b",
    )
    answer = await run_asgi(asgi_apps.raw_scope, req, None, state)
    assert isinstance(answer, HttpResponse) and answer.status == 200
    scope = orjson.loads(answer.body)
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.3"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "POST"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/a b" and scope["raw_path"] == "/a%20b"
    assert scope["query_string"] == "x=1&y=%202"
    assert scope["root_path"] == ""
    assert scope["headers"] == [["host", "example.com"], ["x-many", "1"], ["x-many", "2"]]
    assert scope["client"] == ["10.0.0.1", 5555] and scope["server"] == ["127.0.0.1", 8080]
    assert scope["state"] == {"db": "pool"}
    assert scope["body"] == "payload"


async def test_each_request_gets_a_shallow_copy_of_the_state() -> None:
    shared = {"list": []}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["state"]["mine"] = True  # a request's own key stays its own
        scope["state"]["list"].append(1)  # shallow: the objects are the lifespan's
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body"})

    for _ in range(2):
        await run_asgi(app, _request(), None, shared)
    assert shared == {"list": [1, 1]}


async def test_a_body_in_several_messages_is_gathered_without_a_stream() -> None:
    answer = await run_asgi(asgi_apps.raw_length, _request(), None, {})
    assert isinstance(answer, HttpResponse)
    assert answer.body == b"abcdef"
    assert (b"x-kind", b"sized") in answer.headers


async def test_an_exception_before_the_response_is_a_500_and_one_error_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fails(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise RuntimeError("before any message")

    with caplog.at_level(logging.ERROR):
        answer = await run_asgi(fails, _request(), None, {})
    assert isinstance(answer, HttpResponse)
    assert answer.status == 500 and answer.body == b"Internal Server Error"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].getMessage() == "Exception in ASGI application"
    assert errors[0].exc_info is not None and "before any message" in str(errors[0].exc_info[1])


async def test_an_exception_after_a_whole_response_keeps_the_response(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # FastAPI's error middleware sends its own 500, then raises the exception again.
    with caplog.at_level(logging.ERROR):
        answer = await run_asgi(asgi_apps.app, _request("/boom"), None, {})
    assert isinstance(answer, HttpResponse) and answer.status == 500
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "the app failed" in str(errors[0].exc_info[1])  # type: ignore[index]


async def test_an_app_that_never_starts_its_response_is_a_500() -> None:
    async def silent(scope: dict[str, Any], receive: Any, send: Any) -> None:
        return None

    answer = await run_asgi(silent, _request(), None, {})
    assert isinstance(answer, HttpResponse) and answer.status == 500


async def test_a_dict_event_goes_to_the_lambda_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []
    adapter = types.ModuleType("tests_fake_adapter")

    async def handle_asgi(app: Any, event: Any, context: Any, state: Any) -> Any:
        calls.append((app, event, context, state))
        return {"statusCode": 200, "body": "adapted"}

    adapter.handle_asgi = handle_asgi  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tests_fake_adapter", adapter)
    monkeypatch.setattr(httpmsg, "ADAPTER", "tests_fake_adapter")
    entry = AsgiApp(asgi_apps.app)
    entry.state["k"] = "v"
    event = {"version": "2.0", "rawPath": "/items/1"}
    assert await entry(event, "ctx") == {"statusCode": 200, "body": "adapted"}
    assert calls == [(asgi_apps.app, event, "ctx", {"k": "v"})]


async def test_without_the_lambda_adapter_a_dict_event_fails_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(httpmsg, "ADAPTER", "worker.sources.no_such_adapter")
    with pytest.raises(LambdaError) as info:
        await AsgiApp(asgi_apps.app)({"version": "2.0"}, None)
    assert info.value.error_type == "Runtime.HttpAdapterMissing"
    assert "worker.sources.no_such_adapter" in info.value.message


# -- lifespan -------------------------------------------------------------------------------


async def test_lifespan_startup_fills_the_state_and_shutdown_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "marker"
    monkeypatch.setenv("TEST_SHUTDOWN_MARKER", str(marker))
    entry = AsgiApp(asgi_apps.app)
    await entry.startup(5.0)
    assert entry.state["greeting"] == "hello from startup"
    answer = await entry(_request("/state"), None)
    assert orjson.loads(answer.body)["greeting"] == "hello from startup"
    await entry.shutdown(5.0)
    assert list(tmp_path.iterdir())  # the app's shutdown wrote its marker


async def test_an_app_that_refuses_the_lifespan_scope_is_served_without_it() -> None:
    lifespan = Lifespan(asgi_apps.refuses_lifespan, {})
    await lifespan.startup(5.0)
    assert not lifespan.supported
    await lifespan.shutdown(1.0)  # nothing to shut down


async def test_a_failing_startup_is_an_init_error_with_the_exceptions_type() -> None:
    with pytest.raises(LambdaError) as info:
        await Lifespan(asgi_apps.failing_startup, {}).startup(5.0)
    assert info.value.error_type == "ConnectionError"
    assert info.value.message == ("ASGI lifespan startup failed: database unreachable")
    assert info.value.stack  # the app's frames


async def test_startup_failed_without_an_exception_carries_the_apps_message() -> None:
    with pytest.raises(LambdaError) as info:
        await Lifespan(asgi_apps.says_failed, {}).startup(5.0)
    assert info.value.error_type == "Runtime.LifespanStartupFailed"
    assert info.value.message == "ASGI lifespan startup failed: no config found"


async def test_a_startup_that_outlives_its_limit_is_an_init_timeout() -> None:
    async def stuck(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await asyncio.Event().wait()

    with pytest.raises(LambdaError) as info:
        await Lifespan(stuck, {}).startup(0.05)
    assert info.value.error_type == "Runtime.InitTimeout"


# -- through the front ------------------------------------------------------------------------


async def test_fastapi_path_query_and_json_body(inproc: Any) -> None:
    srv = await inproc("tests.apps.asgi_apps:app")
    ans = await request(srv.port, "GET", "/items/42?q=hi")
    assert ans.status == 200 and ans.json() == {"item_id": 42, "q": "hi"}
    assert ans.headers["content-length"] == str(len(ans.body))
    assert ans.headers["x-amzn-requestid"]
    ans = await request(
        srv.port, "POST", "/items", {"name": "x"}, {"content-type": "application/json"}
    )
    assert ans.json() == {"created": {"name": "x"}}
    ans = await request(srv.port, "GET", "/items/not-a-number")
    assert ans.status == 422  # FastAPI's own validation answer
    ans = await request(srv.port, "GET", "/nowhere")
    assert ans.status == 404 and ans.json() == {"detail": "Not Found"}


async def test_cookies_stay_separate_headers(inproc: Any) -> None:
    srv = await inproc("tests.apps.asgi_apps:app")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(encode("GET", "/cookies"))
    raw = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    cookies = [line for line in raw.split(b"\r\n") if line.startswith(b"set-cookie:")]
    assert len(cookies) == 2
    assert cookies[0].startswith(b"set-cookie: a=1;") and cookies[1].startswith(b"set-cookie: b=2;")


async def test_an_app_exception_is_a_500_with_the_request_id(inproc: Any) -> None:
    srv = await inproc("tests.apps.asgi_apps:app")
    ans = await request(srv.port, "GET", "/boom")
    assert ans.status == 500 and ans.body == b"Internal Server Error"
    assert len(ans.headers["x-amzn-requestid"]) == 36
    # The connection serves on: the next request on it is answered.
    assert (await request(srv.port, "GET", "/items/1")).status == 200


async def test_a_streaming_response_arrives_chunk_by_chunk(inproc: Any) -> None:
    srv = await inproc("tests.apps.asgi_apps:app")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(encode("GET", "/stream"))
    status, headers = await _head(reader)
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers and headers["x-amzn-requestid"]
    assert await _chunk(reader) == b"chunk 0\n"
    # The app sends the next chunk only once the test has read this one.
    assert not asgi_apps.gate("chunk-sent-1").is_set()
    asgi_apps.gate("chunk-1").set()
    assert await _chunk(reader) == b"chunk 1\n"
    asgi_apps.gate("chunk-2").set()
    assert await _chunk(reader) == b"chunk 2\n"
    assert await _chunk(reader) == b""
    # Keep-alive: the connection answers the next request.
    writer.write(encode("GET", "/items/5"))
    assert (await read_answer(reader)).json() == {"item_id": 5, "q": None}
    writer.close()
    assert srv.lane.in_flight == 0


async def test_server_sent_events_arrive_as_they_are_sent(inproc: Any) -> None:
    srv = await inproc("tests.apps.asgi_apps:app")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(encode("GET", "/sse", headers={"accept": "text/event-stream"}))
    _, headers = await _head(reader)
    assert headers["content-type"].startswith("text/event-stream")
    assert await _chunk(reader) == b"event: tick\ndata: 0\n\n"
    asgi_apps.gate("sse-1").set()
    assert await _chunk(reader) == b"event: tick\ndata: 1\n\n"
    asgi_apps.gate("sse-2").set()
    assert await _chunk(reader) == b"event: tick\ndata: 2\n\n"
    assert await _chunk(reader) == b""
    writer.close()


async def test_a_client_leaving_mid_stream_ends_the_apps_stream(inproc: Any) -> None:
    srv = await inproc("tests.apps.asgi_apps:app", slots=1)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(encode("GET", "/forever"))
    await _head(reader)
    assert await _chunk(reader) == b"first\n"
    writer.close()
    # Starlette hears http.disconnect from receive() and stops its stream.
    await _wait("stream-closed")
    # The slot is free again.
    assert (await request(srv.port, "GET", "/items/3")).status == 200


async def test_after_a_disconnect_receive_says_so_and_sends_are_dropped(inproc: Any) -> None:
    srv = await inproc("tests.apps.asgi_apps:raw_disconnect")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(encode("GET", "/"))
    await _head(reader)
    assert await _chunk(reader) == b"one"
    writer.close()
    await _wait("raw-done")
    assert asgi_apps.seen == {"after": "http.disconnect", "sends": "dropped without error"}


async def test_a_slow_client_holds_its_slot_until_the_deadline_aborts_the_stream(
    inproc: Any,
) -> None:
    srv = await inproc("tests.apps.asgi_apps:raw_endless", slots=1, timeout=0.5)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills up soon
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", srv.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(encode("GET", "/"))
    # The client reads nothing: the app waits on flow control (the loop serves on
    # meanwhile) until its deadline cancels it.
    await _wait("endless-cancelled")
    assert srv.lane.in_flight == 0
    reader2, writer2 = await asyncio.open_connection("127.0.0.1", srv.port)
    writer2.write(encode("GET", "/"))  # the one slot takes the next request
    status, _ = await _head(reader2)
    assert status == 200
    writer2.close()
    # What the slow client gets is cut short: no last chunk, then the connection ends.
    received = await asyncio.wait_for(reader.read(), BOUND)
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert not received.endswith(b"0\r\n\r\n")
    writer.close()


async def test_a_failure_after_the_head_cuts_the_answer_short(
    inproc: Any, caplog: pytest.LogCaptureFixture
) -> None:
    srv = await inproc("tests.apps.asgi_apps:raw_fails_mid_stream")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    with caplog.at_level(logging.ERROR):
        writer.write(encode("GET", "/"))
        status, headers = await _head(reader)
        assert status == 200 and headers["transfer-encoding"] == "chunked"
        assert await _chunk(reader) == b"partial"
        assert await asyncio.wait_for(reader.read(), BOUND) == b""  # closed, no last chunk
    writer.close()
    failed = [r for r in caplog.records if r.exc_info is not None]
    assert len(failed) == 1 and "failed mid-stream" in str(failed[0].exc_info[1])  # type: ignore[index]


async def test_an_apps_content_length_frames_a_body_in_several_messages(inproc: Any) -> None:
    srv = await inproc("tests.apps.asgi_apps:raw_length")
    ans = await request(srv.port, "GET", "/")
    assert ans.body == b"abcdef" and ans.headers["content-length"] == "6"
    assert "transfer-encoding" not in ans.headers


async def test_a_full_lane_answers_429_before_the_app_is_called(inproc: Any) -> None:
    srv = await inproc("tests.apps.asgi_apps:app", slots=1, queue=0)
    first = asyncio.ensure_future(request(srv.port, "GET", "/held"))
    await _wait("held-started")
    ans = await request(srv.port, "GET", "/held")
    assert ans.status == 429 and ans.headers["retry-after"] == "1"
    assert ans.json()["errorType"] == "TooManyRequestsException"  # type: ignore[index]
    assert asgi_apps.seen["held"] == 1  # the app never saw the refused request
    asgi_apps.gate("held").set()
    assert (await asyncio.wait_for(first, BOUND)).json() == {"held": True}


async def test_a_streamed_answer_behind_a_slower_one_keeps_request_order(inproc: Any) -> None:
    srv = await inproc("tests.apps.asgi_apps:app")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(encode("GET", "/slow/a") + encode("GET", "/stream"))  # pipelined
    await _wait("slow-a-started")
    await _wait("chunk-sent-0")  # the stream has begun behind the slow answer
    asgi_apps.gate("slow-a").set()
    first = await read_answer(reader)
    assert first.json() == {"slow": "a"}
    status, _ = await _head(reader)  # what the stream buffered goes out once it is first
    assert status == 200
    assert await _chunk(reader) == b"chunk 0\n"
    asgi_apps.gate("chunk-1").set()
    assert await _chunk(reader) == b"chunk 1\n"
    asgi_apps.gate("chunk-2").set()
    assert await _chunk(reader) == b"chunk 2\n"
    assert await _chunk(reader) == b""
    writer.close()


async def test_head_gets_the_headers_and_no_body(inproc: Any) -> None:
    srv = await inproc("tests.apps.asgi_apps:starlette_app")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(encode("HEAD", "/file") + encode("GET", "/file"))
    head = await read_answer(reader, head=True)
    assert head.status == 200 and head.headers["content-length"] == "10" and head.body == b""
    got = await read_answer(reader)  # nothing stray between the two answers
    assert got.body == b"0123456789"
    writer.close()


async def test_head_of_a_streamed_answer_has_no_body(inproc: Any) -> None:
    srv = await inproc("tests.apps.asgi_apps:starlette_app")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(encode("HEAD", "/letters") + encode("GET", "/letters"))
    status, headers = await _head(reader)
    # The app streams its body; a HEAD answer has neither the body nor its framing.
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert "transfer-encoding" not in headers and "content-length" not in headers
    status, headers = await _head(reader)  # the next answer follows at once
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert [await _chunk(reader) for _ in range(4)] == [b"a", b"b", b"c", b""]
    writer.close()


async def test_requests_are_routed_by_their_path_template(inproc: Any) -> None:
    srv = await inproc("tests.apps.asgi_apps:app")
    routes: list[str] = []
    submit = srv.front.submit

    def recording(job: Any) -> bool:
        routes.append(job.route)
        return submit(job)

    srv.front.submit = recording
    for path in ("/items/1", "/items/2", "/state", "/nowhere/123"):
        await request(srv.port, "GET", path)
    assert routes == [
        "GET /items/{item_id}",
        "GET /items/{item_id}",
        "GET /state",
        "GET /nowhere/{id}",
    ]


async def test_the_invoke_api_hands_its_event_to_the_lambda_adapter(
    inproc: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = types.ModuleType("tests_fake_adapter")

    async def handle_asgi(app: Any, event: Any, context: Any, state: Any) -> Any:
        return {"statusCode": 200, "body": event["rawPath"]}

    adapter.handle_asgi = handle_asgi  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tests_fake_adapter", adapter)
    monkeypatch.setattr(httpmsg, "ADAPTER", "tests_fake_adapter")
    srv = await inproc("tests.apps.asgi_apps:app")
    ans = await invoke(srv.port, {"version": "2.0", "rawPath": "/items/1"})
    assert ans.status == 200 and ans.json() == {"statusCode": 200, "body": "/items/1"}


# -- real `worker serve` processes ------------------------------------------------------------


def _log_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                lines.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
    return lines


def test_serve_runs_lifespan_per_worker_and_logs_one_line_per_app_error(
    serve: Any, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {"TEST_SHUTDOWN_MARKER": str(markers / "shutdown")}
    proc = serve("tests.apps.asgi_apps:app", "--workers", "2", env=env)
    status, body = proc.get("/state")
    assert status == 200 and orjson.loads(body)["greeting"] == "hello from startup"
    status, body = proc.get("/boom")
    assert status == 500
    workers = proc.children()
    assert proc.stop() == 0
    # Each worker ran its own shutdown when it drained.
    assert sorted(p.name for p in markers.iterdir()) == sorted(f"shutdown.{w}" for w in workers)
    errors = [line for line in _log_lines(proc.logs()) if line.get("level") == "ERROR"]
    assert len(errors) == 1 and errors[0]["message"] == "Exception in ASGI application"
    assert errors[0]["errorMessage"] == "the app failed" and errors[0]["requestId"]


def test_a_failing_lifespan_startup_ends_the_environment_with_exit_1(serve: Any) -> None:
    proc = serve("tests.apps.asgi_apps:failing_startup", "--workers", "2", ready=False)
    assert proc.proc.wait(timeout=60) == 1
    text = proc.logs()
    lines = _log_lines(text)
    # Reported as an init error is (awslambdaric's report, in the default Text format).
    reports = [x for x in text.splitlines() if x.startswith("[ERROR] ConnectionError: ")]
    assert reports and reports[0].split("\r")[0] == (
        "[ERROR] ConnectionError: ASGI lifespan startup failed: database unreachable"
    )
    failed = [line for line in lines if str(line.get("message", "")).startswith("init failed")]
    assert 1 <= len(failed) <= 2  # once per worker at most: never respawned in a loop
    assert not any("replacing it" in str(line.get("message")) for line in lines)


def test_draining_lets_a_stream_finish_then_closes_the_connection(serve: Any) -> None:
    proc = serve("tests.apps.asgi_apps:app", "--workers", "1", "--grace", "10")
    with socket.create_connection(("127.0.0.1", proc.port), timeout=BOUND) as sock:
        sock.sendall(encode("GET", "/ticks?count=4&pause=0.25"))
        received = b""
        while b"tick 0\n" not in received:  # the stream is in flight
            data = sock.recv(65536)
            assert data, received
            received += data
        proc.proc.send_signal(signal.SIGTERM)
        while True:
            data = sock.recv(65536)
            if not data:
                break
            received += data
    body = received.split(b"\r\n\r\n", 1)[1]
    assert all(f"tick {n}\n".encode() in body for n in range(4))
    assert body.endswith(b"0\r\n\r\n")  # complete, and the connection closed after it
    assert proc.proc.wait(timeout=30) == 0


def test_in_lambda_mode_a_failing_startup_is_reported_before_the_first_event(
    emulate: Any,
) -> None:
    emu = emulate("tests.apps.asgi_apps:failing_startup", ready=False)
    url = f"http://127.0.0.1:{emu.port}/_worker/health"
    wait_answering(url, emu.proc, emu.logs)
    with urllib.request.urlopen(
        urllib.request.Request(f"http://127.0.0.1:{emu.port}{INVOKE}", b"{}"), timeout=BOUND
    ) as response:
        answer = orjson.loads(response.read())
    # The worker posted it to the Runtime API's /init/error: the emulator answers with it.
    assert answer["errorType"] == "ConnectionError"
    assert answer["errorMessage"] == "ASGI lifespan startup failed: database unreachable"
