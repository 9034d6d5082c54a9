"""`@worker.durable`: executions whose steps are checkpointed, replayed, and resumed after a crash.

    @worker.durable
    async def handler(event, ctx):
        order = await ctx.step("charge", charge, event)   # runs once; its result is stored
        await ctx.wait(seconds=30)                        # suspends: no slot is held
        return await ctx.step("ship", ship, order)

`engine` runs an invocation, `context` is `ctx` and the replay, `service` resumes
executions in a worker process, `admin` shows them (`worker executions show NAME`,
`GET /_worker/executions/NAME`). The stores are `worker.state`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from worker.durable.errors import Durable

if TYPE_CHECKING:
    from worker.durable.context import DurableContext
    from worker.durable.engine import Handler
    from worker.state.base import DurableStore

__all__ = ["Durable", "DurableContext", "durable"]


def durable(fn: Handler | None = None, *, store: str | DurableStore | None = None) -> Any:
    """`worker.durable.engine.durable`, loaded when a function is decorated: `import worker`
    binds this name (see worker/__init__.py) and must not pay for the engine."""
    from worker.durable.engine import durable as decorate

    return decorate(fn, store=store)


def __getattr__(name: str) -> Any:
    if name == "DurableContext":
        from worker.durable.context import DurableContext

        return DurableContext
    raise AttributeError(f"module 'worker.durable' has no attribute {name!r}")
