"""Command line: `worker [serve|lambda|sqs|emulate] HANDLER [options]`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from worker.config import SETTINGS, Config

COMMANDS = ("serve", "lambda", "sqs", "emulate")
#: Commands whose sources are not in this build yet; they fail with a clear message.
NOT_YET = {
    "lambda": "Lambda mode (Runtime API client)",
    "sqs": "the SQS worker",
    "emulate": "the local Lambda emulator",
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="worker",
        description="Run a Lambda-style handler: `worker HANDLER` picks Lambda mode when "
        "AWS_LAMBDA_RUNTIME_API is set, else `serve`.",
    )
    p.add_argument("command", choices=COMMANDS, help="what to run")
    p.add_argument(
        "handler", nargs="?", help="module.function, path/module.function or module:function"
    )
    for name, setting in SETTINGS.items():
        if setting.flag:
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
    args = parser().parse_args(normalise(sys.argv[1:] if argv is None else argv, dict(os.environ)))
    if args.command in NOT_YET:
        sys.stderr.write(
            f"worker {args.command}: {NOT_YET[args.command]} is not part of this build yet\n"
        )
        raise SystemExit(2)
    overrides = {name: getattr(args, name) for name in SETTINGS if hasattr(args, name)}
    overrides["log_level"] = args.log_level
    if args.handler:
        overrides["handler"] = args.handler
    try:
        config = Config.from_env(mode=args.command, **overrides)
    except ValueError as exc:
        sys.stderr.write(f"worker: bad setting: {exc}\n")
        raise SystemExit(2) from None
    from worker.supervisor import Supervisor

    raise SystemExit(Supervisor(config).run())
