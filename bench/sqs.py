"""SQS throughput: `worker sqs` with a no-op handler vs a plain boto3 loop, same moto server.

Each round fills a fresh queue on one moto server (127.0.0.1) with COUNT messages, then
times how long each consumer takes to empty it (every message received and deleted):
`worker sqs bench.apps.noop` (2 worker processes, 2 pollers each, batches of 10,
`DeleteMessageBatch`) and `bench.sqs_loop` (receive 10, process, delete each). Reported:
messages/s (median of the rounds), the ratio, and where the CPU went — moto's own share
of the machine while our consumer ran, since moto (one Python process) may be the
ceiling.

    python -m bench.sqs [--rounds 3] [--count 3000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3

from bench.harness import (
    RESULTS,
    ROOT,
    free_port,
    median,
    proc_cpu_seconds,
    publish,
    python,
    results_dir,
    server,
    tree_cpu_seconds,
)
from worker.config import cores

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextlib.contextmanager
def moto_server() -> Iterator[tuple[str, int]]:
    port = free_port()
    argv = [python(), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with server(argv, port, "/moto-api/", ready_within=60) as proc:
        yield f"http://127.0.0.1:{port}", proc.pid


def fill(sqs: Any, count: int) -> str:
    url: str = sqs.create_queue(QueueName=f"bench-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    for i in range(0, count, 10):
        entries = [{"Id": str(j), "MessageBody": f'{{"n": {i + j}}}'} for j in range(10)]
        sqs.send_message_batch(QueueUrl=url, Entries=entries[: count - i])
    return url


def remaining(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def run_ours(sqs: Any, url: str, env: dict[str, str], moto_pid: int) -> dict[str, float]:
    port = free_port()
    argv = [
        python(),
        "-m",
        "worker",
        "sqs",
        "bench.apps.noop",
        "--queue-url",
        url,
        "--port",
        str(port),
        "--batch-size",
        "10",
    ]
    env = {**env, "AWS_LAMBDA_LOG_LEVEL": "WARNING", "WORKER_SQS_WAIT_SECONDS": "1"}
    moto0 = proc_cpu_seconds(moto_pid)
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        while remaining(sqs, url):
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        worker_cpu = tree_cpu_seconds(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"seconds": elapsed, "moto_cpu": proc_cpu_seconds(moto_pid) - moto0, "cpu": worker_cpu}


def run_loop(url: str, count: int, env: dict[str, str], moto_pid: int) -> dict[str, float]:
    moto0 = proc_cpu_seconds(moto_pid)
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    res = subprocess.run(
        [python(), "-m", "bench.sqs_loop", url, str(count)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    assert res.returncode == 0
    elapsed = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (usage.ru_utime - usage0.ru_utime) + (usage.ru_stime - usage0.ru_stime)
    return {"seconds": elapsed, "moto_cpu": proc_cpu_seconds(moto_pid) - moto0, "cpu": cpu}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    # Moto's cost per call grows with the queue's length (it scans every message):
    # 200 messages drained at ~105/s, 1,000 at ~38/s. Keep the queue short.
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    out = results_dir(args.out)
    runs: dict[str, list[dict[str, float]]] = {"worker sqs": [], "boto3 loop": []}
    with moto_server() as (endpoint, moto_pid):
        env = {**os.environ, **CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "PYTHONPATH": str(ROOT)}
        sqs = boto3.client("sqs", endpoint_url=endpoint, **_client_args())
        for r in range(args.rounds):
            order = list(runs) if r % 2 == 0 else list(runs)[::-1]
            for name in order:
                print(
                    f"[sqs] round {r + 1}/{args.rounds} {name}: {args.count} messages", flush=True
                )
                url = fill(sqs, args.count)
                if name == "worker sqs":
                    runs[name].append(run_ours(sqs, url, env, moto_pid))
                else:
                    runs[name].append(run_loop(url, args.count, env, moto_pid))
    summary: dict[str, Any] = {"count": args.count, "runtimes": {}}
    for name, samples in runs.items():
        seconds = median([s["seconds"] for s in samples])
        moto_share = median([s["moto_cpu"] / s["seconds"] for s in samples])
        summary["runtimes"][name] = {
            "msgs_per_s": args.count / seconds,
            "seconds": seconds,
            "moto_cpu_cores": moto_share,
            "consumer_cpu_ms_per_msg": median([s["cpu"] for s in samples]) / args.count * 1000,
        }
    ours, theirs = summary["runtimes"]["worker sqs"], summary["runtimes"]["boto3 loop"]
    summary["ratio"] = ours["msgs_per_s"] / theirs["msgs_per_s"]
    summary["method"] = {
        "rounds": args.rounds,
        "statistic": "median of rounds",
        "cores": cores(),
        "moto": "one moto server process on 127.0.0.1",
    }
    publish(out, "sqs", summary, table(summary))
    return summary


def _client_args() -> dict[str, str]:
    return {
        "region_name": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }


def table(summary: dict[str, Any]) -> str:
    lines = [
        "| consumer | messages/s | seconds for the queue | moto CPU (cores busy) "
        "| consumer CPU ms/msg (incl. start) | vs boto3 loop |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in summary["runtimes"].items():
        ratio = "baseline" if name == "boto3 loop" else f"**{summary['ratio']:.2f}x**"
        lines.append(
            f"| {name} | {s['msgs_per_s']:,.0f} | {s['seconds']:.1f} | "
            f"{s['moto_cpu_cores']:.2f} of {summary['method']['cores']} | "
            f"{s['consumer_cpu_ms_per_msg']:.2f} | {ratio} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
