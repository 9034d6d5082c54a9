"""Where the embedded stores live and which store each feature uses, from the settings.

`WORKER_STATE_DIR` holds the SQLite file every worker process of the environment
shares: `.worker-state/` (under the working directory) in `serve` and `sqs`, `/tmp` in
Lambda mode, where it lasts as long as the execution environment (said once in the log:
records there are not shared with other environments, nor kept after this one ends).
A store is named by a spec: `sqlite:` (that file), `sqlite:PATH`, `dynamodb:TABLE`,
`memory:` (one process, for tests).
"""

from __future__ import annotations

import dataclasses
import logging
import os

from worker.config import Config

log = logging.getLogger("worker.state")

#: The embedded store's file, in the state directory.
FILE_NAME = "worker-state.db"
SCHEMES = ("sqlite", "dynamodb", "memory")


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    lambda_mode: bool
    state_dir: str
    idempotency_store: str
    durable_store: str
    busy_timeout: float
    write_batch: int
    write_flights: int
    durable_queue_url: str
    pin_versions: bool
    lease: float
    max_interruptions: int

    @classmethod
    def from_config(cls, config: Config) -> Settings:
        lambda_mode = config.mode == "lambda"
        state_dir = config.state_dir or ("/tmp" if lambda_mode else ".worker-state")
        return cls(
            lambda_mode=lambda_mode,
            state_dir=os.path.abspath(state_dir),
            idempotency_store=config.idempotency_store,
            durable_store=config.durable_store,
            busy_timeout=config.state_busy_timeout,
            write_batch=config.idempotency_write_batch,
            write_flights=config.idempotency_write_flights,
            durable_queue_url=config.durable_queue_url,
            pin_versions=config.durable_version_policy == "pin",
            lease=config.durable_lease,
            max_interruptions=config.durable_max_interruptions,
        )


def parse(spec: str) -> tuple[str, str]:
    """`scheme:argument` -> (scheme, argument); a bad spec is a ValueError that says why."""
    scheme, sep, argument = spec.partition(":")
    if not sep or scheme not in SCHEMES:
        raise ValueError(f"store {spec!r}: expected sqlite:[PATH], dynamodb:TABLE or memory:")
    if scheme == "dynamodb" and not argument:
        raise ValueError(f"store {spec!r}: dynamodb needs a table name (dynamodb:TABLE)")
    return scheme, argument


_current: Settings | None = None
_told_lambda = False


def configure(config: Config) -> Settings:
    """The worker process's settings (its start calls this with the environment's)."""
    global _current
    _current = Settings.from_config(config)
    return _current


def current() -> Settings:
    """The settings in force: those configured, else read from the environment (a
    process the runtime did not start: a test, `worker executions`)."""
    global _current
    if _current is None:
        mode = "lambda" if os.environ.get("AWS_LAMBDA_RUNTIME_API") else "serve"
        _current = Settings.from_config(Config.from_env(mode=mode))
    return _current


def reset() -> None:
    """Forget the settings (tests change the environment between cases)."""
    global _current
    _current = None


def sqlite_path(argument: str, settings: Settings) -> str:
    """The SQLite file a `sqlite:` spec names: its path, else the state directory's."""
    global _told_lambda
    if argument:
        return os.path.abspath(argument)
    if settings.lambda_mode and not _told_lambda:
        _told_lambda = True
        log.warning(
            "the embedded state store is in %s: it lasts as long as this execution"
            " environment and no other environment sees it; for records that outlive it,"
            " set WORKER_IDEMPOTENCY_STORE / WORKER_DURABLE_STORE to dynamodb:TABLE",
            settings.state_dir,
        )
    return os.path.join(settings.state_dir, FILE_NAME)
