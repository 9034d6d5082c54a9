"""The baseline SQS consumer: a plain boto3 loop (receive 10, process, delete each).

    python -m bench.sqs_loop QUEUE_URL COUNT

Stops after COUNT messages and prints the SQS calls it made. What many ECS worker services
run today.
"""

from __future__ import annotations

import sys

import boto3


def noop(body: str) -> None:
    return None


def main() -> None:
    url, count = sys.argv[1], int(sys.argv[2])
    sqs = boto3.client("sqs")
    print("ready", flush=True)  # the benchmark starts the flow once the consumer is up
    done = calls = 0
    while done < count:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        calls += 1
        for message in got.get("Messages", []):
            noop(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            calls += 1
            done += 1
    print(calls, flush=True)


if __name__ == "__main__":
    main()
