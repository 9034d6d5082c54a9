"""What LMI's default Python runtime does with a model: load it at import, in every process.

Under awslambdaric with AWS_LAMBDA_MAX_CONCURRENCY=N there are N processes, each running
this import (so N copies of MiniLM) and one event at a time. The embedding code is the
same function `handlers.embed` batches, called with a batch of one, so the comparison is
of the runtimes, not of two embedding implementations. torch gets one thread per process
(the N processes already use every core; more threads would only fight).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from handlers import embed

torch.set_num_threads(1)
_embed = embed.load("cpu")


def handler(event: Any, context: Any) -> Any:
    with torch.inference_mode():
        vector = _embed([event["text"]])[0]
    return {
        "embedding": vector,
        "model": embed.NAME,
        "dimensions": embed.DIMENSIONS,
        "pid": os.getpid(),
    }
