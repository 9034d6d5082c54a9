"""SQS throughput: `worker sqs` with a no-op handler vs a plain boto3 loop, same moto server.

Each round starts a consumer on a fresh queue of one moto server (127.0.0.1), waits until
it is up, then feeds COUNT messages as a steady flow: a producer here keeps the backlog
(visible and in flight) near BACKLOG messages, as a live queue in front of a worker
service looks. The time runs from the first message sent to the queue being empty again
(every message received and deleted). Consumers: `worker sqs bench.apps.noop` (2 worker
processes, 2 pollers each, batches of 10, `DeleteMessageBatch`) and `bench.sqs_loop`
(receive 10, process, delete each). Reported: messages/s (median of the rounds), the
ratio, and where the CPU went — moto's own share of the machine, since moto (one Python
process, every call under one lock) may be the ceiling.

Why a bounded backlog: moto scans every message of a queue on each receive and delete,
so a pre-filled queue of 500 measured moto's scans (both consumers ~70 messages/s) rather
than the consumers.

    python -m bench.sqs [--rounds 3] [--count 2000] [--backlog 100]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
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
    pythonpath,
    results_dir,
    server,
    tree_cpu_seconds,
    worker_argv,
    worker_metrics,
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


def new_queue(sqs: Any) -> str:
    url: str = sqs.create_queue(QueueName=f"bench-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    return url


def remaining(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def flow(sqs: Any, url: str, count: int, backlog: int) -> tuple[float, int]:
    """Send `count` messages keeping between `backlog` and twice that waiting; the seconds
    until all are gone, and how many times the backlog was read.

    Each look at the backlog is a moto call too, so it is paced by the drain rate (about
    two per `backlog` messages, whatever the consumer's speed): polling on a timer would
    load moto more during a slow consumer's longer run."""
    started = time.monotonic()
    sent = looks = 0
    rate, last = 0.0, (started, 0)
    while True:
        waiting = remaining(sqs, url)
        looks += 1
        now, done = time.monotonic(), sent - waiting
        if now > last[0] and done > last[1]:
            seen = (done - last[1]) / (now - last[0])
            rate = seen if rate == 0.0 else 0.5 * rate + 0.5 * seen
        last = (now, done)
        if sent >= count and waiting == 0:
            return now - started, looks
        if sent < count and waiting < backlog:
            for _ in range(0, min(2 * backlog - waiting, count - sent), 10):
                batch = min(10, count - sent)
                entries = [
                    {"Id": str(j), "MessageBody": f'{{"n": {sent + j}}}'} for j in range(batch)
                ]
                sqs.send_message_batch(QueueUrl=url, Entries=entries)
                sent += batch
            continue
        # Sleep until the consumer has about brought the backlog down to the refill mark.
        target = backlog if sent < count else 0
        time.sleep(min(1.0, max(0.005, (waiting - target + 1) / (rate or 100.0))))


def calls_made(port: int, count: int) -> int:
    """Our consumer's SQS calls (receives and deletes), from its metrics once every process
    has published the deletion of all `count` messages (snapshots are written each tick)."""
    end = time.monotonic() + 10
    while True:
        text = worker_metrics(port)
        figures = {
            name: float(value)
            for name, value in re.findall(r"^(worker_sqs_\S+) (\S+)$", text, re.MULTILINE)
        }
        deleted = figures.get('worker_sqs_messages_total{outcome="deleted"}', 0.0)
        if deleted >= count or time.monotonic() > end:
            return int(figures["worker_sqs_receives_total"] + figures["worker_sqs_deletes_total"])
        time.sleep(0.2)


def run_ours(
    sqs: Any, count: int, backlog: int, env: dict[str, str], moto: int
) -> dict[str, float]:
    url = new_queue(sqs)
    port = free_port()
    argv = worker_argv("sqs", "bench.apps.noop", port, "--queue-url", url, "--batch-size", "10")
    extra = {**env, "AWS_LAMBDA_LOG_LEVEL": "WARNING", "WORKER_SQS_WAIT_SECONDS": "1"}
    with server(argv, port, "/_worker/ready", env=extra) as proc:  # adds ours and PYTHONPATH
        cpu0, moto0 = tree_cpu_seconds(proc.pid), proc_cpu_seconds(moto)
        seconds, looks = flow(sqs, url, count, backlog)
        cpu = tree_cpu_seconds(proc.pid) - cpu0
        moto_cpu = proc_cpu_seconds(moto) - moto0
        calls = calls_made(port, count)
    return {"seconds": seconds, "moto_cpu": moto_cpu, "cpu": cpu, "looks": looks, "calls": calls}


def run_loop(
    sqs: Any, count: int, backlog: int, env: dict[str, str], moto: int
) -> dict[str, float]:
    url = new_queue(sqs)
    argv = [python(), "-m", "bench.sqs_loop", url, str(count)]
    environ = {**os.environ, **env, "PYTHONPATH": pythonpath()}
    proc = subprocess.Popen(argv, cwd=ROOT, env=environ, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        cpu0, moto0 = proc_cpu_seconds(proc.pid), proc_cpu_seconds(moto)
        seconds, looks = flow(sqs, url, count, backlog)
        moto_cpu = proc_cpu_seconds(moto) - moto0
        usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        assert proc.wait(timeout=60) == 0
        calls = int(proc.stdout.read().split()[-1])  # the loop's last line: its SQS calls
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (usage.ru_utime - usage0.ru_utime) + (usage.ru_stime - usage0.ru_stime) - cpu0
    return {"seconds": seconds, "moto_cpu": moto_cpu, "cpu": cpu, "looks": looks, "calls": calls}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--backlog", type=int, default=100)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    out = results_dir(args.out)
    runs: dict[str, list[dict[str, float]]] = {"worker sqs": [], "boto3 loop": []}
    with moto_server() as (endpoint, moto_pid):
        env = {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}  # what a consumer adds to ours
        sqs = boto3.client("sqs", endpoint_url=endpoint, **_client_args())
        for r in range(args.rounds):
            order = list(runs) if r % 2 == 0 else list(runs)[::-1]
            for name in order:
                print(
                    f"[sqs] round {r + 1}/{args.rounds} {name}: {args.count} messages", flush=True
                )
                run = run_ours if name == "worker sqs" else run_loop
                runs[name].append(run(sqs, args.count, args.backlog, env, moto_pid))
    summary: dict[str, Any] = {"count": args.count, "backlog": args.backlog, "runtimes": {}}
    for name, samples in runs.items():
        seconds = median([s["seconds"] for s in samples])
        moto_share = median([s["moto_cpu"] / s["seconds"] for s in samples])
        summary["runtimes"][name] = {
            "msgs_per_s": args.count / seconds,
            "seconds": seconds,
            "moto_cpu_cores": moto_share,
            "consumer_cpu_ms_per_msg": median([s["cpu"] for s in samples]) / args.count * 1000,
            "moto_ms_per_msg": median([s["moto_cpu"] for s in samples]) / args.count * 1000,
            "backlog_looks": median([s["looks"] for s in samples]),
            "calls_per_10": median([s["calls"] for s in samples]) / args.count * 10,
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
        "| consumer CPU ms/msg | moto CPU ms/msg | SQS calls per 10 messages "
        "| producer's backlog reads | vs boto3 loop |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summary["runtimes"].items():
        ratio = "baseline" if name == "boto3 loop" else f"**{summary['ratio']:.2f}x**"
        lines.append(
            f"| {name} | {s['msgs_per_s']:,.0f} | {s['seconds']:.1f} | "
            f"{s['moto_cpu_cores']:.2f} of {summary['method']['cores']} | "
            f"{s['consumer_cpu_ms_per_msg']:.2f} | {s['moto_ms_per_msg']:.2f} | "
            f"{s['calls_per_10']:.1f} | {s['backlog_looks']:.0f} | {ratio} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
