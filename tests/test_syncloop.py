from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from tests.client import invoke
from worker import syncloop
from worker.placement import TRUST


def _in_thread(fn: Callable[[], Any]) -> Any:
    """Run `fn` on a fresh thread (as a handler thread is: no loop set) and return its result."""
    out: list[Any] = []
    errors: list[BaseException] = []

    def body() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return out[0]


@pytest.fixture
def policy() -> Any:
    before = asyncio.get_event_loop_policy()
    installed = syncloop.install()
    yield installed
    asyncio.set_event_loop_policy(before)


def test_a_thread_without_a_loop_gets_one_and_keeps_it(policy: Any) -> None:
    def body() -> tuple[bool, int]:
        loop = asyncio.get_event_loop()
        result = loop.run_until_complete(asyncio.sleep(0, result=7))
        same = asyncio.get_event_loop() is loop
        loop.close()
        return same, result

    assert _in_thread(body) == (True, 7)


def test_after_asyncio_run_the_old_way_still_works(policy: Any) -> None:
    def body() -> int:
        asyncio.run(asyncio.sleep(0))
        loop = asyncio.get_event_loop()  # asyncio.run cleared the thread's loop
        result: int = loop.run_until_complete(asyncio.sleep(0, result=3))
        loop.close()
        return result

    assert _in_thread(body) == 3


def test_a_closed_loop_is_replaced(policy: Any) -> None:
    def body() -> bool:
        first = asyncio.get_event_loop()
        first.close()
        second = asyncio.get_event_loop()
        second.run_until_complete(asyncio.sleep(0))
        second.close()
        return first is not second

    assert _in_thread(body)


@pytest.fixture
def keep_policy() -> Any:
    before = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(before)


async def test_a_coroutine_still_gets_the_running_loop(keep_policy: None) -> None:
    syncloop.install()
    running = asyncio.get_running_loop()
    assert asyncio.get_event_loop() is running
    assert asyncio.get_event_loop_policy().get_event_loop() is running


async def test_sync_code_called_from_the_running_loop_gets_a_side_loop(
    keep_policy: None,
) -> None:
    # Installed from the running loop, as the pool does (a fixture would run before it).
    policy = syncloop.install()
    running = asyncio.get_running_loop()
    seen: list[Any] = []

    def sync_call() -> None:
        # What the pool does around a sync handler on the loop: no loop "running" for it.
        asyncio.events._set_running_loop(None)
        try:
            side = asyncio.get_event_loop()
            seen.append(side)
            seen.append(side.run_until_complete(asyncio.sleep(0, result="ran")))
        finally:
            asyncio.events._set_running_loop(running)

    done = asyncio.Event()
    running.call_soon(lambda: (sync_call(), done.set()))
    await done.wait()
    assert seen[0] is not running and seen[1] == "ran"
    assert policy.current() is running  # the worker's loop is still the thread's loop
    seen[0].close()


async def _until_on_the_loop(port: int, event: dict[str, Any]) -> list[Any]:
    """Invoke one after another until two answers in a row came from the loop's thread
    (at most 4 x TRUST calls): every answer, in order."""
    answers: list[Any] = []
    while len(answers) < 4 * TRUST and not _on_loop(answers[-2:]):
        answers.append((await invoke(port, event)).json())
    return answers


def _on_loop(answers: list[Any]) -> bool:
    def thread(answer: Any) -> Any:
        return orjson.loads(answer["body"])["thread"] if "body" in answer else answer.get("thread")

    return len(answers) == 2 and all(thread(a) == "MainThread" for a in answers)


@pytest.mark.parametrize(
    "spec",
    [
        "tests.apps.sync_asyncio.get_event_loop_then_run",
        "tests.apps.sync_asyncio.run_then_get_event_loop",
    ],
)
async def test_sync_handlers_using_asyncio_work_on_threads_and_on_the_loop(
    inproc: Any, spec: str
) -> None:
    # A loop of its own per call costs more than the default bound: a wider one, so the
    # placement rule moves the handler onto the loop after its streak.
    srv = await inproc(spec, slots=4, sync_on_loop_ms=100)
    answers = await _until_on_the_loop(srv.port, {})
    assert all("errorType" not in a for a in answers), answers[:3]
    threads = [a["thread"] for a in answers]
    assert threads[0] != "MainThread"  # began on a handler thread
    assert threads[-1] == "MainThread"  # and was placed on the loop, where it still works
    assert all(a.get("same_loop", True) for a in answers)


def _apigw_v2(path: str, query: str = "") -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"host": "example.com"},
        "requestContext": {
            "http": {
                "method": "GET",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "test",
            },
            "stage": "$default",
            "requestId": "id",
            "routeKey": "$default",
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "example.com",
            "domainPrefix": "example",
            "time": "05/Dec/2026:00:00:00 +0000",
            "timeEpoch": 0,
        },
        "isBase64Encoded": False,
    }


async def test_mangum_and_fastapi_answer_on_threads_and_on_the_loop(inproc: Any) -> None:
    srv = await inproc("tests.apps.sync_asyncio.mangum", slots=4, sync_on_loop_ms=100)
    event = _apigw_v2("/items/5", "q=x")
    answers = await _until_on_the_loop(srv.port, event)
    assert all(a["statusCode"] == 200 for a in answers), answers[:2]
    bodies = [orjson.loads(a["body"]) for a in answers]  # type: ignore[index]
    assert {(b["item_id"], b["q"]) for b in bodies} == {(5, "x")}
    # FastAPI runs an async route on the loop Mangum ran: the thread Mangum was called on.
    assert bodies[0]["thread"] != "MainThread" and bodies[-1]["thread"] == "MainThread"
