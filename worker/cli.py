"""Command line: `worker [serve|lambda|sqs|emulate] HANDLER [options]`, and the tools
(`worker executions`, `worker cost`, `worker forecast`, `worker init-profile`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from worker import initprofile
from worker.config import SETTINGS, Config

COMMANDS = (
    "serve",
    "lambda",
    "sqs",
    "emulate",
    "executions",
    "cost",
    "forecast",
    "init-profile",
)
FORMS = """\
forms:
  worker HANDLER [options]                  lambda if AWS_LAMBDA_RUNTIME_API is set, else serve
  worker serve HANDLER [options]            the HTTP service (Invoke API, proxy mode, web apps)
  worker lambda HANDLER [options]           a Runtime API client (Lambda, Lambda Managed Instances)
  worker sqs HANDLER --queue-url URL        an SQS consumer
  worker emulate HANDLER [options]          Runtime API + Invoke API around `worker lambda`
  worker emulate [options] -- COMMAND ...   the same around any runtime command
  worker executions show NAME               a durable execution's status and history
  worker cost --rps R --duration-ms D …     the monthly cost on each platform (--help)
  worker forecast --from SOURCE …           24h to 7d ahead and capacity scheduled for it (--help)
  worker init-profile HANDLER               a cold start's phases and its slowest imports

HANDLER: module.function, path/module.function, /abs/path/module.function, module:function
(an ASGI or WSGI app too). Every option also has an environment variable (shown above).
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="worker",
        description="Run a Lambda-style handler: `worker HANDLER` picks Lambda mode when "
        "AWS_LAMBDA_RUNTIME_API is set, else `serve`.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=FORMS,
    )
    p.add_argument("command", choices=COMMANDS, help="what to run")
    p.add_argument(
        "handler", nargs="?", help="module.function, path/module.function or module:function"
    )
    for name, setting in SETTINGS.items():
        if setting.flag and setting.const is not None:
            p.add_argument(
                setting.flag,
                dest=name,
                action="store_const",
                const=setting.const,
                default=None,
                help=f"{setting.help} (env {setting.env})",
            )
        elif setting.flag:
            p.add_argument(
                setting.flag,
                dest=name,
                type=setting.parse,
                default=None,
                help=f"{setting.help} (env {setting.env})",
            )
    p.add_argument("--log-level", dest="log_level", default=None, help="DEBUG, INFO, WARNING…")
    return p


def normalise(argv: Sequence[str], environ: dict[str, str]) -> list[str]:
    """`worker HANDLER …` (a container's ENTRYPOINT + CMD) becomes an explicit command."""
    args = list(argv)
    if args and args[0] not in COMMANDS and not args[0].startswith("-"):
        args.insert(0, "lambda" if environ.get("AWS_LAMBDA_RUNTIME_API") else "serve")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    initprofile.start()  # what came before this line is Python's start and the imports
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "executions":  # `worker executions show NAME`: its own arguments
        from worker.durable.admin import main as executions

        raise SystemExit(executions(argv[1:]))
    if argv and argv[0] == "cost":  # `worker cost …`: its own arguments (worker.cost)
        from worker.cost.command import main as cost

        raise SystemExit(cost(argv[1:]))
    if argv and argv[0] == "init-profile":  # `worker init-profile HANDLER`
        from worker.initprofile import main as init_profile

        raise SystemExit(init_profile(argv[1:]))
    if argv and argv[0] == "forecast":  # `worker forecast …`: its own arguments
        from worker.forecast.command import main as forecast

        raise SystemExit(forecast(argv[1:]))
    # `worker emulate [options] -- COMMAND …`: everything after `--` is the runtime command.
    command: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1 :]
    args = parser().parse_intermixed_args(normalise(argv, dict(os.environ)))
    overrides = {name: getattr(args, name) for name in SETTINGS if hasattr(args, name)}
    overrides["log_level"] = args.log_level
    if args.handler:
        overrides["handler"] = args.handler
    try:
        config = Config.from_env(mode=args.command, **overrides)
    except ValueError as exc:
        sys.stderr.write(f"worker: bad setting: {exc}\n")
        raise SystemExit(2) from None
    if args.command == "emulate":
        from worker.emulator.main import main as emulate

        raise SystemExit(emulate(config, command, emulated_concurrency(args.concurrency)))
    if command:
        sys.stderr.write("worker: a command after `--` is only for `worker emulate`\n")
        raise SystemExit(2)
    from worker.supervisor import Supervisor

    raise SystemExit(Supervisor(config).run())


def emulated_concurrency(flag: int | None, environ: dict[str, str] | None = None) -> int | None:
    """The emulated environment's concurrency: `--concurrency`, else the
    AWS_LAMBDA_MAX_CONCURRENCY the emulator was started with (as on LMI), else none."""
    if flag is not None:
        return flag
    raw = (os.environ if environ is None else environ).get("AWS_LAMBDA_MAX_CONCURRENCY", "")
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        sys.stderr.write(f"worker: bad setting: AWS_LAMBDA_MAX_CONCURRENCY={raw!r}\n")
        raise SystemExit(2)
    return int(raw)
