"""One settings object for the whole runtime, read from environment variables and flags."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any, Literal

Mode = Literal["serve", "lambda", "sqs", "emulate"]
LogFormat = Literal["JSON", "Text"]

#: Slots per core: `serve`'s default concurrency, and Lambda mode's slots per process
#: (LMI's own sizing: 16 concurrent requests per vCPU).
SLOTS_PER_CORE = 16

#: Lambda's synchronous payload limit: 6 MiB, plus the 100 bytes the Runtime API allows.
DEFAULT_MAX_PAYLOAD = 6 * 1024 * 1024 + 100
#: The utilisation EMF period on ECS when WORKER_EMF_INTERVAL is not given: CloudWatch's
#: standard resolution, at which target tracking reads it (`worker.telemetry.utilisation`).
EMF_INTERVAL_ON_ECS = 60.0
#: Counts whose default (0: sized from the machine) cannot be asked for by writing 0.
COUNTS = ("processes", "concurrency", "queue_size")


def cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Setting:
    """How one field is read: its environment variable, flag and parser."""

    env: str
    flag: str | None
    parse: type
    help: str
    #: A flag that takes no value: given, the setting is this (`--snapstart`).
    const: Any = None


# Every bound is a named setting; `from_env` and the CLI both read this table.
SETTINGS: dict[str, Setting] = {
    "host": Setting(env="WORKER_HOST", flag="--host", parse=str, help="bind address"),
    "port": Setting(env="WORKER_PORT", flag="--port", parse=int, help="listening port"),
    "admin_host": Setting(
        env="WORKER_ADMIN_HOST",
        flag="--admin-host",
        parse=str,
        help="bind address of the admin listener (metrics, stats, dashboard)",
    ),
    "admin_port": Setting(
        env="WORKER_ADMIN_PORT",
        flag="--admin-port",
        parse=int,
        help="port of the admin listener; 0 turns it off",
    ),
    "processes": Setting(
        env="WORKER_PROCESSES", flag="--workers", parse=int, help="worker processes"
    ),
    "concurrency": Setting(
        env="WORKER_CONCURRENCY",
        flag="--concurrency",
        parse=int,
        help="concurrent slots over all worker processes",
    ),
    "queue_size": Setting(
        env="WORKER_QUEUE_SIZE",
        flag="--queue-size",
        parse=int,
        help="waiting invocations per lane over all processes",
    ),
    "queue_wait": Setting(
        env="WORKER_QUEUE_WAIT",
        flag="--queue-wait",
        parse=float,
        help="refuse (429) a wait for a slot past this share of the lane's typical"
        " invocation time; 0: the queue size alone bounds it",
    ),
    "outlook_window": Setting(
        env="WORKER_OUTLOOK_WINDOW",
        flag=None,
        parse=float,
        help="seconds of samples Mission Control fits the queue trend over and measures"
        " rates, throttling and cost across",
    ),
    "forecast_file": Setting(
        env="WORKER_FORECAST_FILE",
        flag=None,
        parse=str,
        help="a file `worker forecast --emit forecast` wrote: Mission Control draws it over"
        " the live request rate (read again when it changes)",
    ),
    "queue_wait_min_ms": Setting(
        env="WORKER_QUEUE_WAIT_MIN_MS",
        flag=None,
        parse=float,
        help="a predicted wait under this is never refused by WORKER_QUEUE_WAIT",
    ),
    "timeout": Setting(
        env="AWS_LAMBDA_FUNCTION_TIMEOUT",
        flag="--timeout",
        parse=float,
        help="invocation timeout in seconds",
    ),
    "init_timeout": Setting(
        env="WORKER_INIT_TIMEOUT", flag="--init-timeout", parse=float, help="init phase limit (s)"
    ),
    "max_payload": Setting(
        env="WORKER_MAX_PAYLOAD", flag="--max-payload", parse=int, help="max body bytes"
    ),
    "grace": Setting(env="WORKER_GRACE", flag="--grace", parse=float, help="drain time (s)"),
    "header_timeout": Setting(
        env="WORKER_HEADER_TIMEOUT", flag=None, parse=float, help="time to read headers (s)"
    ),
    "body_timeout": Setting(
        env="WORKER_BODY_TIMEOUT", flag=None, parse=float, help="time to read a body (s)"
    ),
    "keepalive_timeout": Setting(
        env="WORKER_KEEPALIVE_TIMEOUT", flag=None, parse=float, help="idle keep-alive (s)"
    ),
    "max_header_bytes": Setting(
        env="WORKER_MAX_HEADER_BYTES", flag=None, parse=int, help="request line + headers"
    ),
    "max_headers": Setting(
        env="WORKER_MAX_HEADERS", flag=None, parse=int, help="header count per request"
    ),
    "max_pipeline": Setting(
        env="WORKER_MAX_PIPELINE", flag=None, parse=int, help="unanswered requests per conn"
    ),
    "marathon_share": Setting(
        env="WORKER_MARATHON_SHARE",
        flag=None,
        parse=float,
        help="share of a process's slots the marathon lane may use",
    ),
    "lend_reserve": Setting(
        env="WORKER_LEND_RESERVE",
        flag=None,
        parse=float,
        help="share of a process's sprinter slots never lent to the marathon lane (1: none)",
    ),
    "marathon_seconds": Setting(
        env="WORKER_MARATHON_SECONDS",
        flag=None,
        parse=float,
        help="a route whose p90 duration passes this is a marathon",
    ),
    "marathon_bytes": Setting(
        env="WORKER_MARATHON_BYTES",
        flag=None,
        parse=int,
        help="a route whose typical payload passes this is a marathon",
    ),
    "routes": Setting(
        env="WORKER_ROUTES",
        flag=None,
        parse=str,
        help="ROUTE=sprinter|marathon|offload,… overrides",
    ),
    "offload_queue_url": Setting(
        env="WORKER_OFFLOAD_QUEUE_URL",
        flag=None,
        parse=str,
        help="serve and Lambda mode: SQS queue that asynchronous marathon work (offload"
        " routes) is sent to, for `worker sqs` to run; unset: none is offloaded",
    ),
    "warmup": Setting(
        env="WORKER_WARMUP",
        flag=None,
        parse=str,
        help='on: warm-up pings (serverless-plugin-warmup, lambda-warmer, {"worker": "warmup"})'
        " are answered by the runtime, never the handler; off: the handler gets them",
    ),
    "warmup_delay_ms": Setting(
        env="WORKER_WARMUP_DELAY_MS",
        flag=None,
        parse=float,
        help="Lambda mode: how long lambda-warmer's fan-out pings hold their slot before"
        " their answer, so that they land on different environments (lambda-warmer's delay)",
    ),
    "runtime_api_attempts": Setting(
        env="WORKER_RUNTIME_API_ATTEMPTS",
        flag=None,
        parse=int,
        help="failed Runtime API calls in a row before the environment ends",
    ),
    "runtime_api_pipeline": Setting(
        env="WORKER_RUNTIME_API_PIPELINE",
        flag=None,
        parse=int,
        help="Lambda mode: ask for the next event in the answer's write (1) or after (0)",
    ),
    "feed": Setting(
        env="WORKER_EMULATE_FEED",
        flag="--feed",
        parse=int,
        help="worker emulate: keep this many invocations of --feed-event outstanding, made"
        " by the emulator itself (no Invoke front on the path, as on Lambda); 0: none",
    ),
    "feed_event": Setting(
        env="WORKER_EMULATE_FEED_EVENT",
        flag="--feed-event",
        parse=str,
        help="worker emulate: the JSON event --feed invokes with",
    ),
    "snapstart": Setting(
        env="WORKER_EMULATE_SNAPSTART",
        flag="--snapstart",
        parse=int,
        const=1,
        help="worker emulate: play SnapStart's lifecycle (init, the snapshot at the runtime's"
        " restore/next, restore at the first invoke); the runtime gets"
        " AWS_LAMBDA_INITIALIZATION_TYPE=snap-start",
    ),
    "initialization_type": Setting(
        env="AWS_LAMBDA_INITIALIZATION_TYPE",
        flag=None,
        parse=str,
        help="Lambda mode, set by the platform: snap-start runs the snapshot and restore"
        " lifecycle after init (worker.snapstart)",
    ),
    "queue_url": Setting(
        env="WORKER_SQS_QUEUE_URL", flag="--queue-url", parse=str, help="SQS queue to consume"
    ),
    "batch_size": Setting(
        env="WORKER_SQS_BATCH_SIZE",
        flag="--batch-size",
        parse=int,
        help="SQS messages per invocation (1-10)",
    ),
    "pollers": Setting(
        env="WORKER_SQS_POLLERS",
        flag="--pollers",
        parse=int,
        help="concurrent SQS long polls per worker process, at most",
    ),
    "wait_seconds": Setting(
        env="WORKER_SQS_WAIT_SECONDS", flag=None, parse=int, help="SQS long-poll wait (0-20)"
    ),
    "visibility_timeout": Setting(
        env="WORKER_SQS_VISIBILITY_TIMEOUT",
        flag=None,
        parse=int,
        help="SQS visibility timeout in s (0: the queue's own)",
    ),
    "model_threads": Setting(
        env="WORKER_MODEL_THREADS",
        flag=None,
        parse=int,
        help="torch threads per worker process for models (0: cores / processes)",
    ),
    "model_concurrent_batches": Setting(
        env="WORKER_MODEL_CONCURRENT_BATCHES",
        flag=None,
        parse=int,
        help="batches of one model the model host runs at once, overriding each model's"
        " max_concurrent_batches (0: the model's, else by device)",
    ),
    "model_host": Setting(
        env="WORKER_MODEL_HOST",
        flag=None,
        parse=str,
        help="where models live: auto (GPU models in the model host process, CPU ones"
        " shared by the workers) or process (every model in the model host process)",
    ),
    "max_connections": Setting(
        env="WORKER_MAX_CONNECTIONS",
        flag=None,
        parse=int,
        help="open client connections over all processes; past it new ones get 503",
    ),
    "max_invocations": Setting(
        env="WORKER_MAX_INVOCATIONS",
        flag=None,
        parse=int,
        help="recycle a worker process after this many invocations (0: never)",
    ),
    "max_rss_mb": Setting(
        env="WORKER_MAX_RSS_MB",
        flag=None,
        parse=int,
        help="recycle a worker process whose RSS passes this (0: never)",
    ),
    "sync_on_loop_ms": Setting(
        env="WORKER_SYNC_ON_LOOP_MS",
        flag=None,
        parse=float,
        help="a sync handler whose calls never block and use at most this much CPU (ms) runs"
        " on the event loop, not a thread; 0: always a thread",
    ),
    "emf": Setting(
        env="WORKER_EMF",
        flag=None,
        parse=int,
        help="Lambda mode: metrics as CloudWatch EMF lines on stdout (1) or not (0)",
    ),
    "emf_interval": Setting(
        env="WORKER_EMF_INTERVAL",
        flag=None,
        parse=float,
        help="seconds between the slot utilisation's EMF lines on stdout, in any mode (0: off;"
        " unset: every EMF_INTERVAL_ON_ECS on ECS, else off)",
    ),
    "log_level": Setting(
        env="AWS_LAMBDA_LOG_LEVEL",
        flag=None,
        parse=str,
        help="the root logger's level, as on Lambda (unset: Python's WARNING; TRACE: DEBUG)",
    ),
    "log_format": Setting(
        env="AWS_LAMBDA_LOG_FORMAT",
        flag=None,
        parse=str,
        help="JSON or Text (anything but JSON) log lines, as on Lambda",
    ),
    "invoke_mode": Setting(
        env="WORKER_INVOKE_MODE",
        flag="--invoke-mode",
        parse=str,
        help="Lambda mode: BUFFERED, or RESPONSE_STREAM (the function's Function URL streams:"
        " streamed answers use the Runtime API's streaming mode); worker emulate passes it on",
    ),
    "max_streamed_response": Setting(
        env="WORKER_MAX_STREAMED_RESPONSE",
        flag=None,
        parse=int,
        help="Lambda mode: bytes a streamed answer may carry (Lambda's 200 MiB)",
    ),
    "api_gateway_base_path": Setting(
        env="WORKER_API_GATEWAY_BASE_PATH",
        flag=None,
        parse=str,
        help="Lambda mode, web apps: a path prefix cut before routing (Mangum's"
        " api_gateway_base_path, e.g. an HTTP API's stage)",
    ),
    "log_socket": Setting(
        env="WORKER_EMULATE_LOG_SOCKET",
        flag="--log-socket",
        parse=int,
        help="worker emulate: offer the runtime LMI's log socket"
        " (_LAMBDA_TELEMETRY_LOG_FD_PROVIDER_SOCKET) and show each stream connected to it (1)",
    ),
    "log_frames": Setting(
        env="WORKER_EMULATE_LOG_FRAMES",
        flag="--log-frames",
        parse=int,
        help="worker emulate: give the runtime a framed log fd (_LAMBDA_TELEMETRY_LOG_FD)"
        " and show each frame as one event (1)",
    ),
    # State that outlives an invocation: worker.idempotent, worker.durable (worker/state/).
    "state_dir": Setting(
        env="WORKER_STATE_DIR",
        flag=None,
        parse=str,
        help="directory of the embedded state store (default .worker-state/; /tmp in Lambda)",
    ),
    "idempotency_store": Setting(
        env="WORKER_IDEMPOTENCY_STORE",
        flag=None,
        parse=str,
        help="worker.idempotent's store: sqlite:[PATH], dynamodb:TABLE or memory:",
    ),
    "idempotency_write_batch": Setting(
        env="WORKER_IDEMPOTENCY_WRITE_BATCH",
        flag=None,
        parse=int,
        help="dynamodb: most outcomes (completions, deletes) per BatchWriteItem, 1 to 25",
    ),
    "idempotency_write_flights": Setting(
        env="WORKER_IDEMPOTENCY_WRITE_FLIGHTS",
        flag=None,
        parse=int,
        help="dynamodb: outcome writes in the air at once per process before they batch",
    ),
    "durable_store": Setting(
        env="WORKER_DURABLE_STORE",
        flag=None,
        parse=str,
        help="worker.durable's store: sqlite:[PATH], dynamodb:TABLE or memory:",
    ),
    "state_busy_timeout": Setting(
        env="WORKER_STATE_BUSY_TIMEOUT",
        flag=None,
        parse=float,
        help="longest wait (s) for another process's lock on the embedded store",
    ),
    "durable_queue_url": Setting(
        env="WORKER_DURABLE_QUEUE_URL",
        flag=None,
        parse=str,
        help="SQS queue whose delayed messages resume waiting executions (unset: a timer)",
    ),
    "durable_version_policy": Setting(
        env="WORKER_DURABLE_VERSION_POLICY",
        flag=None,
        parse=str,
        help="pin: an execution resumes only under the code that started it; allow: any",
    ),
    "durable_lease": Setting(
        env="WORKER_DURABLE_LEASE",
        flag=None,
        parse=float,
        help="an execution whose worker stops renewing its lease this long (s) is resumed",
    ),
    "durable_max_interruptions": Setting(
        env="WORKER_DURABLE_MAX_INTERRUPTIONS",
        flag=None,
        parse=int,
        help="a step cut off (crash, timeout) more often than this fails its execution",
    ),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """Settings of one runtime environment.

    Every field has a default; `from_env` overlays environment variables, then explicit
    overrides (the CLI's flags). Derived values are properties. Bounds per process are
    the environment-wide settings spread over the worker processes.
    """

    handler: str = "handlers.echo.handler"
    mode: Mode = "serve"
    host: str = "127.0.0.1"
    port: int = 8080
    # The operator's endpoints, off the service port (`worker.admin`).
    admin_host: str = "127.0.0.1"
    admin_port: int = 8081
    processes: int = 0  # 0: one per core
    concurrency: int = 0  # 0: 16 per core (1 in plain Lambda mode)
    queue_size: int = 0  # 0: 2 x concurrency
    queue_wait: float = 0.5
    queue_wait_min_ms: float = 5.0
    outlook_window: float = 120.0
    forecast_file: str = ""  # '': no forecast on Mission Control
    timeout: float = 300.0
    init_timeout: float = 900.0
    max_payload: int = DEFAULT_MAX_PAYLOAD
    grace: float = 25.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keepalive_timeout: float = 75.0
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    max_pipeline: int = 64
    log_level: str = ""  # AWS_LAMBDA_LOG_LEVEL; '' when unset (the root level is left alone)
    log_format: LogFormat = "Text"  # awslambdaric's default
    invoke_mode: str = "BUFFERED"
    max_streamed_response: int = 200 * 1024 * 1024
    api_gateway_base_path: str = "/"
    log_socket: int = 0
    log_frames: int = 0
    marathon_share: float = 0.25
    # Idle sprinter slots the marathon lane may borrow keep this share free (at least one).
    lend_reserve: float = 0.1
    marathon_seconds: float = 1.0
    marathon_bytes: int = 1024 * 1024
    routes: str = ""
    offload_queue_url: str = ""
    warmup: str = "on"  # WORKER_WARMUP: on|off
    warmup_delay_ms: float = 75.0  # lambda-warmer's own default delay
    runtime_api: str = ""  # AWS_LAMBDA_RUNTIME_API: host:port of the Runtime API
    runtime_api_attempts: int = 10
    runtime_api_pipeline: int = 1
    model_threads: int = 0  # 0: the cores shared out over the worker processes
    model_host: str = "auto"
    model_concurrent_batches: int = 0  # 0: each model's max_concurrent_batches, or by device
    #: Set by the supervisor after the init phase: models run in the worker processes.
    local_models: bool = False
    #: Set by the supervisor after the init phase: every call runs a web framework.
    frameworks: bool = False
    emf: int = 1
    emf_interval: float = 0.0  # 0: no utilisation lines (`from_env` turns them on on ECS)
    sync_on_loop_ms: float = 1.0
    max_invocations: int = 0
    max_connections: int = 10000
    max_rss_mb: int = 0
    feed: int = 0
    feed_event: str = "{}"
    snapstart: int = 0
    initialization_type: str = ""  # on-demand, provisioned-concurrency or snap-start
    queue_url: str = ""
    batch_size: int = 10
    pollers: int = 2
    wait_seconds: int = 20
    visibility_timeout: int = 0  # 0: read from the queue
    function_name: str = "runtime-worker"
    function_version: str = "$LATEST"
    memory_mb: int = 0  # 0: unknown, reported from the environment's memory
    region: str = "us-east-1"
    state_dir: str = ""  # '': .worker-state/ in serve and sqs, /tmp in Lambda mode
    idempotency_store: str = "sqlite:"
    durable_store: str = "sqlite:"
    idempotency_write_batch: int = 25
    idempotency_write_flights: int = 2
    state_busy_timeout: float = 5.0
    durable_queue_url: str = ""
    durable_version_policy: str = "pin"
    durable_lease: float = 30.0
    durable_max_interruptions: int = 3

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, setting in SETTINGS.items():
            raw = env.get(setting.env)
            if raw not in (None, ""):
                try:
                    values[name] = setting.parse(raw)
                except ValueError as exc:
                    raise ValueError(f"{setting.env}={raw!r}: {exc}") from None
        if env.get("_HANDLER"):
            values["handler"] = env["_HANDLER"]
        if env.get("AWS_LAMBDA_RUNTIME_API"):
            values["runtime_api"] = env["AWS_LAMBDA_RUNTIME_API"]
        lmi = env.get("AWS_LAMBDA_MAX_CONCURRENCY", "")
        if overrides.get("mode") == "lambda":
            # Lambda mode's slots are the platform's to set: LMI's max concurrency, else 1.
            values.pop("concurrency", None)
            if lmi.isdigit():
                values["concurrency"] = int(lmi)
                values["log_format"] = "JSON"  # LMI requires JSON logs
        for key, var in (
            ("function_name", "AWS_LAMBDA_FUNCTION_NAME"),
            ("function_version", "AWS_LAMBDA_FUNCTION_VERSION"),
            ("region", "AWS_REGION"),
        ):
            if env.get(var):
                values[key] = env[var]
        if "emf_interval" not in values and env.get("ECS_CONTAINER_METADATA_URI_V4"):
            values["emf_interval"] = EMF_INTERVAL_ON_ECS  # the log driver ships them
        if env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "").isdigit():
            values["memory_mb"] = int(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        for name in COUNTS:
            if values.get(name) == 0:
                # 0 is how the defaults are kept (sized from the cores, or the slots); a
                # user who writes 0 means something else, so it is refused, not ignored.
                raise ValueError(f"{name} must be >= 1 (leave it unset for the default), got 0")
        if "warmup" in values:
            values["warmup"] = str(values["warmup"]).strip().lower()
        if "invoke_mode" in values:
            values["invoke_mode"] = str(values["invoke_mode"]).strip().upper()
        if "log_format" in values:
            # awslambdaric's rule: JSON when it says so, else Text.
            values["log_format"] = "JSON" if str(values["log_format"]).upper() == "JSON" else "Text"
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        for name in ("port", "admin_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise ValueError(f"{name} must be 0-65535, got {getattr(self, name)}")
        if self.routes:
            from worker.profiles import parse_overrides

            parse_overrides(self.routes)  # a bad WORKER_ROUTES fails at start, not per request
        if not 0 <= self.marathon_share < 1:
            raise ValueError(f"marathon_share must be in [0, 1), got {self.marathon_share}")
        if not 0 <= self.lend_reserve <= 1:
            raise ValueError(f"lend_reserve must be in [0, 1], got {self.lend_reserve}")
        for name in (
            "processes",
            "concurrency",
            "queue_size",
            "max_payload",
            "model_threads",
            "model_concurrent_batches",
            "max_invocations",
            "max_rss_mb",
            "queue_wait",
            "queue_wait_min_ms",
            "sync_on_loop_ms",
            "warmup_delay_ms",
            "feed",
            "emf_interval",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.feed:
            import orjson

            try:
                orjson.loads(self.feed_event)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"feed_event must be JSON: {exc}") from None
        if self.invoke_mode not in ("BUFFERED", "RESPONSE_STREAM"):
            raise ValueError(
                f"invoke_mode must be BUFFERED or RESPONSE_STREAM, got {self.invoke_mode!r}"
            )
        if self.warmup not in ("on", "off"):
            raise ValueError(f"warmup (WORKER_WARMUP) must be on or off, got {self.warmup!r}")
        if self.max_streamed_response < 1:
            raise ValueError("max_streamed_response must be >= 1")
        if self.mode == "sqs" and not self.queue_url:
            raise ValueError("worker sqs needs --queue-url (or WORKER_SQS_QUEUE_URL)")
        if not 1 <= self.batch_size <= 10:
            raise ValueError(f"batch_size must be 1-10 (SQS's limit), got {self.batch_size}")
        if not 0 <= self.wait_seconds <= 20:
            raise ValueError(f"wait_seconds must be 0-20 (SQS's limit), got {self.wait_seconds}")
        if self.model_host not in ("auto", "process"):
            raise ValueError(f"model_host must be auto or process, got {self.model_host!r}")
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {self.max_connections}")
        if self.pollers < 1 or self.visibility_timeout < 0:
            raise ValueError("pollers must be >= 1 and visibility_timeout >= 0")
        for name in (
            "timeout",
            "init_timeout",
            "grace",
            "header_timeout",
            "body_timeout",
            "outlook_window",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        self._validate_state()

    def _validate_state(self) -> None:
        from worker.state.settings import parse

        for env, spec in (
            ("WORKER_IDEMPOTENCY_STORE", self.idempotency_store),
            ("WORKER_DURABLE_STORE", self.durable_store),
        ):
            try:
                parse(spec)
            except ValueError as exc:
                raise ValueError(f"{env}: {exc}") from None
        if self.durable_version_policy not in ("pin", "allow"):
            raise ValueError(
                f"durable_version_policy must be pin or allow, got {self.durable_version_policy!r}"
            )
        if self.durable_lease <= 0 or self.state_busy_timeout <= 0:
            raise ValueError("durable_lease and state_busy_timeout must be > 0")
        if not 1 <= self.idempotency_write_batch <= 25:
            raise ValueError("idempotency_write_batch must be 1 to 25 (BatchWriteItem's limit)")
        if self.idempotency_write_flights < 1:
            raise ValueError("idempotency_write_flights must be >= 1")
        if self.durable_max_interruptions < 0:
            raise ValueError("durable_max_interruptions must be >= 0")

    @property
    def worker_processes(self) -> int:
        if self.processes:
            wanted = self.processes
        elif self.mode == "lambda" and not (self.local_models or self.frameworks):
            # LMI sizes an environment at 16 concurrent requests per vCPU: a process per
            # 16 slots, at most one per core. Fewer, fuller processes wake less often per
            # invocation: at concurrency 8 on 2 cores, one process took 30 µs of CPU per
            # no-op invocation where two took 42, and served 1.55x the invocations.
            # Models batched in the workers want every core instead (MiniLM at
            # concurrency 8: 121 req/s in one process, 205 in two), and so do web
            # frameworks, whose every call costs far more CPU than a wake-up
            # (`bench/web.py` measures both ways).
            wanted = min(cores(), -(-self.total_concurrency // SLOTS_PER_CORE))
        else:
            wanted = cores()
        # Never more processes than slots: an idle process only costs memory.
        return max(1, min(wanted, self.total_concurrency))

    @property
    def total_concurrency(self) -> int:
        if self.concurrency:
            return self.concurrency
        return 1 if self.mode == "lambda" else SLOTS_PER_CORE * (self.processes or cores())

    @property
    def total_queue_size(self) -> int:
        return self.queue_size or 2 * self.total_concurrency

    def share(self, total: int, index: int) -> int:
        """Worker `index`'s share of an environment-wide bound (the remainder goes first)."""
        base, extra = divmod(total, self.worker_processes)
        return base + (1 if index < extra else 0)

    @property
    def connections_per_process(self) -> int:
        return max(1, self.max_connections // self.worker_processes)

    def slots_for(self, index: int) -> int:
        return max(1, self.share(self.total_concurrency, index))

    def lane_slots(self, index: int) -> tuple[int, int]:
        """(sprinter, marathon) slots of worker `index`: the marathon lane is capped at its
        share, so a flood of long jobs always leaves the sprinters their slots."""
        slots = self.slots_for(index)
        if self.mode == "lambda" or slots < 2:
            return slots, 0
        marathon = int(slots * self.marathon_share)
        return slots - marathon, marathon

    def queue_for(self, index: int) -> int:
        return self.share(self.total_queue_size, index)
