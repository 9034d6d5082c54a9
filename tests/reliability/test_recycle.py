"""Workers recycled at WORKER_MAX_INVOCATIONS or WORKER_MAX_RSS_MB: drained, no request lost."""

from __future__ import annotations

import asyncio
import re

from tests.client import invoke


async def _load(port: int, total: int, concurrency: int) -> list[dict[str, object]]:
    """`total` invokes, `concurrency` at a time, each on a fresh connection."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> dict[str, object]:
        async with gate:
            answer = await invoke(port, {"i": i})
            assert answer.status == 200, answer
            assert "x-amz-function-error" not in answer.headers, answer.body
            body = answer.json()
            assert isinstance(body, dict)
            return body

    return await asyncio.gather(*(one(i) for i in range(total)))


def _metric(text: str, name: str) -> float:
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


async def test_recycled_after_max_invocations_without_a_failed_request(serve) -> None:
    srv = serve("tests.apps.basic.whoami", "--workers", "1", env={"WORKER_MAX_INVOCATIONS": "50"})
    answers = await _load(srv.port, 240, 8)
    pids = {a["pid"] for a in answers}
    assert len(pids) >= 4  # 240 invocations, a fresh worker every 50
    assert _metric(srv.admin("/_worker/metrics")[1].decode(), "worker_recycles_total") >= 3
    assert "worker died" not in srv.logs()  # recycled, not crashed


async def test_a_leaking_handler_is_recycled_at_max_rss(serve) -> None:
    srv = serve("tests.apps.basic.leak", "--workers", "1", env={"WORKER_MAX_RSS_MB": "150"})
    answers = await _load(srv.port, 150, 4)  # up to 300 MB if never recycled
    assert max(a["held_mb"] for a in answers) < 300  # type: ignore[type-var]
    assert len({a["pid"] for a in answers}) >= 2
    assert '"reason":"max_rss_mb"' in srv.logs()


async def test_lambda_mode_recycles_between_invocations(emulate) -> None:
    emu = emulate("tests.apps.basic.whoami", env={"WORKER_MAX_INVOCATIONS": "10"})
    answers = await _load(emu.port, 40, 1)
    assert len({a["pid"] for a in answers}) >= 4
