"""Pooled AWS clients: one session per worker process, one client per service and endpoint.

`context.client("s3")` gives every slot of a process the same client, created on first
use with a connection pool as large as the process's slots and closed when the process
stops. In an async handler it is awaited (`s3 = await context.client("s3")`, an
aiobotocore client); from a sync handler's thread it returns a boto3 client (boto3
clients are thread safe), one per process as well. `AWS_ENDPOINT_URL` (moto in tests,
LocalStack, a VPC endpoint) and `AWS_REGION` are honoured.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from typing import Any

Key = tuple[str, str, str | None]  # service, region, endpoint


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def endpoint(service: str) -> str | None:
    """The endpoint override for a service: AWS_ENDPOINT_URL_<SERVICE>, then AWS_ENDPOINT_URL."""
    specific = os.environ.get(f"AWS_ENDPOINT_URL_{service.upper().replace('-', '_')}")
    return specific or os.environ.get("AWS_ENDPOINT_URL") or None


class Clients:
    """This process's clients. Async ones live on its loop; sync ones on any thread."""

    def __init__(self, max_pool_connections: int = 10) -> None:
        self.max_pool = max(10, max_pool_connections)
        self._session: Any = None
        self._async: dict[Key, Any] = {}
        self._creating: dict[Key, asyncio.Future[Any]] = {}
        self._stack = contextlib.AsyncExitStack()
        self._sync: dict[Key, Any] = {}
        self._lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._reopen: tuple[list[Key], list[Key]] = [], []  # closed for a snapshot

    def _key(self, service: str, region_name: str | None, endpoint_url: str | None) -> Key:
        return service, region_name or region(), endpoint_url or endpoint(service)

    async def get(
        self, service: str, region_name: str | None = None, endpoint_url: str | None = None
    ) -> Any:
        """The aiobotocore client for (service, region, endpoint), created once."""
        key = self._key(service, region_name, endpoint_url)
        client = self._async.get(key)
        if client is not None:
            return client
        pending = self._creating.get(key)
        if pending is not None:  # another slot is creating it: share its result
            return await asyncio.shield(pending)
        loop = asyncio.get_running_loop()
        self.loop = loop
        future: asyncio.Future[Any] = loop.create_future()
        self._creating[key] = future
        try:
            from aiobotocore.config import AioConfig
            from aiobotocore.session import get_session

            if self._session is None:
                self._session = get_session()
            creator = self._session.create_client(
                service,
                region_name=key[1],
                endpoint_url=key[2],
                config=AioConfig(max_pool_connections=self.max_pool),
            )
            client = await self._stack.enter_async_context(creator)
            self._async[key] = client
            future.set_result(client)
            return client
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            del self._creating[key]

    def get_sync(
        self, service: str, region_name: str | None = None, endpoint_url: str | None = None
    ) -> Any:
        """The boto3 client for (service, region, endpoint), created once per process."""
        key = self._key(service, region_name, endpoint_url)
        with self._lock:
            client = self._sync.get(key)
            if client is None:
                import boto3
                from botocore.config import Config

                client = boto3.session.Session().client(
                    service,
                    region_name=key[1],
                    endpoint_url=key[2],
                    config=Config(max_pool_connections=self.max_pool),
                )
                self._sync[key] = client
            return client

    def client(self, service: str, **kwargs: Any) -> Any:
        """What `context.client` returns: an awaitable on the loop, else a boto3 client."""
        # A sync handler on the loop's own thread sees no running loop either (the pool
        # hides it): it cannot await.
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self.get_sync(service, **kwargs)
        return self.get(service, **kwargs)

    async def quiesce(self) -> None:
        """Before a snapshot: close every client (their connections with them), noting
        which were open, and let go of the session and the credentials it read."""
        self._reopen = list(self._async), list(self._sync)
        await self.close()
        self._session = None

    async def reopen(self) -> None:
        """After a restore: the clients that were open, made again from a fresh session
        (credentials read anew), so the first invocation does not pay for them."""
        async_keys, sync_keys = self._reopen
        self._reopen = [], []
        for key in async_keys:
            await self.get(*key)
        for key in sync_keys:
            self.get_sync(*key)

    async def close(self) -> None:
        await self._stack.aclose()
        self._async.clear()
        with self._lock:
            for client in self._sync.values():
                client.close()
            self._sync.clear()


#: This process's clients (each worker process makes its own after the fork: sessions and
#: sockets must not be shared across processes).
current = Clients()


def reset(max_pool_connections: int) -> Clients:
    """In a freshly forked worker: a new pool sized for its slots."""
    global current
    current = Clients(max_pool_connections)
    return current
