"""The HTTP front over real sockets, in-process: endpoints, errors and HTTP/1.1 robustness."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.client import INVOKE, encode, invoke, read_answer, request


async def test_invoke_returns_the_result(inproc) -> None:
    srv = await inproc("tests.apps.basic.echo")
    ans = await invoke(srv.port, {"a": [1, 2]})
    assert ans.status == 200 and ans.json() == {"a": [1, 2]}
    assert ans.headers["content-type"] == "application/json"
    assert "x-amzn-requestid" in ans.headers and "date" in ans.headers


async def test_sync_handler_runs_on_a_thread(inproc) -> None:
    srv = await inproc("tests.apps.basic.sync_echo")
    ans = await invoke(srv.port, {"x": 1})
    assert ans.json() == {"event": {"x": 1}, "thread": ans.json()["thread"]}  # type: ignore[index]
    assert ans.json()["thread"].startswith("handler")  # type: ignore[index]


async def test_handler_error_is_200_with_function_error(inproc) -> None:
    for spec, etype, msg in [
        ("tests.apps.basic.fail", "ValueError", "boom"),
        ("tests.apps.basic.sync_fail", "KeyError", "'missing'"),
    ]:
        srv = await inproc(spec)
        ans = await invoke(srv.port, {})
        assert ans.status == 200
        assert ans.headers["x-amz-function-error"] == "Unhandled"
        body = ans.json()
        assert body["errorType"] == etype and body["errorMessage"] == msg  # type: ignore[index]
        assert body["requestId"] == ans.headers["x-amzn-requestid"]  # type: ignore[index]
        assert isinstance(body["stackTrace"], list) and body["stackTrace"]  # type: ignore[index]


async def test_marshal_error_and_response_too_large(inproc) -> None:
    srv = await inproc("tests.apps.basic.unmarshalable")
    ans = await invoke(srv.port)
    assert ans.headers["x-amz-function-error"] == "Unhandled"
    assert ans.json()["errorType"] == "Runtime.MarshalError"  # type: ignore[index]
    srv = await inproc("tests.apps.basic.oversize", max_payload=1000)
    ans = await invoke(srv.port, {"bytes": 2000})
    assert ans.json()["errorType"] == "Function.ResponseSizeTooLarge"  # type: ignore[index]


async def test_async_timeout_is_sandbox_timedout_and_the_slot_is_freed(inproc) -> None:
    srv = await inproc("tests.apps.basic.hang", slots=1, timeout=0.2)
    for _ in range(2):  # the second call proves the slot came back
        ans = await invoke(srv.port)
        assert ans.status == 200 and ans.headers["x-amz-function-error"] == "Unhandled"
        assert ans.json() == {
            "errorMessage": "Task timed out after 0.20 seconds",
            "errorType": "Sandbox.Timedout",
            "requestId": ans.headers["x-amzn-requestid"],
            "stackTrace": [],
        }
    assert srv.lane.in_flight == 0


async def test_a_handlers_own_timeout_error_is_not_ours(inproc) -> None:
    srv = await inproc("tests.apps.basic.raise_timeout")
    assert (await invoke(srv.port)).json()["errorType"] == "TimeoutError"  # type: ignore[index]


async def test_malformed_json_is_400_and_the_connection_serves_on(inproc) -> None:
    srv = await inproc("tests.apps.basic.echo")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(encode("POST", INVOKE, b'{"a":'))
    ans = await read_answer(reader)
    assert ans.status == 400
    assert ans.json()["errorType"] == "InvalidRequestContentException"  # type: ignore[index]
    writer.write(encode("POST", INVOKE, b'{"a":1}'))
    assert (await read_answer(reader)).json() == {"a": 1}
    writer.close()


async def test_oversize_body_is_413_before_it_is_read(inproc) -> None:
    srv = await inproc("tests.apps.basic.echo", max_payload=1024)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    # Announce 10 MB but send only headers: the answer must come without the body.
    writer.write(f"POST {INVOKE} HTTP/1.1\r\nhost: x\r\ncontent-length: 10000000\r\n\r\n".encode())
    ans = await read_answer(reader)
    assert ans.status == 413
    assert ans.json()["errorType"] == "RequestEntityTooLargeException"  # type: ignore[index]
    assert await reader.read() == b""  # closed: the rest of the body is never read
    # Chunked bodies have no length up front: refused once they pass the limit.
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(
        f"POST {INVOKE} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n".encode()
    )
    writer.write(b"400\r\n" + b"a" * 1024 + b"\r\n400\r\n" + b"a" * 1024 + b"\r\n")
    assert (await read_answer(reader)).status == 413


CHUNKED = f"POST {INVOKE} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n".encode()


@pytest.mark.parametrize(
    "reads",
    [
        [CHUNKED + b"ffffffffffffffff\r\n{"],  # its size line and a byte of it
        [CHUNKED + b"ffffffffffffffff\r\n"],  # its size line alone
        [CHUNKED + b"2\r\n{}\r\n801;ext=1\r\n" + b"a" * 10],  # past the limit with the rest
        [CHUNKED + b"ffff", b"ffffffffffff\r\n"],  # a size line split over two reads
    ],
    ids=["with-data", "alone", "extension", "split"],
)
async def test_a_chunk_announced_past_the_limit_is_413_at_once(inproc, reads: list[bytes]) -> None:
    srv = await inproc("tests.apps.basic.echo", max_payload=2048)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    for data in reads:
        writer.write(data)
        await writer.drain()
        await asyncio.sleep(0.05)  # each its own read on the server
    # No more bytes are sent: the answer comes from the size line, not the body timeout.
    ans = await asyncio.wait_for(read_answer(reader), timeout=5)
    assert ans.status == 413
    assert ans.json()["errorType"] == "RequestEntityTooLargeException"  # type: ignore[index]


async def test_chunks_within_the_limit_pass_whatever_their_data_looks_like(inproc) -> None:
    srv = await inproc("tests.apps.basic.echo", max_payload=2048)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    # JSON whose whitespace makes a line shaped like a size line of 1 MiB: only data.
    body = b"[\r\n100000\r\n]"
    writer.write(CHUNKED + b"%x\r\n%s" % (len(body), body[:-1]))
    await writer.drain()
    await asyncio.sleep(0.05)  # the read ends inside the chunk, after that line
    writer.write(body[-1:] + b"\r\n0\r\n\r\n")
    ans = await asyncio.wait_for(read_answer(reader), timeout=5)
    assert ans.status == 200 and ans.json() == [100000]


async def test_full_lane_answers_429_at_once(inproc, tmp_path: Path) -> None:
    srv = await inproc("tests.apps.basic.gate", slots=1, queue=1)
    event = {"dir": str(tmp_path)}
    first = asyncio.ensure_future(invoke(srv.port, event))
    second = asyncio.ensure_future(invoke(srv.port, event))
    while not list(tmp_path.glob("started-*")) or srv.lane.depth < 1:
        await asyncio.sleep(0.005)
    ans = await invoke(srv.port, event)
    assert ans.status == 429 and ans.headers["retry-after"] == "1"
    assert ans.json()["errorType"] == "TooManyRequestsException"  # type: ignore[index]
    (tmp_path / "release").touch()
    assert (await first).status == 200 and (await second).status == 200


async def test_event_invocation_is_202_and_still_runs(inproc, tmp_path: Path) -> None:
    srv = await inproc("tests.apps.basic.gate")
    ans = await invoke(srv.port, {"dir": str(tmp_path)}, {"X-Amz-Invocation-Type": "Event"})
    assert ans.status == 202 and ans.body == b""
    while not list(tmp_path.glob("started-*")):
        await asyncio.sleep(0.005)
    (tmp_path / "release").touch()
    dry = await invoke(srv.port, {}, {"X-Amz-Invocation-Type": "DryRun"})
    assert dry.status == 204


async def test_an_explicit_request_response_type_is_a_plain_invoke(inproc) -> None:
    srv = await inproc("tests.apps.basic.echo")
    ans = await invoke(srv.port, {"n": 1}, {"X-Amz-Invocation-Type": "RequestResponse"})
    assert ans.status == 200 and ans.json() == {"n": 1}


async def test_client_context_reaches_the_context(inproc) -> None:
    srv = await inproc("tests.apps.basic.context_info", timeout=30)
    cc = base64.b64encode(orjson.dumps({"client": {"installation_id": "abc"}, "custom": {"k": 1}}))
    ans = await invoke(srv.port, {}, {"X-Amz-Client-Context": cc.decode()})
    info = ans.json()
    assert info["client_context"] == {"installation_id": "abc", "custom": {"k": 1}, "env": None}  # type: ignore[index]
    assert info["aws_request_id"] == ans.headers["x-amzn-requestid"]  # type: ignore[index]
    assert 25_000 < info["remaining"] <= 30_000  # type: ignore[index]
    assert info["lane"] == "default"  # type: ignore[index]
    assert info["invoked_function_arn"].startswith("arn:aws:lambda:")  # type: ignore[index]


async def test_proxy_mode_maps_request_and_response(inproc) -> None:
    srv = await inproc("tests.apps.basic.proxy_response")
    wanted = {
        "statusCode": 201,
        "headers": {"x-one": "1"},
        "cookies": ["a=1", "b=2"],
        "body": base64.b64encode(b"\x00\x01binary").decode(),
        "isBase64Encoded": True,
    }
    ans = await request(
        srv.port, "PUT", "/things/1?q=2", wanted, {"content-type": "application/json"}
    )
    assert ans.status == 201 and ans.body == b"\x00\x01binary"
    assert ans.headers["x-one"] == "1" and ans.headers["set-cookie"] == "a=1, b=2"
    bare = await request(srv.port, "GET", "/bare")
    assert bare.status == 200 and bare.json() == {"path": "/bare"}
    assert bare.headers["content-type"] == "application/json"


async def test_proxy_handler_error_is_502(inproc) -> None:
    srv = await inproc("tests.apps.basic.fail")
    ans = await request(srv.port, "GET", "/anything")
    assert ans.status == 502 and ans.json() == {"message": "Internal Server Error"}
    assert "x-amz-function-error" not in ans.headers  # the Invoke API's, not API Gateway's
    srv = await inproc("tests.apps.basic.proxy_response")
    bad = await request(srv.port, "POST", "/x", {"statusCode": "teapot"})
    assert bad.status == 502


async def test_head_has_headers_and_no_body(inproc) -> None:
    srv = await inproc("tests.apps.basic.echo")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(encode("HEAD", "/x") + encode("GET", "/_worker/health"))
    head = await read_answer(reader, head=True)
    assert head.status == 200 and int(head.headers["content-length"]) > 0
    # If HEAD had sent a body, this read would see it instead of the next status line.
    assert (await read_answer(reader)).json()["status"] == "ok"  # type: ignore[index]
    writer.close()


async def test_pipelined_requests_are_answered_in_order(inproc, tmp_path: Path) -> None:
    srv = await inproc("tests.apps.basic.echo", slots=8, queue=12)  # room for all 20
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"".join(encode("POST", INVOKE, orjson.dumps({"n": i})) for i in range(20)))
    answers = [await read_answer(reader) for _ in range(20)]
    assert [a.json() for a in answers] == [{"n": i} for i in range(20)]
    writer.close()


@pytest.mark.parametrize("count", [100, 1000])
async def test_one_connections_pipeline_is_flow_controlled_not_refused(inproc, count: int) -> None:
    # Room for 4 at a time; one client pipelines far more on an otherwise idle server.
    srv = await inproc("tests.apps.basic.echo", slots=2, queue=2)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"".join(encode("POST", INVOKE, orjson.dumps({"n": i})) for i in range(count)))
    answers = [await read_answer(reader) for _ in range(count)]
    assert [a.status for a in answers] == [200] * count
    assert [a.json() for a in answers] == [{"n": i} for i in range(count)]
    writer.close()


async def test_a_held_request_is_refused_once_nothing_of_its_connection_runs(
    inproc, tmp_path: Path
) -> None:
    # One slot (busy with `first`) and one queued place.
    srv = await inproc("tests.apps.basic.gate", slots=1, queue=1)
    event = orjson.dumps({"dir": str(tmp_path)})
    first = asyncio.ensure_future(invoke(srv.port, orjson.loads(event)))
    while not list(tmp_path.glob("started-*")):
        await asyncio.sleep(0.005)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    # A's first takes the queue place; its second is held behind it (A's own pipelining).
    writer.write(encode("POST", INVOKE, event) + encode("POST", INVOKE, event))
    while srv.lane.depth < 1:
        await asyncio.sleep(0.005)
    # Another client finds the environment full: 429 at once, whatever A holds.
    assert (await invoke(srv.port, orjson.loads(event))).status == 429
    (tmp_path / "release").touch()
    assert (await first).status == 200
    assert [(await read_answer(reader)).status for _ in range(2)] == [200, 200]
    writer.close()


async def test_keep_alive_and_connection_close(inproc) -> None:
    srv = await inproc("tests.apps.basic.echo")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    for i in range(3):
        writer.write(encode("POST", INVOKE, orjson.dumps({"i": i})))
        assert (await read_answer(reader)).json() == {"i": i}
    writer.write(encode("POST", INVOKE, b"{}", {"connection": "close"}))
    ans = await read_answer(reader)
    assert ans.headers["connection"] == "close"
    assert await reader.read() == b""


async def test_chunked_body_and_expect_continue(inproc) -> None:
    srv = await inproc("tests.apps.basic.echo")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(
        f"POST {INVOKE} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n".encode()
    )
    writer.write(b'5\r\n{"a":\r\n2\r\n7}\r\n0\r\n\r\n')
    assert (await read_answer(reader)).json() == {"a": 7}
    expect = "expect: 100-continue\r\ncontent-length: 8"
    writer.write(f"POST {INVOKE} HTTP/1.1\r\nhost: x\r\n{expect}\r\n\r\n".encode())
    assert (await read_answer(reader)).status == 100  # sent before the body
    writer.write(b'{"b": 2}')
    assert (await read_answer(reader)).json() == {"b": 2}
    writer.close()


async def test_header_limits(inproc) -> None:
    srv = await inproc("tests.apps.basic.echo", max_headers=10, max_header_bytes=2048)
    many = {f"x-h{i}": "v" for i in range(11)}
    assert (await request(srv.port, "GET", "/", headers=many)).status == 431
    big = {"x-big": "v" * 4096}
    assert (await request(srv.port, "GET", "/", headers=big)).status == 431
    assert (await request(srv.port, "GET", "/_worker/health")).status == 200


async def test_malformed_http_is_400(inproc) -> None:
    srv = await inproc("tests.apps.basic.echo")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    assert (await read_answer(reader)).status == 400
    assert await reader.read() == b""


@pytest.mark.parametrize(
    "bad",
    [
        b"\x00\x01garbage\r\n\r\n",
        b"GET / HTTP/9.9\r\nhost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"".join(b"x-h%d: v\r\n" % i for i in range(200)) + b"\r\n",
        b"POST / HTTP/1.1\r\ncontent-length: 99999999999\r\n\r\n",
    ],
)
async def test_answers_owed_before_a_bad_request_are_written_before_its_error(
    inproc, bad: bytes
) -> None:
    srv = await inproc("tests.apps.basic.echo")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    # One read: two valid invokes (one on the fast path, one behind it), then the bad one.
    writer.write(encode("POST", INVOKE, b'{"n": 1}') + encode("POST", INVOKE, b'{"n": 2}') + bad)
    assert (await read_answer(reader)).json() == {"n": 1}
    assert (await read_answer(reader)).json() == {"n": 2}
    error = await read_answer(reader)
    assert error.status in (400, 413, 431, 505) and error.headers["connection"] == "close"
    assert await reader.read() == b""  # and then the close


async def test_an_http_version_other_than_1_0_or_1_1_is_505(inproc) -> None:
    srv = await inproc("tests.apps.basic.echo")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"GET / HTTP/2.0\r\nhost: x\r\n\r\n")
    ans = await read_answer(reader)
    assert ans.status == 505 and ans.json()["errorType"] == "HTTPVersionNotSupported"  # type: ignore[index]
    assert await reader.read() == b""


async def test_an_absolute_form_target_reaches_the_handler_as_its_path(inproc) -> None:
    srv = await inproc("tests.apps.basic.proxy_response")
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"GET http://example.com:8080/bare?x=1 HTTP/1.1\r\nhost: example.com\r\n\r\n")
    assert (await read_answer(reader)).json() == {"path": "/bare"}
    writer.write(b"GET http://example.com HTTP/1.1\r\nhost: example.com\r\n\r\n")
    ans = await read_answer(reader)
    assert ans.status == 200
    writer.close()


def test_origin_form_of_absolute_targets() -> None:
    from worker.sources.http import _origin_form

    assert _origin_form(b"http://h/x/y?q=1") == b"/x/y?q=1"
    assert _origin_form(b"https://h:443") == b"/"
    assert _origin_form(b"http://h?q=1") == b"/?q=1"
    assert _origin_form(b"*") == b"*"


async def test_slow_headers_get_408_and_are_cut(inproc) -> None:
    srv = await inproc("tests.apps.basic.echo", header_timeout=0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n")  # never finishes its headers
    tick = asyncio.get_running_loop().call_later
    ticker = [tick(0.3 * (i + 1), srv.front.tick) for i in range(10)]
    ans = await read_answer(reader)
    assert ans.status == 408
    assert await reader.read() == b""
    for t in ticker:
        t.cancel()


async def test_health_ready_and_metrics(inproc) -> None:
    srv = await inproc("tests.apps.basic.fail")
    assert (await request(srv.port, "GET", "/_worker/health")).status == 200
    assert (await request(srv.port, "GET", "/_worker/ready")).status == 200
    await invoke(srv.port)
    text = (await request(srv.admin_port, "GET", "/_worker/metrics")).body.decode()
    assert 'worker_invocations_total{lane="default"} 1' in text
    assert 'worker_errors_total{lane="default",type="ValueError"} 1' in text
    assert 'worker_invocation_duration_seconds_count{lane="default"} 1' in text
    assert "worker_in_flight" in text and "worker_queue_depth" in text
    srv.front.draining = True
    assert (await request(srv.port, "GET", "/_worker/ready")).status == 503


async def test_slow_body_gets_408(inproc) -> None:
    srv = await inproc("tests.apps.basic.echo", body_timeout=0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(f"POST {INVOKE} HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{{".encode())
    ticker = [
        asyncio.get_running_loop().call_later(0.3 * (i + 1), srv.front.tick) for i in range(10)
    ]
    assert (await read_answer(reader)).status == 408
    assert await reader.read() == b""
    for t in ticker:
        t.cancel()


async def test_idle_keep_alive_connections_are_closed(inproc) -> None:
    srv = await inproc("tests.apps.basic.echo", keepalive_timeout=0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(encode("POST", INVOKE, b"{}"))
    assert (await read_answer(reader)).status == 200
    ticker = [
        asyncio.get_running_loop().call_later(0.3 * (i + 1), srv.front.tick) for i in range(10)
    ]
    assert await reader.read() == b""  # closed without a word once idle too long
    assert not srv.front.connections
    for t in ticker:
        t.cancel()


async def test_trace_id_reaches_the_context(inproc) -> None:
    srv = await inproc("tests.apps.basic.trace")
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
    assert (await invoke(srv.port, {}, {"X-Amzn-Trace-Id": trace})).json() == {"trace_id": trace}


async def test_system_exit_in_a_handler_is_an_error_not_a_dead_slot(inproc) -> None:
    for spec, code in (("tests.apps.basic.exits", "3"), ("tests.apps.basic.async_exits", "4")):
        srv = await inproc(spec, slots=1)
        for _ in range(2):  # the second call proves the slot lives
            body = (await invoke(srv.port)).json()
            assert body["errorType"] == "SystemExit" and body["errorMessage"] == code  # type: ignore[index]


async def test_a_handler_that_swallows_its_cancellation_still_times_out(inproc) -> None:
    srv = await inproc("tests.apps.basic.swallow_cancel", slots=1, timeout=0.1)
    for _ in range(2):
        assert (await invoke(srv.port)).json()["errorType"] == "Sandbox.Timedout"  # type: ignore[index]


async def test_timeout_behind_an_answer_still_owed_keeps_that_answer(
    inproc, tmp_path: Path
) -> None:
    srv = await inproc("tests.apps.basic.gate", header_timeout=0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    # A request whose handler waits, then a pipelined request that never finishes.
    writer.write(encode("POST", INVOKE, orjson.dumps({"dir": str(tmp_path)})))
    while not list(tmp_path.glob("started-*")):
        await asyncio.sleep(0.005)
    writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n")
    await asyncio.sleep(0)  # let the partial request arrive
    while srv.front.connections and not next(iter(srv.front.connections)).url:
        await asyncio.sleep(0.005)
    next(iter(srv.front.connections)).deadline = 1.0  # long past: the next tick expires it
    srv.front.tick()
    (tmp_path / "release").touch()
    first = await read_answer(reader)
    assert first.status == 200 and "done" in first.json()  # type: ignore[operator]
    assert (await read_answer(reader)).status == 408
    assert await reader.read() == b""


_PIPELINE: list[tuple[bytes, bool]] = [  # (request, is HEAD)
    (encode("POST", INVOKE, b'{"n": 1}', {"x-amzn-trace-id": "Root=1-a"}), False),
    (encode("GET", "/items/7?x=1", b"", {"X-Mixed-Case": " v "}), False),
    (encode("POST", INVOKE, b'{"n": 3}', {"x-amz-invocation-type": "Event"}), False),
    (encode("HEAD", "/_worker/health"), True),
    (encode("POST", INVOKE, b"not json"), False),
    # Not plain: httptools reads this one, and what follows it in the same read.
    (
        f"POST {INVOKE} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n".encode()
        + b'5\r\n{"n":\r\n2\r\n2}\r\n0\r\n\r\n',
        False,
    ),
    (encode("POST", "/things", b'{"n": 4}', {"content-type": "application/json"}), False),
    (encode("POST", INVOKE, b'{"n": 5}', {"connection": "close"}), False),
]


def _comparable(answer: Any) -> tuple[Any, ...]:
    """An answer without what differs between runs: request ids, dates, times."""
    headers = {k: v for k, v in answer.headers.items() if k not in ("date", "x-amzn-requestid")}
    headers.pop("content-length", None)
    body = answer.body
    if body.startswith(b"{"):
        data = answer.json()
        if isinstance(data, dict):
            data.pop("requestContext", None)  # the proxy event's ids and clock
        body = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    return answer.status, headers, body


async def _pipeline_answers(port: int, split: bool) -> list[tuple[Any, ...]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = b"".join(req for req, _ in _PIPELINE)
    if split:  # a few bytes per write: requests arrive cut anywhere
        for at in range(0, len(data), 7):
            writer.write(data[at : at + 7])
            await writer.drain()
    else:
        writer.write(data)
    answers = []
    for _, head in _PIPELINE:
        answer = await read_answer(reader, head=head)
        answers.append(_comparable(answer))
    assert await reader.read() == b""  # the last request closed the connection
    writer.close()
    return answers


async def test_the_fast_path_and_httptools_give_the_same_answers(inproc, monkeypatch) -> None:
    from worker import httphead

    if httphead.scan is None:
        pytest.skip("the compiled fast path is not built")
    read = []

    def counting(*args: Any) -> Any:
        request = scan(*args)
        read.append(request is not None)
        return request

    scan = httphead.scan
    monkeypatch.setattr(httphead, "scan", counting)
    srv = await inproc("tests.apps.basic.echo", slots=4, queue=16)
    fast = await _pipeline_answers(srv.port, split=False)
    assert sum(read) >= 5  # the plain requests went the fast way; the rest to httptools
    assert fast == await _pipeline_answers(srv.port, split=True)
    monkeypatch.setattr(httphead, "scan", None)
    slow = await inproc("tests.apps.basic.echo", slots=4, queue=16)
    assert fast == await _pipeline_answers(slow.port, split=False)
    statuses = [status for status, _, _ in fast]
    assert statuses == [200, 200, 202, 200, 400, 200, 200, 200]
    assert fast[5][2] == b'{"n":2}' and b'"rawPath":"/things"' in fast[6][2]


def test_every_standard_status_has_its_reason_phrase() -> None:
    from worker.sources.http import status_line

    assert status_line(201) == b"HTTP/1.1 201 Created\r\n"
    assert status_line(405) == b"HTTP/1.1 405 Method Not Allowed\r\n"
    assert status_line(422) == b"HTTP/1.1 422 Unprocessable Entity\r\n"
    assert status_line(429) == b"HTTP/1.1 429 Too Many Requests\r\n"
