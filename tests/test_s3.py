"""handlers.s3 end to end: an S3 put event through `serve`'s Invoke API, against moto S3."""

from __future__ import annotations

import uuid
from typing import Any

from handlers.s3 import transform
from tests import events
from tests.client import invoke


def put_event(bucket: str, key: str) -> dict[str, Any]:
    event = events.s3()[0][2]
    record = event["Records"][0]
    record["s3"]["bucket"]["name"] = bucket
    record["s3"]["object"]["key"] = key
    return event


def test_transform_normalises_text() -> None:
    assert transform(b"a  \r\nb\t\r\n") == b"a\nb\n"


async def test_a_put_event_writes_the_processed_object(serve, moto: Any) -> None:
    s3 = moto.client("s3")
    bucket = f"b-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(
        Bucket=bucket, Key="in/hello world.txt", Body=b"one  \r\ntwo\r\n", ContentType="text/plain"
    )
    srv = serve("handlers.s3.handler", "--workers", "1", env=moto.env)

    # S3 sends keys URL-encoded: the space arrives as "+".
    answer = (await invoke(srv.port, put_event(bucket, "in/hello+world.txt"))).json()
    assert answer["processed"][0]["output"] == "processed/in/hello world.txt"  # type: ignore[index]
    out = s3.get_object(Bucket=bucket, Key="processed/in/hello world.txt")
    assert out["Body"].read() == b"one\ntwo\n"
    assert out["ContentType"] == "text/plain"
    assert out["Metadata"] == {"source-key": "in/hello world.txt"}

    # Its own output fires the notification too: skipped, no processed/processed/.
    again = (await invoke(srv.port, put_event(bucket, "processed/in/hello+world.txt"))).json()
    assert again["processed"] == [] and again["skipped"][0]["skipped"] == "own output"  # type: ignore[index]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(keys) == ["in/hello world.txt", "processed/in/hello world.txt"]
