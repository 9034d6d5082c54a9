"""Where a cold start's time goes: its phases, logged once per start, and `worker init-profile`.

The supervisor notes each phase as it ends (`mark`): `runtime_import` (process start to
the runtime's first line of its own, Python's start-up included), `handler_import`,
`model_load` (the model host's and the shared models' loads with their warm-up batches),
then, in the first worker, `worker_start` (fork to the first `/next`, or to serving) and,
under SnapStart, `restore`. The marks live in this module's memory, which the workers
inherit across the fork; the first worker adds its own and writes one JSON log line
(`"message": "init"`, each phase in ms) and, in Lambda mode, the phases as EMF metrics
(`Init<Phase>`, milliseconds), once per environment.

`worker init-profile HANDLER` runs the same init in a child under `python -X importtime`
(no Runtime API, no workers) and prints the phases with the slowest imports, the
runtime's and the handler's apart.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any

log = logging.getLogger("worker.init")

#: Phase -> seconds, in the order they happened.
PHASES: dict[str, float] = {}
_last: float | None = None
_emitted = False


def since_process_start() -> float:
    """Seconds since this process was started by the kernel (its exec), from /proc."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # starttime: ticks after boot
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, IndexError):
        return 0.0


def start() -> None:
    """The runtime's own code begins: everything before it is `runtime_import`."""
    global _last
    if _last is None:
        PHASES["runtime_import"] = since_process_start()
        _last = time.monotonic()


def mark(phase: str) -> None:
    """`phase` ended now: it took the time since the previous mark."""
    global _last
    now = time.monotonic()
    if _last is None:
        start()
        _last = now
    PHASES[phase] = PHASES.get(phase, 0.0) + now - _last
    _last = now


def emit(emf: Any | None = None) -> None:
    """The start's one line (and its EMF metrics, given a writer): once per environment."""
    global _emitted
    if _emitted or not PHASES:
        return
    _emitted = True
    phases = {name: round(seconds * 1000, 1) for name, seconds in PHASES.items()}
    total = round(sum(phases.values()), 1)
    log.info("init", extra={"fields": {"phases_ms": phases, "total_ms": total}})
    if emf is not None:
        for name, ms in phases.items():
            emf.put("Init" + name.title().replace("_", ""), "Milliseconds", (), ms)
        emf.put("InitTotal", "Milliseconds", (), total)
        emf.flush()


def seal() -> None:
    """No line from here on in this process, nor in those it forks later (replacements)."""
    global _emitted
    _emitted = True


# -- worker init-profile ---------------------------------------------------------------------

#: The child's report of its phases, on a line of its own.
_REPORT = "worker-init-profile:"


def _child(handler: str) -> int:
    """In the child: the supervisor's init, phase by phase, without serving."""
    start()
    from worker import environment, syncloop
    from worker import handler as handlers
    from worker.config import Config
    from worker.inference import registry

    config = Config.from_env(mode="serve", handler=handler)
    # The rest of the runtime a cold start loads before the handler (imported for its cost).
    import worker.supervisor  # noqa: F401

    mark("runtime_import")
    syncloop.install()
    environment.export(config)
    handlers.load(handler)
    mark("handler_import")
    registry.load_all()
    mark("model_load")
    phases = {name: round(s * 1000, 1) for name, s in PHASES.items()}
    sys.stdout.write(f"{_REPORT}{json.dumps(phases)}\n")
    return 0


def parse_importtime(text: str) -> list[tuple[str, int, int]]:
    """`-X importtime` lines -> (module, self µs, cumulative µs), in import order."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        try:
            own, cumulative, name = line[len("import time:") :].split("|", 2)
            rows.append((name.strip(), int(own), int(cumulative)))
        except ValueError:
            continue
    return rows


def _runtime_module(name: str) -> bool:
    return name == "worker" or name.startswith("worker.")


def report(phases: dict[str, float], imports: list[tuple[str, int, int]], top: int) -> str:
    out = ["phase                     ms"]
    for name, ms in phases.items():
        out.append(f"{name:<22} {ms:>8.1f}")
    out.append(f"{'total':<22} {sum(phases.values()):>8.1f}")
    for title, keep in (
        ("runtime's own modules", _runtime_module),
        ("everything else (the standard library, the handler and what it imports)", None),
    ):
        rows = [r for r in imports if (keep(r[0]) if keep else not _runtime_module(r[0]))]
        rows.sort(key=lambda r: r[1], reverse=True)
        out += ["", f"slowest imports, {title}: self ms (cumulative ms)"]
        out += [
            f"  {own / 1000:>7.1f} ({cum / 1000:>7.1f})  {name}" for name, own, cum in rows[:top]
        ]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="worker init-profile",
        description="Time a cold start's phases for HANDLER and list its slowest imports.",
    )
    p.add_argument("handler", help="module.function, path/module.function or module:app")
    p.add_argument("--top", type=int, default=15, help="imports to list per group")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child(args.handler)
    if args.top < 1:
        sys.stderr.write("worker init-profile: --top must be >= 1\n")
        return 2
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "AWS_LAMBDA_RUNTIME_API"}
    child = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "worker",
            "init-profile",
            "--child",
            args.handler,
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    found = [line for line in child.stdout.splitlines() if line.startswith(_REPORT)]
    if child.returncode != 0 or not found:
        errors = [line for line in child.stderr.splitlines() if not line.startswith("import time:")]
        sys.stderr.write("worker init-profile: the init failed:\n" + "\n".join(errors[-20:]) + "\n")
        return 1
    phases: dict[str, float] = json.loads(found[-1][len(_REPORT) :])
    sys.stdout.write(report(phases, parse_importtime(child.stderr), args.top) + "\n")
    return 0
