"""Pooled AWS clients against moto: one per process and service, async and sync."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tests.client import invoke
from worker.aws import Clients, endpoint


async def test_concurrent_slots_share_one_client(
    moto: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in moto.env.items():
        monkeypatch.setenv(key, value)
    clients = Clients(max_pool_connections=64)
    try:
        got = await asyncio.gather(*(clients.get("sqs") for _ in range(20)))
        assert len({id(c) for c in got}) == 1  # created once, however many asked at once
        assert got[0].meta.config.max_pool_connections == 64
        assert got[0].meta.endpoint_url == moto.endpoint  # AWS_ENDPOINT_URL honoured
        other = await clients.get("sqs", region_name="eu-west-1")
        assert other is not got[0]  # one client per (service, region, endpoint)
        sync = await asyncio.to_thread(clients.client, "sqs")
        assert sync is clients.get_sync("sqs")  # a thread gets the process's boto3 client
    finally:
        await clients.close()


def test_service_specific_endpoints_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:2")
    assert endpoint("s3") == "http://127.0.0.1:2"
    assert endpoint("sqs") == "http://127.0.0.1:1"


@pytest.mark.parametrize("handler", ["async_buckets", "sync_buckets"])
async def test_handlers_reach_aws_through_the_pool(serve, moto: Any, handler: str) -> None:
    bucket = f"b-{uuid.uuid4().hex[:10]}"
    moto.client("s3").create_bucket(Bucket=bucket)
    srv = serve(f"tests.apps.aws_apps.{handler}", "--workers", "1", env=moto.env)
    answers = [(await invoke(srv.port, {})).json() for _ in range(3)]
    assert all(bucket in a["buckets"] for a in answers)  # type: ignore[index]
    assert len({a["client"] for a in answers}) == 1  # type: ignore[index]


async def test_a_sync_handler_on_the_loop_gets_the_pooled_boto3_client(emulate, moto: Any) -> None:
    """Lambda mode with one slot runs a sync handler on the loop's thread, where the pool
    hides the running loop: `context.client` gives it a boto3 client there too."""
    bucket = f"b-{uuid.uuid4().hex[:10]}"
    moto.client("s3").create_bucket(Bucket=bucket)
    emu = emulate("tests.apps.aws_apps.sync_buckets", env=moto.env)
    answers = [(await invoke(emu.port, {})).json() for _ in range(3)]
    assert all(bucket in a["buckets"] for a in answers)  # type: ignore[index]
    assert len({a["client"] for a in answers}) == 1  # type: ignore[index]
