"""`worker emulate`: run a runtime command behind a local Runtime API and the Invoke front.

worker emulate HANDLER [--port 8080] [--concurrency N] …   # runs `worker lambda HANDLER`
worker emulate [options] -- COMMAND …                       # any runtime, e.g. awslambdaric

`--log-socket 1` and `--log-frames 1` offer the runtime the platform's log egress (LMI's
log socket, the framed log fd) and show what arrives there: see `worker.emulator.logsink`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time

import uvloop

from worker import admin
from worker.config import Config
from worker.emulator import criu
from worker.emulator.feed import Feed
from worker.emulator.logsink import LogSink
from worker.emulator.runtime import RuntimeApi, RuntimeProtocol
from worker.sources.http import Front, HttpProtocol
from worker.telemetry import egress, logs

log = logging.getLogger("worker.emulator")

#: How often deadlines are checked (a timeout is answered at most this late).
WATCH = 0.02


def runtime_env(config: Config, address: str, concurrency: int | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AWS_LAMBDA_RUNTIME_API=address,
        AWS_LAMBDA_FUNCTION_NAME=config.function_name,
        AWS_LAMBDA_FUNCTION_VERSION=config.function_version,
        AWS_LAMBDA_FUNCTION_TIMEOUT=str(
            int(config.timeout) if config.timeout >= 1 else config.timeout
        ),
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(config.memory_mb or 3008),
        AWS_REGION=config.region,
        AWS_DEFAULT_REGION=config.region,
        AWS_LAMBDA_LOG_GROUP_NAME=f"/aws/lambda/{config.function_name}",
        AWS_LAMBDA_LOG_STREAM_NAME="emulator",
        _HANDLER=config.handler,
        LAMBDA_TASK_ROOT=os.getcwd(),
    )
    # As on Lambda; snap-start makes the runtime take part in a snapshot after its init.
    env["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start" if config.snapstart else "on-demand"
    if config.invoke_mode != "BUFFERED":
        # The function's Function URL streams (`--invoke-mode RESPONSE_STREAM`).
        env["WORKER_INVOKE_MODE"] = config.invoke_mode
    if concurrency:
        env["AWS_LAMBDA_MAX_CONCURRENCY"] = str(concurrency)
    else:
        env.pop("AWS_LAMBDA_MAX_CONCURRENCY", None)
    return env


class EmulatorProtocol(HttpProtocol):
    """The emulator's Invoke front. A local development tool on 127.0.0.1, it answers its
    own `/_worker/metrics` (what `--feed` has had answered) on the same port."""

    def _internal(self, path: bytes, head: bool, close: bool) -> bool:
        return super()._internal(path, head, close) or admin.endpoint(self, path, head, close)


async def emulate(config: Config, command: list[str], concurrency: int | None) -> int:
    loop = asyncio.get_running_loop()
    arn = f"arn:aws:lambda:{config.region}:000000000000:function:{config.function_name}"
    slots = concurrency or 1
    api = RuntimeApi(
        # The feed's invocations wait in the queue like the front's: room for all of them.
        queue_size=(config.queue_size or 2 * max(slots, 1)) + config.feed,
        timeout=config.timeout,
        function_arn=arn,
        snapstart=bool(config.snapstart),
    )
    feed = Feed(api, config.feed, config.feed_event.encode())
    runtime_server = await loop.create_server(lambda: RuntimeProtocol(api), "127.0.0.1", 0)
    address = f"127.0.0.1:{runtime_server.sockets[0].getsockname()[1]}"
    front = Front(config, api.submit, metrics_text=feed.metrics_text, pid=os.getpid())
    front.ready = False  # until the runtime first asks for work

    def ready() -> None:
        front.ready = True
        log.info("runtime is ready", extra={"fields": {"address": address}})
        if config.feed:
            log.info("feeding", extra={"fields": feed.counts()})
            feed.start()

    api.on_first_poll = ready
    front_server = await loop.create_server(
        lambda: EmulatorProtocol(front), config.host, config.port
    )
    port = front_server.sockets[0].getsockname()[1]
    log.info(
        "emulating",
        extra={
            "fields": {
                "invoke": f"http://{config.host}:{port}",
                "runtime_api": address,
                "command": command,
                "concurrency": slots,
            }
        },
    )
    sink = LogSink(streams=bool(config.log_socket), frames=bool(config.log_frames))
    await sink.open()
    env = runtime_env(config, address, concurrency) | sink.env
    proc = await asyncio.create_subprocess_exec(*command, env=env, pass_fds=sink.pass_fds)
    sink.spawned()
    checkpoints: set[asyncio.Task[bool]] = set()
    if config.snapstart:
        # While the runtime waits in restore/next: a real checkpoint, where CRIU can.
        def snapshot() -> None:
            task = asyncio.ensure_future(criu.checkpoint(proc.pid))
            checkpoints.add(task)
            task.add_done_callback(checkpoints.discard)

        api.on_snapshot = snapshot
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    watcher = asyncio.ensure_future(_watch(api, front))
    exited = asyncio.ensure_future(proc.wait())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait([exited, stopping], return_when=asyncio.FIRST_COMPLETED)
    feed.stop()
    if exited.done():
        code = exited.result()
        log.error("the runtime exited", extra={"fields": {"status": code}})
        api.runtime_exited(code)
        await stopping  # keep answering (with the failure) until told to stop
    else:
        # Drain: the runtime gets SIGTERM and its grace period to answer what it holds.
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(exited, timeout=config.grace + 2)
        except TimeoutError:
            proc.kill()
            await exited
        api.runtime_exited(proc.returncode or 0)
    await sink.close()
    front.draining = True
    front_server.close()
    runtime_server.close()
    await asyncio.sleep(0.05)  # let the last answers leave
    for conn in list(front.connections):
        conn.close()
    watcher.cancel()
    return 0


async def _watch(api: RuntimeApi, front: Front) -> None:
    beats = 0
    while True:
        await asyncio.sleep(WATCH)
        api.expire(time.time())
        beats += 1
        if beats % 25 == 0:
            front.tick()


def main(config: Config, command: list[str], concurrency: int | None) -> int:
    # The emulator runs no user code: its own lines only (the runtime sets up its own).
    logs.install_runtime(logs.lambda_level(config.log_level), egress.StdoutSink())
    if not command:
        command = [sys.executable, "-m", "worker", "lambda", config.handler]
    with contextlib.suppress(KeyboardInterrupt):
        return uvloop.run(emulate(config, command, concurrency))
    return 0
