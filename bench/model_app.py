"""A handler module that loads a ~100M-parameter torch model at import (the init phase).

4 x 5000 x 5000 float32 weights = 100M parameters, 400 MB, filled (so every page is really
resident) rather than left uninitialised.
"""

from __future__ import annotations

from typing import Any

import torch

torch.set_num_threads(1)
WEIGHTS = [torch.full((5000, 5000), 0.001) for _ in range(4)]
PARAMETERS = sum(w.numel() for w in WEIGHTS)


def handler(event: Any, context: Any) -> Any:
    x = torch.ones(1, 5000)
    for w in WEIGHTS:
        x = x @ w
    return {"parameters": PARAMETERS, "out": float(x[0, 0])}
