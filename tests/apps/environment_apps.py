"""A handler that reports what Lambda code reads about its function: context and variables."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

NAMES = (
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "LAMBDA_TASK_ROOT",
    "_HANDLER",
)
#: What the init phase saw: libraries read these at import.
AT_IMPORT = {name: os.environ.get(name) for name in NAMES}


def identity(event: Any, context: Any) -> Any:
    return {
        "context": {
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "remaining": context.get_remaining_time_in_millis(),
        },
        "at_import": AT_IMPORT,
        "now": {name: os.environ.get(name) for name in NAMES},
    }


async def trace_after_others(event: Any, context: Any) -> Any:
    """The trace id `_X_AMZN_TRACE_ID` shows after other invocations ran meanwhile."""
    await asyncio.sleep(float(event.get("wait", 0.05)))
    return {"env": os.environ.get("_X_AMZN_TRACE_ID"), "ctx": context.trace_id}


def sync_trace_after_others(event: Any, context: Any) -> Any:
    time.sleep(float(event.get("wait", 0.05)))
    return {"env": os.getenv("_X_AMZN_TRACE_ID"), "ctx": context.trace_id}
