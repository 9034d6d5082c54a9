"""Mission Control end to end: the page in headless Chromium, charts changing under load,
the saturation warning, and the forecast drawn over the live rate."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from tests.client import invoke, request
from tests.conftest import ROOT, Proc
from worker.telemetry import forecast_feed

ARTIFACTS = ROOT / "tests" / "artifacts"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Debian's chromium is part of the test set-up (make test installs it)"
    return found


async def _headless(url: str, *flags: str, budget_ms: int = 10000) -> str:
    proc = await asyncio.create_subprocess_exec(
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--window-size=1400,1100",
        f"--virtual-time-budget={budget_ms}",
        *flags,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=90)
    return out.decode(errors="replace")


async def test_stats_feed_has_every_process(serve) -> None:
    srv = serve("tests.apps.basic.whoami", "--workers", "2")
    await asyncio.gather(*(invoke(srv.port, {}) for _ in range(20)))
    names: set[str] = set()
    for _ in range(500):  # each process writes its snapshot once a second
        stats = orjson.loads((await request(srv.admin_port, "GET", "/_worker/stats")).body)
        names = set(stats["processes"])
        if {"supervisor", "worker-0", "worker-1"} <= names:
            break
        await asyncio.sleep(0.01)
    assert {"supervisor", "worker-0", "worker-1"} <= names
    total = sum(
        v
        for snap in stats["processes"].values()
        for k, v in snap["counters"].items()
        if k.startswith("worker_invocations_total")
    )
    assert total >= 1
    page = await request(srv.admin_port, "GET", "/_worker/dashboard")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert b"<script" in page.body and b"http" not in page.body.split(b"<script")[1][:200]


async def test_the_dashboard_renders_and_moves_under_load(serve) -> None:
    # One worker: every poll reads live counters. Headless Chromium runs the page's timers
    # in virtual time (a second passes at once), so polls are only milliseconds apart in
    # real time; a second worker's snapshot file would not have moved between them.
    srv = serve("tests.apps.basic.whoami", "--workers", "1")
    stop = asyncio.Event()

    async def load() -> None:
        while not stop.is_set():
            await asyncio.gather(*(invoke(srv.port, {}) for _ in range(8)))

    driver = asyncio.ensure_future(load())
    url = f"http://127.0.0.1:{srv.admin_port}/_worker/dashboard"
    try:
        # The page opens once the server has measured throughput over two of its samples.
        await _outlook(srv.admin_port, lambda a: bool(a["rps"]))
        dom = await _headless(url, "--dump-dom")
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        shot.unlink(missing_ok=True)
        await _headless(url, f"--screenshot={shot}")
    finally:
        stop.set()
        await driver
    updates = int(re.search(r'data-updates="(\d+)"', dom).group(1))  # type: ignore[union-attr]
    assert updates >= 2, "the charts were redrawn from live data more than once"
    rps = re.search(r'id="v-rps">([^<]+)<', dom).group(1)  # type: ignore[union-attr]
    assert re.fullmatch(r"[0-9.]+", rps) and float(rps) > 0, rps  # the server's rate, shown
    assert Path(shot).stat().st_size > 10_000  # a real picture, kept for people to look at


PLATFORMS = (
    "Lambda on demand",
    "Lambda provisioned",
    "Lambda Managed Instances",
    "Fargate",
    "EC2 on demand",
)


async def _outlook(port: int, until: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Poll the dashboard's feed until its outlook shows the state `until` waits for (the
    worker samples its registry once a second)."""
    ahead: dict[str, Any] = {}
    for _ in range(3000):
        stats = orjson.loads((await request(port, "GET", "/_worker/stats")).body)
        ahead = stats["outlook"]
        if until(ahead):
            return ahead
        await asyncio.sleep(0.01)
    raise AssertionError(f"the outlook never showed the awaited state: {ahead}")


def _depth(ahead: dict[str, Any]) -> float:
    """The sprinter lane's queue depth in the last sample (none before the first one)."""
    return float(ahead["lanes"].get("sprinter", {}).get("depth", 0))


def _deeper(depth: float, ahead: dict[str, Any]) -> bool:
    return _depth(ahead) >= depth


def _text(dom: str, element: str) -> str:
    return re.search(rf'id="{element}"[^>]*>([^<]*)<', dom).group(1)  # type: ignore[union-attr]


async def test_the_dashboard_warns_of_saturation_before_any_429(
    serve: Callable[..., Proc], tmp_path: Path
) -> None:
    # One slot and a queue of four in one lane; no time bound on the wait, so only the
    # count refuses. A window longer than the test: the rise stays in the fitted trend.
    srv = serve(
        "tests.apps.basic.gate",
        *("--workers", "1", "--concurrency", "1", "--queue-size", "4", "--queue-wait", "0"),
        env={"WORKER_OUTLOOK_WINDOW": "600"},
    )
    quick, held = tmp_path / "quick", tmp_path / "held"
    quick.mkdir()
    held.mkdir()
    (quick / "release").touch()
    await _outlook(srv.admin_port, lambda a: bool(a["lanes"]))  # the first sample is taken
    for _ in range(10):  # invocations that finish in the window: what the cost is fed
        assert (await invoke(srv.port, {"dir": str(quick)})).status == 200
    await _outlook(srv.admin_port, lambda a: a["cost"] is not None)
    url = f"http://127.0.0.1:{srv.admin_port}/_worker/dashboard"
    pending = [asyncio.ensure_future(invoke(srv.port, {"dir": str(held)}))]  # takes the slot
    try:
        for depth in (1, 2, 3):  # the queue rises, one more waiting per sample or so
            pending.append(asyncio.ensure_future(invoke(srv.port, {"dir": str(held)})))
            await _outlook(srv.admin_port, functools.partial(_deeper, depth))
        ahead = await _outlook(srv.admin_port, lambda a: a["saturation"] is not None)
        assert ahead["saturation"]["lane"] == "sprinter" and ahead["saturation"]["seconds"] > 0
        assert ahead["throttle"]["rejections"] == 0  # the warning comes before any 429
        assert ahead["lanes"]["sprinter"]["utilisation"] == 1.0
        assert [row["platform"] for row in ahead["cost"]["per_hour"]] == list(PLATFORMS)

        dom = await _headless(url, "--dump-dom")
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "dashboard-outlook.png"
        shot.unlink(missing_ok=True)
        await _headless(url, f"--screenshot={shot}")
        assert 'data-saturation="warning"' in dom
        assert "reaches its bound" in _text(dom, "forecast")
        assert _text(dom, "v-throttle") == "0.00 %"
        for platform in PLATFORMS:  # the cost panel lists every platform
            assert f"<td>{platform}</td>" in dom or f'<td class="">{platform}</td>' in dom
        assert Path(shot).stat().st_size > 10_000

        # The fourth waiting request fills the queue; the fifth is refused.
        pending.append(asyncio.ensure_future(invoke(srv.port, {"dir": str(held)})))
        await _outlook(srv.admin_port, lambda a: _depth(a) >= 4)
        assert (await invoke(srv.port, {"dir": str(held)})).status == 429
        ahead = await _outlook(srv.admin_port, lambda a: (a["throttle"]["rate"] or 0) > 0)
        assert ahead["saturation"]["seconds"] == 0
        dom = await _headless(url, "--dump-dom")
        throttle = _text(dom, "v-throttle")
        assert re.fullmatch(r"[0-9.]+ %", throttle) and float(throttle[:-2]) > 0, throttle
        assert "at its bound" in _text(dom, "forecast")
    finally:
        (held / "release").touch()
        answers = await asyncio.gather(*pending)
    assert [a.status for a in answers] == [200] * 5


async def test_the_dashboard_draws_the_forecast_and_says_the_rate_is_above_it(
    serve: Callable[..., Proc], tmp_path: Path
) -> None:
    # A forecast of a hundredth of a request a second around now: any load is far above it.
    now = time.time() // 60 * 60
    steps = 180
    path = tmp_path / "forecast.json"
    doc = forecast_feed.document(now - 3600, 60, 0.95, [0.01] * steps, [0.005] * steps,
                                 [0.02] * steps)  # fmt: skip
    path.write_text(json.dumps(doc))
    srv = serve(
        "tests.apps.basic.whoami", "--workers", "1", env={"WORKER_FORECAST_FILE": str(path)}
    )
    stop = asyncio.Event()

    async def load() -> None:
        while not stop.is_set():
            await asyncio.gather(*(invoke(srv.port, {}) for _ in range(8)))

    driver = asyncio.ensure_future(load())
    url = f"http://127.0.0.1:{srv.admin_port}/_worker/dashboard"
    try:
        ahead = await _outlook(srv.admin_port, lambda a: a["forecast"]["state"] == "above")
        fc = ahead["forecast"]
        assert fc["file"] == str(path) and fc["error"] is None
        assert fc["expected"] == {"mean": 0.01, "lower": 0.005, "upper": 0.02}
        assert fc["live_rps"] > 0.02
        # The window back and the hour ahead, a step a minute.
        assert 60 <= len(fc["points"]) <= 64
        assert fc["points"][0][0] <= time.time() - fc["before_s"]
        assert fc["points"][-1][0] >= time.time() + 3500

        dom = await _headless(url, "--dump-dom")
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "dashboard-forecast.png"
        shot.unlink(missing_ok=True)
        await _headless(url, f"--screenshot={shot}")
    finally:
        stop.set()
        await driver
    assert 'data-forecast="above"' in dom
    note = _text(dom, "forecast-note")
    assert note.startswith("⚠ above forecast:") and "0.01 req/s expected now" in note, note
    assert "95 % interval 0.005 to 0.02" in note
    drawn = re.search(r'id="c-forecast" data-points="(\d+)"', dom)
    assert drawn and int(drawn.group(1)) >= 60, "the page drew the forecast's steps"
    assert Path(shot).stat().st_size > 10_000
