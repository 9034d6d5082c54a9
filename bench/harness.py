"""Shared benchmark plumbing: start servers on 127.0.0.1, drive wrk, read CPU from /proc."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import resource
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.ports import free_port as free_port  # the benchmarks' servers take theirs here

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """pid and every process below it, alive now."""
    found, stack = [], [pid]
    while stack:
        p = stack.pop()
        found.append(p)
        try:
            stack.extend(int(k) for k in Path(f"/proc/{p}/task/{p}/children").read_text().split())
        except FileNotFoundError:
            continue
    return found


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (not its children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _kb(pid: int, path: str, field: str) -> int:
    """One `field:` of /proc/PID/`path` (kB); 0 for a process that is gone."""
    try:
        for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def _tree_kb(pid: int, path: str, field: str) -> int:
    """Sum one `field:` of /proc/PID/`path` (kB) over a process tree."""
    return sum(_kb(p, path, field) for p in descendants(pid))


def rss_mb(pid: int) -> float:
    """Resident set size of one process."""
    return _kb(pid, "status", "VmRSS:") / 1024


def pythonpath() -> str:
    """The repository first, then whatever the caller's PYTHONPATH held (packages carried
    to a machine outside the venv, as on the GPU box, stay importable)."""
    return os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)


def tree_pss_mb(pid: int) -> float:
    """Summed proportional set size of a process tree: shared pages counted once."""
    return _tree_kb(pid, "smaps_rollup", "Pss:") / 1024


def tree_rss_mb(pid: int) -> float:
    """Summed resident set size of a process tree (shared pages counted in each)."""
    return _tree_kb(pid, "status", "VmRSS:") / 1024


def runtime_pid(emulator: int) -> int:
    """The runtime process `worker emulate` started (its first child)."""
    kids = Path(f"/proc/{emulator}/task/{emulator}/children").read_text().split()
    return int(kids[0])


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants still alive."""
    total = 0.0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
            stack.extend(int(k) for k in kids)
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return total


@contextlib.contextmanager
def server(
    argv: list[str],
    port: int,
    ready_path: str = "/",
    env: dict[str, str] | None = None,
    ready_within: float = 30.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server we own, wait until it answers, stop it (by PID) afterwards."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    environ = dict(os.environ, PYTHONPATH=pythonpath(), **(env or {}))
    proc = subprocess.Popen(argv, cwd=ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT)
    try:
        end = time.monotonic() + ready_within
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"{argv[:4]} exited:\n{log.read().decode(errors='replace')}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{ready_path}", timeout=1):
                    break
            except OSError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)
        yield proc
    finally:
        stop(proc)
        log.close()


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: int
    function_errors: int  # 200s flagged X-Amz-Function-Error (scripts that count them)
    cpu_us: float  # server CPU per request
    client_cpu_us: float = 0.0  # wrk's own CPU per request (it shares the box)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def wrk(
    url: str,
    *,
    pid: int,
    seconds: float,
    connections: int = 64,
    threads: int = 2,
    script: str | None = None,
) -> WrkResult:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    if script:
        cmd += ["-s", script]
    cpu0, own0 = tree_cpu_seconds(pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    cpu, own = tree_cpu_seconds(pid) - cpu0, resource.getrusage(resource.RUSAGE_CHILDREN)
    client = (own.ru_utime - own0.ru_utime) + (own.ru_stime - own0.ru_stime)
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if not m:
        raise RuntimeError(f"wrk printed no totals:\n{out}")
    requests = int(m.group(1))
    secs = float(m.group(2)) * (60 if m.group(3) == "m" else 1)
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        requests=requests,
        seconds=secs,
        rps=requests / secs,
        # With no request answered wrk prints 0us percentiles: that is no measurement.
        p50_ms=_ms(lat.get("50", "nan")) if requests else math.nan,
        p99_ms=_ms(lat.get("99", "nan")) if requests else math.nan,
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        function_errors=int(fe.group(1))
        if (fe := re.search(r"function errors: (\d+)", out))
        else 0,
        errors=sum(int(x) for x in errs.groups()) if errs else 0,
        cpu_us=cpu / max(1, requests) * 1e6,
        client_cpu_us=client / max(1, requests) * 1e6,
    )


RESULTS = ROOT / "bench" / "results" / "latest"


def results_dir(path: str) -> Path:
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def publish(out: Path, name: str, summary: dict[str, Any], text: str) -> None:
    """Write NAME.json (the figures) and NAME.md (the table) under `out`, and print the table."""
    (out / f"{name}.json").write_text(json.dumps(summary, indent=2))
    (out / f"{name}.md").write_text(text)
    print(text)


def median(values: list[float]) -> float:
    return statistics.median(values)


def ratio(num: float, den: float) -> float:
    """num / den, or nan when the baseline measured nothing (a short run can answer none)."""
    return num / den if den and not math.isnan(den) else math.nan


def python() -> str:
    return sys.executable


#: Our servers' admin ports (metrics), by service port: `worker_argv` picks one per server.
_ADMIN_PORTS: dict[int, int] = {}


def worker_metrics(port: int) -> str:
    """Our server's `/_worker/metrics` text (every worker process's figures, merged), read
    from its admin listener."""
    admin = _ADMIN_PORTS[port]
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/_worker/metrics", timeout=5) as r:
        text: str = r.read().decode()
    return text


def worker_argv(command: str, handler: str, port: int, *flags: str) -> list[str]:
    """Our server: `python -m worker COMMAND HANDLER --port PORT --admin-port P FLAGS…`."""
    admin = _ADMIN_PORTS[port] = free_port()
    return [python(), "-m", "worker", command, handler, "--port", str(port),
            "--admin-port", str(admin), *flags]  # fmt: skip


def uvicorn_argv(port: int) -> list[str]:
    """The HTTP baseline: bench/asgi_baseline.py on uvicorn, 2 processes, uvloop, httptools."""
    return [python(), "-m", "uvicorn", "bench.asgi_baseline:app", "--port", str(port),
            "--workers", "2", "--loop", "uvloop", "--http", "httptools", "--lifespan", "off",
            "--no-access-log", "--log-level", "warning"]  # fmt: skip


def write_script(path: Path, body: bytes) -> str:
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{body.decode()}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return str(path)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End a process this benchmark started: SIGTERM (its drain), then SIGKILL after 30 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Lines:
    """A child's stdout read raw, each line stamped by this process's clock as it arrives
    (a buffered reader could hold a line back and skew the times)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        self.seen: list[bytes] = []
        self._pending: list[tuple[bytes, float]] = []  # read, not yet looked at
        self._partial = b""

    def wait_for(self, marker: bytes, end: float) -> float:
        """The arrival time of the next line holding `marker`, waiting until `end`
        (time.monotonic); RuntimeError with the last lines if none came."""
        while self._pending or self._read(end):
            if not self._pending:
                continue  # a chunk without a whole line yet
            line, at = self._pending.pop(0)
            self.seen.append(line)
            if marker in line:
                return at
        log = b"\n".join(self.seen[-20:]).decode(errors="replace")
        raise RuntimeError(f"no {marker.decode(errors='replace')} line:\n{log}")

    def _read(self, end: float) -> bool:
        """One chunk's whole lines into `_pending`; False once `end` passed or the child
        ended."""
        with selectors.DefaultSelector() as sel:
            sel.register(self.fd, selectors.EVENT_READ)
            left = end - time.monotonic()
            if left <= 0 or not sel.select(timeout=left):
                return False
            chunk = os.read(self.fd, 65536)
        if not chunk:
            return False
        now = time.monotonic()
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        self._pending += [(line, now) for line in lines]
        return True
