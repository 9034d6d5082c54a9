"""`worker serve`'s source: the HTTP front on the shared socket, and its drain."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

from worker.inference import registry
from worker.lanes import Lane, Lanes
from worker.profiles import MARATHON, SPRINTER

if TYPE_CHECKING:
    from worker.pool import Pool
    from worker.profiles import Profiles
    from worker.sources.base import BeforeDrain, Host
    from worker.sources.http import Front

#: The time bound's share of a typical invocation for a worker with models (see `lanes`).
BATCHED_WAIT_SHARE = 2.0


def partition(host: Host, queue: int, wait: tuple[float, float], profiles: Profiles) -> Lanes:
    """The sprinter and marathon lanes of the process's slots (one lane for one slot)."""
    cfg = host.config
    sprint, marathon = cfg.lane_slots(host.index)
    lanes = [Lane(SPRINTER, sprint, queue, *wait)]
    if marathon:
        lanes.append(Lane(MARATHON, marathon, queue, *wait))
        # Each lane borrows the other's idle slots (`Lane.lend`): marathons all but the
        # sprinters' reserve, sprinters (quick by definition) any idle marathon slot.
        lanes[1].lender, lanes[0].lender = lanes[0], lanes[1]
        lanes[0].reserve = max(1, int(sprint * cfg.lend_reserve))
    return Lanes(lanes, profiles)


class HttpService:
    """The HTTP front: the Invoke API, a web app's routes, health; 429 past the lanes'
    bounds; a drain that answers what it accepted."""

    emf = False
    observed = True

    def lanes(self, host: Host, slots: int, profiles: Profiles) -> Lanes:
        cfg = host.config
        queue = cfg.queue_for(host.index)
        # Served requests also wait for a slot no longer than the time bound allows. With
        # models, queued requests are served together, a batch at a time: a wave of slots
        # waits one batch, not one call per request ahead. Two waves are admitted (the next
        # batch and the one after), since the kernel does not spread a burst's connections
        # evenly over the processes.
        share = cfg.queue_wait
        if share and registry.MODELS:
            share = max(share, BATCHED_WAIT_SHARE)
        return partition(host, queue, (share, cfg.queue_wait_min_ms / 1000), profiles)

    async def serve(self, host: Host, pool: Pool) -> tuple[int, bool]:
        return await serve_http(host, pool, before_drain=host.drain_offload)


async def serve_http(
    host: Host, pool: Pool, before_drain: BeforeDrain | None = None
) -> tuple[int, bool]:
    """Serve the front until the process stops, then drain it (`before_drain` first)."""
    from worker import admin
    from worker.sources.http import Front

    assert host.stopping is not None and host.sock is not None
    loop = asyncio.get_running_loop()
    front = Front(
        host.config,
        pool.submit,
        metrics_text=host.metrics_text,
        stats_json=host.stats_json,
        pid=os.getpid(),
        handler=host.handler,
    )
    front.offload = host.offload
    protocol = front.protocol  # a web app's connections read HttpRequests (`Front`)
    server = await loop.create_server(lambda: protocol(front), sock=host.sock, backlog=2048)
    # The operator's endpoints: their own listener, closed with the service's.
    operator = await admin.serve(front, host.admin_sock) if host.admin_sock else None
    host.metrics.gauge("worker_open_connections", (), lambda: len(front.connections))
    host.metrics.gauge("worker_connections_refused", (), lambda: front.refused_connections)
    ticker = asyncio.ensure_future(host.tick(front.tick))
    await host.stopping.wait()
    stuck = host.recycle == "stuck_threads"
    if host.recycle:
        # No new connections (they wait in the socket's backlog for the replacement);
        # requests on open ones are still served, each connection closing after its
        # answer, so no caller sees an error.
        front.recycling = True
        server.close()
        admin.stop(operator)
        front.close_idle(used_only=True)
        waits = 0 if stuck else int(host.config.grace / 0.01)
        for _ in range(waits):
            if not front.connections:
                break
            await asyncio.sleep(0.01)
    if before_drain is not None:
        await before_drain()
    # Drain: stop accepting, refuse new requests on open connections (503 and
    # `connection: close`), let everything accepted finish within the grace period.
    front.draining = True
    server.close()
    admin.stop(operator)
    front.close_idle()
    grace = 0.1 if stuck else max(0.1, host.config.grace - 0.5)
    finished = await pool.drain(grace)
    await _flush_writes(front)
    for conn in list(front.connections):
        conn.close()
    ticker.cancel()
    return 0, finished


async def _flush_writes(front: Front) -> None:
    """Give answers still in transport buffers a moment to reach their clients."""
    for _ in range(20):
        busy = [
            c
            for c in front.connections
            if c.transport is not None and c.transport.get_write_buffer_size()
        ]
        if not busy:
            return
        await asyncio.sleep(0.05)
