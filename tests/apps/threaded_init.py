"""A handler whose init phase leaves a thread running in the supervisor (as torch's thread
pool does), and that thread takes a SIGTERM: the kernel may hand a process-wide signal to
any thread that does not block it. The thread signals itself once THREAD_SIGTERM exists."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from tests.apps.basic import gate


def _signal_this_thread_when_told() -> None:
    while not os.path.exists(os.environ["THREAD_SIGTERM"]):
        time.sleep(0.01)
    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)


threading.Thread(target=_signal_this_thread_when_told, daemon=True).start()


async def handler(event: Any, context: Any) -> Any:
    return await gate(event, context)
