"""A small HTTP client for the suite: exact headers out, every header line back, in order."""

from __future__ import annotations

import http.client
from dataclasses import dataclass, field

import orjson

#: The Invoke API's path (any function name: each runtime runs one).
INVOKE = "/2015-03-31/functions/function/invocations"
#: The X-Ray trace header every call carries, as an instrumented caller's would: each
#: runtime must hand this one to the handler (`_X_AMZN_TRACE_ID`), not one of its own.
TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)  # names lowercased
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def json(self) -> object:
        return orjson.loads(self.body)


def exchange(
    port: int,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes = b"",
    timeout: float = 30.0,
) -> Answer:
    """One request on a fresh connection to 127.0.0.1:`port`, sending exactly `headers`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders(body or None)
        response = conn.getresponse()
        data = response.read()  # a chunked answer is read whole
        return Answer(response.status, [(k.lower(), v) for k, v in response.getheaders()], data)
    finally:
        conn.close()


def invoke(port: int, event: object, timeout: float = 30.0) -> Answer:
    """`POST` the event to the Invoke API, as `aws lambda invoke` does."""
    body = orjson.dumps(event)
    headers = [
        ("host", "127.0.0.1"),
        ("content-type", "application/json"),
        ("x-amzn-trace-id", TRACE),
        ("content-length", str(len(body))),
    ]
    return exchange(port, "POST", INVOKE, headers, body, timeout)
