"""The chooser: which source a worker process serves, from the mode.

Each mode's module is imported only when chosen: a Lambda function's cold start does not
load the HTTP front, the admin listener or the SQS poller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from worker.sources.base import Source


def choose(mode: str) -> Source:
    """The source for `mode` (`serve`, `lambda` or `sqs`)."""
    if mode == "lambda":
        from worker.sources.lambda_serve import LambdaService

        return LambdaService()
    if mode == "sqs":
        from worker.sources.sqs_serve import SqsService

        return SqsService()
    if mode == "serve":
        from worker.sources.http_serve import HttpService

        return HttpService()
    raise ValueError(f"no source serves mode {mode!r}")
