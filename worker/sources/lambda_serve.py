"""`worker lambda`'s source: the Runtime API's pollers, SnapStart's checkpoint, and their drain."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from worker.initphase import EXIT_INIT_FAILED
from worker.lanes import Lane, Lanes
from worker.profiles import SPRINTER

if TYPE_CHECKING:
    from worker.pool import Pool
    from worker.profiles import Profiles
    from worker.sources.base import Host

log = logging.getLogger("worker.process")


class LambdaService:
    """One long-poll `/next` per slot; the answers posted back; no `/next` after a stop."""

    # Nobody scrapes a Lambda function: its metrics go out as EMF log lines.
    emf = True
    observed = False  # no admin listener shows it

    def lanes(self, host: Host, slots: int, profiles: Profiles) -> Lanes:
        # One poller per slot: the lane never holds more than its slots. The profiles still
        # learn the marathons: the offload lane's choice reads them.
        return Lanes([Lane(SPRINTER, slots, slots)], profiles)

    async def serve(self, host: Host, pool: Pool) -> tuple[int, bool]:
        assert host.stopping is not None
        # SnapStart: quiet for the snapshot, restored, before the first `/next`.
        if host.config.initialization_type == "snap-start":
            from worker import snapstart

            taken = await snapstart.checkpoint(host.stopping)
            if taken != "serve":
                finished = await pool.drain(0.1)
                return (EXIT_INIT_FAILED if taken == "failed" else 0), finished
        return await self._poll(host, pool)

    async def _poll(self, host: Host, pool: Pool) -> tuple[int, bool]:
        from worker.sources.runtime_api import RuntimeApiSource

        assert host.stopping is not None
        cfg = host.config
        submit = pool.submit if host.offload is None else host.offload.submitter(pool.submit)
        source = RuntimeApiSource(
            cfg.runtime_api,
            submit,
            slots=sum(lane.slots for lane in pool.lanes.all),
            attempts=cfg.runtime_api_attempts,
            pipeline=bool(cfg.runtime_api_pipeline),
            streams=cfg.invoke_mode == "RESPONSE_STREAM",
            stream_limit=cfg.max_streamed_response,
            inflight=host.inflight,
        )
        polling = asyncio.ensure_future(source.run())
        ticker = asyncio.ensure_future(host.tick())
        stop = asyncio.ensure_future(host.stopping.wait())
        await asyncio.wait([polling, stop], return_when=asyncio.FIRST_COMPLETED)
        # Drain: no new /next. The lanes stay open until every poller is done, so an event
        # fetched just before the signal still runs; pollers end once their answer is posted.
        grace = max(0.1, cfg.grace - 0.5)
        if host.recycle:
            # The platform goes on sending events: a /next already asked for may be handed
            # one at any moment, and cancelling it could lose that event. Let each poller
            # take what its /next brings, answer it, and ask for no more.
            source.stop(cancel_waiting=False)
            await asyncio.wait([polling], timeout=grace)
        source.stop()
        done, _ = await asyncio.wait([polling], timeout=grace)
        finished = bool(done)
        # Whatever still runs now gets a shutdown error, which its poller posts.
        await pool.drain(0.0 if not finished else 1.0)
        code = 1
        try:
            code = await asyncio.wait_for(polling, timeout=5.0)
        except TimeoutError:
            log.error("answers could not be posted to the Runtime API in time")
        stop.cancel()
        ticker.cancel()
        return code, finished
