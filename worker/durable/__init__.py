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

from worker.durable.context import DurableContext
from worker.durable.engine import durable
from worker.durable.errors import Durable

__all__ = ["Durable", "DurableContext", "durable"]
