"""What LMI's default Python runtime does with a model: load it at import, in every process.

Under awslambdaric with AWS_LAMBDA_MAX_CONCURRENCY=N there are N processes, each running
this import (so N copies of MiniLM) and one event at a time. The embedding code is the
same function `handlers.embed` batches, called with a batch of one, so the comparison is
of the runtimes, not of two embedding implementations. torch gets one thread per process
(the N processes already use every core; more threads would only fight). The device is
`EMBED_DEVICE`'s, as for ours (cpu when unset).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from handlers import embed
from worker.inference.registry import resolve_device

torch.set_num_threads(1)
# The same device as ours in the same run (`bench.inference --device`): each process then
# holds its own copy on it, as LMI's processes would.
_embed = embed.load(resolve_device(os.environ.get("EMBED_DEVICE", "cpu")))


def handler(event: Any, context: Any) -> Any:
    with torch.inference_mode():
        vector = _embed([event["text"]])[0]
    return {
        "embedding": vector,
        "model": embed.NAME,
        "dimensions": embed.DIMENSIONS,
        "pid": os.getpid(),
    }
