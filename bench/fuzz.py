"""Long fuzz runs (bench mode, not CI): the classifier's two implementations, and the HTTP
front against malformed requests.

Classifier: N inputs (default 1,000,000) — mutated corpus events (bit flips, cuts,
splices, duplicated and deleted spans, nesting), random bytes and random JSON — through
the compiled extension and the pure-Python twin; every input must classify without an
exception, and both must agree. HTTP: malformed requests (garbage, broken request lines,
bad headers, lying content lengths, invalid chunking) at a live `worker serve`; each gets
an answer or a closed connection, never a hang, and the process keeps serving.

    python -m bench.fuzz [--inputs 1000000] [--requests 5000] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import socket
import time
from typing import Any

import orjson

from bench.harness import RESULTS, free_port, publish, results_dir, server, worker_argv
from tests.events import corpus
from worker import scan
from worker.classify import Classifier


def mutate(raw: bytes, rnd: random.Random) -> bytes:
    data = bytearray(raw)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(6)
        if not data:
            data = bytearray(rnd.randbytes(8))
        i = rnd.randrange(len(data))
        if op == 0:
            data[i] ^= 1 << rnd.randrange(8)
        elif op == 1:
            del data[i:]
        elif op == 2:
            j = rnd.randrange(len(data))
            data[i:i] = data[j : j + rnd.randint(1, 64)]
        elif op == 3:
            del data[i : i + rnd.randint(1, 32)]
        elif op == 4:
            data[i:i] = rnd.choice([b"{", b"[", b'"', b"\\", b"\xff", b'{"Records":[', b"]}" * 3])
        else:
            data[i:i] = rnd.randbytes(rnd.randint(1, 16))
    return bytes(data)


def random_json(rnd: random.Random, depth: int = 0) -> Any:
    kind = rnd.randrange(6 if depth < 4 else 3)
    if kind == 0:
        return rnd.choice(["sqs", "aws:sqs", "2.0", "", "x" * rnd.randint(0, 50), "\u00e9\u2603"])
    if kind == 1:
        return rnd.randint(-(10**6), 10**6)
    if kind == 2:
        return rnd.choice([None, True, False, 1.5])
    if kind == 3:
        return [random_json(rnd, depth + 1) for _ in range(rnd.randint(0, 4))]
    keys = [
        "Records",
        "version",
        "routeKey",
        "eventSource",
        "source",
        "detail-type",
        "action",
        "requestContext",
        "httpMethod",
        "resource",
        "type",
        "x",
    ]
    return {rnd.choice(keys): random_json(rnd, depth + 1) for _ in range(rnd.randint(0, 5))}


def fuzz_classifier(inputs: int, seed: int) -> dict[str, Any]:
    rnd = random.Random(seed)
    ext, twin = Classifier(), Classifier(scan)
    assert ext.backend != twin.backend, "the extension is not built"
    samples = [orjson.dumps(e) for _, _, e in corpus()]
    disagreements: list[bytes] = []
    started = time.monotonic()
    for n in range(inputs):
        pick = n % 10
        if pick < 7:
            raw = mutate(rnd.choice(samples), rnd)
        elif pick < 9:
            raw = orjson.dumps(random_json(rnd))
        else:
            raw = rnd.randbytes(rnd.randint(0, 256))
        if ext.kind_route(raw) != twin.kind_route(raw):  # an exception ends the run: a bug
            disagreements.append(raw)
        if n and n % 100_000 == 0:
            print(
                f"[fuzz] classifier {n:,}/{inputs:,} ({time.monotonic() - started:.0f}s)",
                flush=True,
            )
    return {
        "inputs": inputs,
        "disagreements": len(disagreements),
        "examples": [d[:200].decode("latin-1") for d in disagreements[:5]],
        "seconds": time.monotonic() - started,
    }


def malformed(rnd: random.Random) -> bytes:
    good = (
        b"POST /2015-03-31/functions/f/invocations HTTP/1.1\r\n"
        b"host: x\r\ncontent-length: 2\r\n\r\n{}"
    )
    choices = [
        lambda: rnd.randbytes(rnd.randint(1, 300)),
        lambda: mutate(good, rnd),
        lambda: b"GET " + rnd.randbytes(20) + b" HTTP/1.1\r\n\r\n",
        lambda: b"POST / HTTP/1.1\r\ncontent-length: 99999999999999999999\r\n\r\n",
        lambda: b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        lambda: b"POST / HTTP/1.1\r\ncontent-length: 10\r\n\r\n{}",  # body shorter than said
        lambda: b"GET / HTTP/1.1\r\n" + b"x: y\r\n" * rnd.randint(100, 300) + b"\r\n",
        lambda: b"GET /" + b"a" * rnd.randint(1000, 80000) + b" HTTP/1.1\r\n\r\n",
    ]
    return rnd.choice(choices)()


def fuzz_http(requests: int, seed: int) -> dict[str, Any]:
    rnd = random.Random(seed)
    port = free_port()
    argv = worker_argv("serve", "handlers.echo.handler", port, "--workers", "2")
    outcomes: dict[str, int] = {}
    env = {
        "AWS_LAMBDA_LOG_LEVEL": "CRITICAL",
        "WORKER_HEADER_TIMEOUT": "1",
        "WORKER_BODY_TIMEOUT": "1",
    }
    with server(argv, port, "/_worker/ready", env=env) as proc:
        for n in range(requests):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                try:
                    sock.sendall(malformed(rnd))
                    sock.shutdown(socket.SHUT_WR)
                    answer = sock.recv(64)
                    key = answer[9:12].decode(errors="replace") if answer else "closed"
                except TimeoutError:
                    key = "HUNG"
                except OSError:
                    key = "reset"
            outcomes[key] = outcomes.get(key, 0) + 1
            if n % 500 == 0:
                assert proc.poll() is None, "the server died"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(
                b"POST /2015-03-31/functions/f/invocations HTTP/1.1\r\nhost: x\r\n"
                b'content-length: 7\r\nconnection: close\r\n\r\n{"a":1}'
            )
            alive = b'{"a":1}' in sock.recv(4096)
    return {"requests": requests, "outcomes": outcomes, "still_serving": alive}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--inputs", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    summary = {
        "classifier": fuzz_classifier(args.inputs, args.seed),
        "http": fuzz_http(args.requests, args.seed),
    }
    c, h = summary["classifier"], summary["http"]
    text = (
        f"Classifier: {c['inputs']:,} inputs, {c['disagreements']} disagreements between the "
        f"extension and the twin, no exception ({c['seconds']:.0f}s).\n\n"
        f"HTTP front: {h['requests']:,} malformed requests, outcomes {h['outcomes']}; "
        f"still serving afterwards: {h['still_serving']}.\n"
    )
    publish(results_dir(args.out), "fuzz", summary, text)
    return summary


if __name__ == "__main__":
    main()
