"""`worker sqs`'s source: the queue's pollers, the HTTP front beside them, and their drain."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from worker.sources.http_serve import partition, serve_http
from worker.sources.sqs import held_at_most

if TYPE_CHECKING:
    from worker.lanes import Lanes
    from worker.pool import Pool
    from worker.profiles import Profiles
    from worker.sources.base import Host

log = logging.getLogger("worker.process")


def room(host: Host, slots: int) -> int:
    """What `worker sqs` holds at once: its slots, and queued places that let the pollers
    fetch the next batches while the slots are busy (one per slot unless set)."""
    cfg = host.config
    return slots + (cfg.queue_for(host.index) if cfg.queue_size else slots)


class SqsService:
    """Poll the queue, and serve HTTP too (health, readiness, metrics, the Invoke API)."""

    emf = False
    observed = True

    def lanes(self, host: Host, slots: int, profiles: Profiles) -> Lanes:
        # The lanes split the slots as in serve (offloaded events carry their routes); the
        # source bounds what the process holds, and each lane may queue all of it, so
        # neither refuses what the pollers took.
        held = held_at_most(room(host, slots), host.config.pollers)
        return partition(host, held, (0.0, 0.0), profiles)

    async def serve(self, host: Host, pool: Pool) -> tuple[int, bool]:
        from worker.sources.pollgate import PollGate
        from worker.sources.sqs import SqsSource

        assert host.clients is not None
        cfg = host.config
        slots = sum(lane.slots for lane in pool.lanes.all)
        source = SqsSource(
            queue_url=cfg.queue_url,
            submit=pool.submit,
            room=room(host, slots),
            clients=host.clients,
            metrics=host.metrics,
            batch_size=cfg.batch_size,
            pollers=cfg.pollers,
            wait_seconds=cfg.wait_seconds,
            visibility_timeout=cfg.visibility_timeout,
            slots=slots,
            gate=PollGate(os.path.join(host.root, "sqs-poll.lock")),
        )
        try:
            await source.start()
        except Exception as exc:
            log.error("cannot consume %s: %s", cfg.queue_url, exc)
            await pool.drain(0.1)
            return 1, False

        async def stop_polling() -> None:
            unstarted = [job for lane in pool.lanes.all for job in lane.drop_queued()]
            await source.stop(unstarted)

        code, finished = await serve_http(host, pool, before_drain=stop_polling)
        await source.settled()
        return code, finished
