"""The function's identity as Lambda gives it, in every mode: names, memory, log group and
stream, and the `AWS_LAMBDA_*` variables that libraries read.

On Lambda the platform sets these variables and the runtime only reads them. Under
`serve` and `sqs` (ECS, a laptop) nobody does, and code written for Lambda reads them all
the same (Powertools' Logger logs `function_memory_size` from the context, SDKs read
`AWS_REGION`), so the supervisor sets each one that is missing, before the handler is
imported, from the best source there is: the settings, the container's cgroup memory
limit, the machine's memory. A value the environment already has is never changed.
"""

from __future__ import annotations

import os
import time
from collections.abc import MutableMapping

from worker.config import Config
from worker.context import Function

#: Where a container's memory limit is: cgroup v2, then v1.
CGROUP_LIMITS = (
    "/sys/fs/cgroup/memory.max",
    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
)
#: A cgroup v1 "limit" at or above this means no limit (the kernel's page-rounded maximum).
NO_LIMIT = 1 << 60


def memory_mb(cgroup_files: tuple[str, ...] = CGROUP_LIMITS, meminfo: str = "/proc/meminfo") -> int:
    """The memory this environment may use, in MiB: the cgroup's limit, else the machine's."""
    for path in cgroup_files:
        try:
            with open(path) as f:
                raw = f.read().strip()
        except OSError:
            continue
        if raw.isdigit() and 0 < int(raw) < NO_LIMIT:
            return max(1, int(raw) // (1024 * 1024))
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return max(1, int(line.split()[1]) // 1024)
    except (OSError, ValueError, IndexError):
        pass
    return max(1, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024))


def log_stream_name(version: str, now: float | None = None) -> str:
    """A stream name of Lambda's shape: `YYYY/MM/DD/[VERSION]` and 32 hex digits, one per
    environment."""
    day = time.strftime("%Y/%m/%d", time.gmtime(time.time() if now is None else now))
    return f"{day}/[{version}]{os.urandom(16).hex()}"


def export(config: Config, environ: MutableMapping[str, str] | None = None) -> None:
    """Set every variable Lambda would have set and the environment lacks (serve, sqs).

    In Lambda mode the platform has set them: nothing is changed."""
    env = os.environ if environ is None else environ
    if config.mode == "lambda":
        return
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or config.region
    defaults = {
        "AWS_LAMBDA_FUNCTION_NAME": config.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": config.function_version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb or memory_mb()),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": _seconds(config.timeout),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config.function_name}",
        "AWS_REGION": region,
        # Lambda sets both: boto3 reads only this one.
        "AWS_DEFAULT_REGION": region,
        "LAMBDA_TASK_ROOT": os.getcwd(),
        "_HANDLER": config.handler,
    }
    for name, value in defaults.items():
        if not env.get(name):
            env[name] = value
    if not env.get("AWS_LAMBDA_LOG_STREAM_NAME"):
        env["AWS_LAMBDA_LOG_STREAM_NAME"] = log_stream_name(env["AWS_LAMBDA_FUNCTION_VERSION"])


def function(
    config: Config, worker_tmp: str, environ: MutableMapping[str, str] | None = None
) -> Function:
    """What every invocation of one worker process shares, from the environment (which
    `export` completed outside Lambda) and the settings."""
    env = os.environ if environ is None else environ
    name = env.get("AWS_LAMBDA_FUNCTION_NAME") or config.function_name
    version = env.get("AWS_LAMBDA_FUNCTION_VERSION") or config.function_version
    memory = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    region = env.get("AWS_REGION") or config.region
    return Function(
        name=name,
        version=version,
        arn=f"arn:aws:lambda:{region}:000000000000:function:{name}",
        memory_limit_in_mb=memory if memory.isdigit() else str(config.memory_mb or memory_mb()),
        log_group_name=env.get("AWS_LAMBDA_LOG_GROUP_NAME") or f"/aws/lambda/{name}",
        log_stream_name=env.get("AWS_LAMBDA_LOG_STREAM_NAME") or log_stream_name(version),
        worker_tmp=worker_tmp,
    )


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)
