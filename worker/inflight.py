"""The invocations a Lambda-mode worker holds, where its supervisor can read them after it dies.

On Lambda, when the runtime process exits, every invocation it held is answered
`Runtime.ExitError`. Here a worker process is one of several: if it dies (`os._exit` in a
handler, a segfault, kill -9) the environment lives on, and the invocations it had taken
from `/next` would wait for their deadline. So each poller of the worker writes the request
id it holds into a slot of memory shared with the supervisor (an anonymous shared mapping
made before the fork), and clears it once the Runtime API has its answer; when the
supervisor reaps a worker, it posts `Runtime.ExitError` for each id still there.

A slot is a length byte and the id's bytes: one store to hold, one to release, no system
call on the invocation's path.
"""

from __future__ import annotations

import logging
import mmap

from worker.errors import LambdaError
from worker.sources.runtime_api import invocation_error, parse_address

log = logging.getLogger("worker")

SLOT = 64  # a request id is 36 bytes; longer ones are cut (the Runtime API's are UUIDs)
ERROR_PATH = "/2018-06-01/runtime/invocation/%s/error"


class Inflight:
    """One worker process's table: slot i is poller i's invocation, or empty."""

    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        # Anonymous and MAP_SHARED (mmap's default): the forked worker writes, the
        # supervisor reads the same pages.
        self.mem = mmap.mmap(-1, self.slots * SLOT)

    def hold(self, index: int, request_id: bytes) -> None:
        off = index * SLOT
        n = min(len(request_id), SLOT - 1)
        self.mem[off + 1 : off + 1 + n] = request_id[:n]
        self.mem[off] = n  # last: a reader never sees a length with a half-written id

    def release(self, index: int) -> None:
        self.mem[index * SLOT] = 0

    def held(self) -> list[str]:
        mem = self.mem
        ids = []
        for off in range(0, self.slots * SLOT, SLOT):
            n = mem[off]
            if n:
                ids.append(mem[off + 1 : off + 1 + n].decode("ascii", "replace"))
        return ids

    def close(self) -> None:
        self.mem.close()


def exit_error(request_id: str, how: str) -> LambdaError:
    """Lambda's answer for an invocation whose runtime exited under it."""
    return LambdaError(
        "Runtime.ExitError", f"RequestId: {request_id} Error: Runtime exited with error: {how}"
    )


def post_exit_errors(runtime_api: str, ids: list[str], how: str, timeout: float = 5.0) -> int:
    """Post `Runtime.ExitError` for each request id to the Runtime API (from the supervisor,
    which runs no event loop); returns how many the API took."""
    import http.client  # a cold start needs none of this: only a worker's death does

    host, port = parse_address(runtime_api)
    taken = 0
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        for request_id in ids:
            body, head = invocation_error(exit_error(request_id, how), request_id)
            headers = dict(
                line.split(": ", 1) for line in head.decode("latin-1").split("\r\n") if line
            )
            try:
                conn.request("POST", ERROR_PATH % request_id, body=body, headers=headers)
                reply = conn.getresponse()
                reply.read()
            except (OSError, http.client.HTTPException) as exc:
                log.error(
                    "could not post Runtime.ExitError",
                    extra={"fields": {"requestId": request_id, "error": str(exc)}},
                )
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
                continue
            taken += reply.status == 202
    finally:
        conn.close()
    return taken
