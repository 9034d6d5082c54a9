"""A module that fails at import: a setting read at init that does not parse."""

from __future__ import annotations

import os
from typing import Any

LIMIT = int(os.environ.get("COMPAT_LIMIT", "ten"))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"limit": LIMIT}
