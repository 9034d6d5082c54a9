"""The compatibility suite: real handlers from the ecosystem, run unchanged under the official
runtime and under this one, compared answer for answer and log line for log line.

Runtimes (see `runtimes.py`): awslambdaric 4.2.2 behind `worker emulate` is the reference;
`worker lambda` behind the same emulator, `worker serve` on its Invoke API, and, for apps
that answer HTTP API (v2) events, another `worker serve` sent the real HTTP request the
event describes (its answer is compared with what API Gateway makes of the reference's
result, `compare.through_http_api`). For the web apps, the app itself (`module:app`) also
runs without Mangum or apig-wsgi: under `worker lambda`'s built-in adapter (compared with
the adapter's answer) and natively under `worker serve` (sent the real request). Each
runtime is started once per test module, all of a module's cases run against it, in
order, each case once per runtime.

What is the same for every runtime, by construction:
- the function's identity, as Lambda's variables give it (`runtimes.IDENTITY`: name,
  memory size, region), except in the one case that checks `serve` without them;
- the caller's X-Ray trace header on every call (`wire.TRACE`);
- for the concurrency case, `AWS_LAMBDA_LOG_FORMAT=JSON` (Lambda Managed Instances
  require JSON logs, and this runtime writes JSON there whatever the variable says).

Intended differences, left out of the comparison (nothing else is):
- values that are per invocation or per moment: request ids, timestamps, EMF's
  `Timestamp`, pids, durations (`compare.normalise` lists each form);
- a stack trace is compared as its frames (file basename and function), not its text;
- the lines the runtime and the emulator write of themselves: JSON lines of the `worker.*`
  loggers, and the runtime's own EMF metrics (the lines with a `lane` dimension, see
  `worker/telemetry/emf.py`). awslambdaric writes none, and the platform's START/END/REPORT
  lines have no counterpart in the emulator;
- the headers the HTTP layer owns (`date`, `content-length`, `connection`,
  `transfer-encoding`, the request id header), for API Gateway and `serve` alike;
- how a header sent several times is written: as one field with the values joined by
  commas (API Gateway's form) or as several fields (a server's, e.g. `serve` running a
  Starlette app natively), which RFC 9110 §5.3 makes equal (`set-cookie` excepted);
- the order of the keys of a function's result (API Gateway reads it as JSON); the order
  of the keys of a JSON log line is compared;
- where a line ends: awslambdaric writes a Text record holding a traceback with no newline
  after it, so on a stream the next record continues its last line, and its processes'
  `print()`s (two writes each) can land inside one another's lines. Ours end every
  record's line and keep each line whole (`worker.telemetry.lines`); on Lambda, where
  records are frames, awslambdaric's records do not run together either. The reference's
  lines are read apart where records ran together (`runtimes.apart`).

A module whose runtimes cannot start fails at its fixture with the runtime's log; a case
whose lines are missing waits `runtimes.LOG_WAIT` for them before it fails.
"""
