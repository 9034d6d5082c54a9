"""What a worker process offers the source it serves, and what every source provides.

A source owns its whole life inside a worker process: which lanes its slots form, how it
starts taking work, how it serves until the process is told to stop, and how it drains
(stops taking work, lets what it accepted finish, flushes its answers). The process keeps
its own life: the loop, signals, the pool, the ticks, the telemetry around them.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from worker.aws import Clients
    from worker.config import Config
    from worker.handler import Handler
    from worker.inflight import Inflight
    from worker.lanes import Lanes
    from worker.offload import Offload
    from worker.pool import Pool
    from worker.profiles import Profiles
    from worker.telemetry.metrics import Metrics

#: A drain step a source runs before its own drain begins (the offload lane's sends, a
#: poller that stops fetching).
BeforeDrain = Callable[[], Awaitable[None]]


class Host(Protocol):
    """The worker process, as a source sees it."""

    index: int
    config: Config
    handler: Handler
    metrics: Metrics
    sock: socket.socket | None
    admin_sock: socket.socket | None
    root: str
    inflight: Inflight | None
    offload: Offload | None
    #: The process's pooled AWS clients (once it serves).
    clients: Clients | None
    #: Set once the process is told to stop (SIGTERM, a recycle).
    stopping: asyncio.Event | None
    #: Why the process recycles itself ("" while it does not).
    recycle: str

    def stats_json(self) -> bytes: ...

    def metrics_text(self) -> str: ...

    async def tick(self, also: Callable[[], None] | None = None) -> None:
        """The process's periodic work, forever (a source runs it as a task while it
        serves), calling `also` each time."""

    async def drain_offload(self) -> None:
        """Let the offload lane's sends under way end (while the lanes still take what
        falls back)."""


class Source(Protocol):
    """One way work reaches a worker process's slots."""

    #: Whether the process's metrics leave as EMF log lines (no one scrapes this mode).
    emf: bool
    #: Whether an admin listener shows this mode's outlook (Mission Control).
    observed: bool

    def lanes(self, host: Host, slots: int, profiles: Profiles) -> Lanes:
        """The lanes this mode's `slots` form."""

    async def serve(self, host: Host, pool: Pool) -> tuple[int, bool]:
        """Take work until `host.stopping` is set, then drain: the process's exit code and
        whether everything accepted finished within the grace period."""
