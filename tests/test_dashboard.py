"""Mission Control end to end: the page in headless Chromium, charts changing under load."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import orjson

from tests.client import invoke, request
from tests.conftest import ROOT

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
    assert re.fullmatch(r"[0-9.]+", rps) and float(rps) > 0, rps  # throughput seen under load
    assert Path(shot).stat().st_size > 10_000  # a real picture, kept for people to look at
