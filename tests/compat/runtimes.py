"""The runtimes the suite compares, each running one app, and what each made of a case.

- `awslambdaric`: `worker emulate -- python -m awslambdaric HANDLER`, the reference;
- `worker lambda`: `worker emulate HANDLER`, this runtime behind the same emulator;
- `worker serve`: `worker serve HANDLER --workers 1`, sent the same event on its Invoke API;
- `worker serve (proxy)`: another such `serve`, sent the real HTTP request an HTTP API (v2)
  event describes (only for apps that answer those);
- `worker lambda (native)`, `worker serve (native)`: the web app itself (`module:app`, no
  Mangum or apig-wsgi), through the runtime's built-in Lambda adapter behind the emulator,
  and served natively and sent the real HTTP request.

Each `serve` runs one worker process, and each runtime gets each case once, so that a
module's state (Powertools' cold start, a call counter) evolves as in one Lambda execution
environment.
"""

from __future__ import annotations

import re
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from tests.compat import compare
from tests.compat.events import Request, http_api
from tests.compat.wire import Answer, exchange, invoke
from tests.conftest import Proc, Procs

RIC = "awslambdaric"
LAMBDA = "worker lambda"
SERVE = "worker serve"
PROXY = "worker serve (proxy)"
NATIVE_LAMBDA = "worker lambda (native)"
NATIVE_SERVE = "worker serve (native)"
ALL = (RIC, LAMBDA, SERVE)
WEB = (*ALL, PROXY)
NATIVE = (*WEB, NATIVE_LAMBDA, NATIVE_SERVE)
#: The runtimes sent real HTTP requests rather than events.
HTTP = (PROXY, NATIVE_SERVE)
#: The function every runtime runs as: its name, memory and region, as Lambda sets them.
IDENTITY = {
    "AWS_LAMBDA_FUNCTION_NAME": "compat-fn",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "AWS_REGION": "us-east-1",
}
#: How long the lines an invocation logged may take to reach the log after its answer.
LOG_WAIT = 1.0
#: How long a runtime may take to start (import the app, first poll for work).
START_WAIT = 60.0


@dataclass
class Outcome:
    """One invocation in one runtime: the answer, its request id, the lines it logged."""

    answer: Answer
    request_id: str | None
    lines: list[str]

    def json(self) -> Any:
        return self.answer.json()


def own_line(line: str) -> bool:
    """A line the runtime or the emulator writes of itself (its `worker.*` loggers, its EMF
    metrics by lane), never a handler's: awslambdaric writes none, so these are left out."""
    if not line.startswith("{"):
        return False
    try:
        parsed = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(parsed, dict):
        return False
    logger = parsed.get("logger")
    if isinstance(logger, str) and (logger == "worker" or logger.startswith("worker.")):
        return True
    aws = parsed.get("_aws")
    if isinstance(aws, dict) and "lane" in parsed:
        return any(
            "lane" in dims
            for metric in aws.get("CloudWatchMetrics", [])
            for dims in metric.get("Dimensions", [])
        )
    return False


class Runtime:
    """One running runtime and the part of its log not yet handed to a case."""

    def __init__(self, name: str, proc: Proc) -> None:
        self.name = name
        self.proc = proc
        self.offset = 0

    @property
    def port(self) -> int:
        return self.proc.port

    def skip_log(self) -> None:
        """Hand no case what was logged so far (start-up lines, an earlier case's)."""
        self.offset = self.proc.log_path.stat().st_size

    def lines(self, want: int = 0) -> list[str]:
        """The whole lines logged since the last call, the runtime's own left out; waits
        (up to LOG_WAIT) until there are `want` of them."""
        end = time.monotonic() + LOG_WAIT
        while True:
            with open(self.proc.log_path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
            whole = data[: data.rfind(b"\n") + 1]
            found = [
                line
                for line in whole.decode("utf-8", "replace").split("\n")[:-1]
                if not own_line(line)
            ]
            if len(found) >= want or time.monotonic() > end:
                # awslambdaric ends a Text record that holds a traceback without a newline
                # (its last line waits for the next record's): once the case is over, that
                # unfinished line is the case's too. Ours end every record's line.
                rest = data[len(whole) :].decode("utf-8", "replace")
                if rest and not own_line(rest):
                    found.append(rest)
                self.offset += len(data)
                return apart(found)
            time.sleep(0.01)

    def invoke(self, event: object, want: int = 0) -> Outcome:
        if self.proc.proc.poll() is not None:
            return self._gone()
        self.skip_log()
        answer = invoke(self.port, event)
        return Outcome(answer, answer.header("x-amzn-requestid"), self.lines(want))

    def send(self, request: Request, want: int = 0) -> Outcome:
        if self.proc.proc.poll() is not None:
            return self._gone()
        self.skip_log()
        answer = exchange(
            self.port, request.method, request.target, request.sent_headers(), request.body
        )
        return Outcome(answer, answer.header("x-amzn-requestid"), self.lines(want))

    def _gone(self) -> Outcome:
        """No answer from a runtime that exited (its init failed): status 0, and the end
        of its log as the body, for the diff to show why."""
        tail = "\n".join(self.proc.logs().splitlines()[-8:])
        status = self.proc.proc.returncode
        return Outcome(Answer(0, [], f"exited {status}: {tail}".encode()), None, [])


class Runtimes:
    """The runtimes running one app: each case is put to all of them, the reference first."""

    def __init__(self, members: dict[str, Runtime]) -> None:
        self.members = members

    def __getitem__(self, name: str) -> Runtime:
        return self.members[name]

    def invoke(self, event: object) -> dict[str, Outcome]:
        """The event through the Invoke API of each runtime (but the proxy)."""
        ref = self.members[RIC].invoke(event)
        out = {RIC: ref}
        for name, runtime in self.members.items():
            if name != RIC and name not in HTTP:
                out[name] = runtime.invoke(event, len(ref.lines))
        return out

    def request(self, request: Request) -> dict[str, Outcome]:
        """The request's v2 event through each Invoke API, and the request itself through
        `serve`'s proxy mode."""
        out = self.invoke(http_api(request))
        for name in HTTP:
            if name in self.members:
                out[name] = self.members[name].send(request, len(out[RIC].lines))
        return out


def views(outcomes: Mapping[str, Outcome]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each runtime's view of its outcome, and the view each should have had: the
    reference's, through API Gateway's HTTP API for the proxy."""
    ref = outcomes[RIC]
    got: dict[str, Any] = {}
    want: dict[str, Any] = {}
    for name, out in outcomes.items():
        if name in HTTP:
            got[name] = compare.http_view(out.answer, out.lines, out.request_id)
            expected = compare.through_http_api(ref.answer)
            want[name] = compare.http_view(expected, ref.lines, ref.request_id)
        else:
            got[name] = compare.invoke_view(out.answer, out.lines, out.request_id)
            want[name] = compare.invoke_view(ref.answer, ref.lines, ref.request_id)
    return got, want


def assert_alike(outcomes: Mapping[str, Outcome]) -> None:
    """Every runtime answered and logged as the reference did (after normalisation)."""
    got, want = views(outcomes)
    difference = compare.diff(got, want)
    assert not difference, "\n" + difference


def start(
    procs: Procs,
    handler: str,
    *,
    names: tuple[str, ...] = ALL,
    env: Mapping[str, str] | Callable[[str], Mapping[str, str]] | None = None,
    concurrency: int | None = None,
    identity: bool = True,
    app: str | None = None,
) -> Runtimes:
    """Start the named runtimes on `handler`, all at once, and wait until each is ready.

    `env` is added to IDENTITY, or is all there is without `identity` (a callable gives
    each runtime its own, by name). `concurrency` is the emulator's (Lambda's
    AWS_LAMBDA_MAX_CONCURRENCY); `serve` keeps its own slots. `app` (`module:app`) is what
    the native runtimes run."""
    procs_by_name: dict[str, Proc] = {}
    for name in names:
        extra = env(name) if callable(env) else (env or {})
        environ = {**(IDENTITY if identity else {}), **extra}
        flags = ["--concurrency", str(concurrency)] if concurrency else []
        if name == RIC:
            argv = ["emulate", *flags, "--", sys.executable, "-m", "awslambdaric", handler]
            procs_by_name[name] = procs.start(argv, environ, False, port_flag_first=True)
        elif name == LAMBDA:
            argv = ["emulate", handler, *flags]
            procs_by_name[name] = procs.start(argv, environ, False, port_flag_first=True)
        elif name in (SERVE, PROXY):
            argv = ["serve", handler, "--workers", "1"]  # its own slots, 16 a worker
            procs_by_name[name] = procs.start(argv, environ, False, port_flag_first=False)
        elif name == NATIVE_LAMBDA and app:
            argv = ["emulate", app, *flags]
            procs_by_name[name] = procs.start(argv, environ, False, port_flag_first=True)
        elif name == NATIVE_SERVE and app:
            argv = ["serve", app, "--workers", "1"]
            procs_by_name[name] = procs.start(argv, environ, False, port_flag_first=False)
        else:
            raise ValueError(f"no runtime named {name!r}")
    for proc in procs_by_name.values():
        wait_started(proc)
    return Runtimes({name: Runtime(name, proc) for name, proc in procs_by_name.items()})


def wait_started(proc: Proc, timeout: float = START_WAIT) -> None:
    """Wait for the state that proves a runtime started: ready (it polls for work), or
    its init failed (an emulator says so; a `serve` exits). Either is then compared: an
    emulator answers every invoke with the init error, an exited runtime answers nothing."""
    url = f"http://127.0.0.1:{proc.port}/_worker/ready"
    end = time.monotonic() + timeout
    while proc.proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            pass
        if any(_emulator_error(line) for line in proc.logs().splitlines()):
            return
        if time.monotonic() > end:
            raise TimeoutError(f"not started within {timeout:.0f}s:\n{proc.logs()}")
        time.sleep(0.02)


def _emulator_error(line: str) -> bool:
    if '"worker.emulator"' not in line:
        return False
    try:
        parsed = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return isinstance(parsed, dict) and parsed.get("level") == "ERROR"


#: Where a Text record begins: `[LEVEL]` and a tab.
_RECORD = re.compile(r"(?<=.)(?=\[(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)\]\t)")


def apart(lines: list[str]) -> list[str]:
    """Lines with the records that ran into them read apart (the package's docstring says
    when awslambdaric's do)."""
    out: list[str] = []
    for line in lines:
        out.extend(_RECORD.split(line))
    return out
