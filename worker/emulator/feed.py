"""A load the emulator makes itself: N invocations always outstanding, without the Invoke front.

On Lambda the front end that takes invokes runs on other machines; the execution
environment's cores carry the runtime and the Runtime API only. `worker emulate --feed N`
puts the same load on the box: it keeps N invocations of one event waiting or running
(each answer starts the next), so a runtime's throughput can be measured without an HTTP
load generator, and without the front's parsing and writes, sharing its cores. The
Invoke front still answers as usual alongside.
"""

from __future__ import annotations

import logging
from typing import Any

from worker.emulator.runtime import RuntimeApi
from worker.errors import LambdaError
from worker.jobs import Job

log = logging.getLogger("worker.emulator")


class Feed:
    """Keeps `outstanding` invocations of `event` in the Runtime API, and counts answers."""

    def __init__(self, api: RuntimeApi, outstanding: int, event: bytes) -> None:
        self.api = api
        self.outstanding = outstanding
        self.event = event
        self.answered = 0
        self.errors = 0
        self.missing = 0  # invocations the queue had no room for (the front filled it)
        self.stopped = False

    def start(self) -> None:
        self.missing = self.outstanding
        self._top_up()

    def stop(self) -> None:
        self.stopped = True

    def _top_up(self) -> None:
        while self.missing and not self.stopped:
            if self.api.init_error is not None or self.api.exit_error is not None:
                # Every invoke would fail at once: feeding on would answer in a loop.
                log.error("feed stopped: the runtime failed", extra={"fields": self.counts()})
                self.stopped = True
                return
            if not self.api.submit(Job(None, self._answered, raw=self.event)):
                return  # the queue is full: the next answer tries again
            self.missing -= 1

    def _answered(self, result: Any, error: LambdaError | None) -> str | None:
        self.answered += 1
        if error is not None:
            self.errors += 1
        self.missing += 1
        self._top_up()
        return error.error_type if error is not None else None

    def counts(self) -> dict[str, int]:
        return {"outstanding": self.outstanding, "answered": self.answered, "errors": self.errors}

    def metrics_text(self) -> str:
        """Prometheus text for `/_worker/metrics`: what a benchmark reads before and after."""
        return (
            "# TYPE worker_emulator_fed_answered_total counter\n"
            f"worker_emulator_fed_answered_total {self.answered}\n"
            "# TYPE worker_emulator_fed_errors_total counter\n"
            f"worker_emulator_fed_errors_total {self.errors}\n"
        )
