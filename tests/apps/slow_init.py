"""A module whose import (the init phase) waits until the file in $SLOW_INIT_GATE exists."""

import os
import time

_gate = os.environ["SLOW_INIT_GATE"]
while not os.path.exists(_gate):
    time.sleep(0.01)


async def handler(event, context):
    return {"initialised": True}
