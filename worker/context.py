"""The context object a handler receives: Lambda's attributes plus `tmp`, `deadline`, `lane`.

Ours besides Lambda's: `tmp`, `deadline`, `lane`, the event's classified `kind` and `route`,
and `params` (path parameters a `Router` matched)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from worker import scratch

if TYPE_CHECKING:
    from worker.jobs import Job

NO_PARAMS: Mapping[str, str] = MappingProxyType({})


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, identity_id: str | None = None, pool_id: str | None = None) -> None:
        self.cognito_identity_id = identity_id
        self.cognito_identity_pool_id = pool_id

    @classmethod
    def from_json(cls, data: Any) -> CognitoIdentity:
        data = data if isinstance(data, dict) else {}
        return cls(data.get("cognitoIdentityId"), data.get("cognitoIdentityPoolId"))


class Client:
    __slots__ = (
        "app_package_name",
        "app_title",
        "app_version_code",
        "app_version_name",
        "installation_id",
    )

    def __init__(self, data: dict[str, Any]) -> None:
        self.installation_id = data.get("installation_id")
        self.app_title = data.get("app_title")
        self.app_version_name = data.get("app_version_name")
        self.app_version_code = data.get("app_version_code")
        self.app_package_name = data.get("app_package_name")


class ClientContext:
    __slots__ = ("client", "custom", "env", "raw")

    def __init__(self, data: dict[str, Any]) -> None:
        self.raw = data  # as the caller sent it, to pass on unchanged
        client = data.get("client")
        self.client = Client(client) if isinstance(client, dict) else None
        self.custom = data.get("custom")
        self.env = data.get("env")

    @classmethod
    def from_json(cls, data: Any) -> ClientContext | None:
        return cls(data) if isinstance(data, dict) else None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Function:
    """What every invocation of one process shares: the function's names, its memory, its
    log group and stream, and the process's scratch directory (built once, not per call)."""

    name: str
    version: str
    arn: str
    memory_limit_in_mb: str
    log_group_name: str
    log_stream_name: str
    worker_tmp: str


class LambdaContext:
    """What `handler(event, context)` gets. Safe to read from any thread.

    A view of its invocation's Job: what the source told about the call (request id, trace
    id, client context, identity, the classified `kind` and `route`…) is read from the job
    when asked for, and what every invocation of the process shares from its `Function`.
    Making one costs four stores per invocation, not one per attribute.

    `tmp` is created on first use (most invocations never touch it) and removed with
    everything in it when the invocation ends. `deadline` is epoch seconds.
    """

    __slots__ = ("_function", "_identity", "_job", "_tmp", "deadline", "lane", "params")

    def __init__(self, function: Function, job: Job, deadline: float, lane: str) -> None:
        self._function = function
        self._job = job
        self.deadline = deadline
        self.lane = lane
        # Path parameters, when a Router matched a template (a shared empty mapping until
        # then: no dict built per invocation).
        self.params: Mapping[str, str] = NO_PARAMS
        self._tmp: str | None = None
        self._identity: CognitoIdentity | None = None

    @property
    def aws_request_id(self) -> str:
        return self._job.request_id

    @property
    def client_context(self) -> ClientContext | None:
        return self._job.client_context

    @property
    def trace_id(self) -> str | None:
        return self._job.trace_id

    @property
    def tenant_id(self) -> str | None:
        return self._job.tenant_id

    @property
    def kind(self) -> str:
        """What the classifier made of the event ("direct" when nothing more is known)."""
        return self._job.kind

    @property
    def route(self) -> str:
        return self._job.route

    @property
    def invoked_function_arn(self) -> str:
        return self._job.invoked_arn or self._function.arn

    @property
    def function_name(self) -> str:
        return self._function.name

    @property
    def function_version(self) -> str:
        return self._function.version

    @property
    def memory_limit_in_mb(self) -> str:
        return self._function.memory_limit_in_mb

    @property
    def log_group_name(self) -> str:
        return self._function.log_group_name

    @property
    def log_stream_name(self) -> str:
        return self._function.log_stream_name

    @property
    def identity(self) -> CognitoIdentity:
        """The caller's Cognito identity (both fields None when there is none)."""
        identity = self._identity
        if identity is None:
            identity = self._identity = self._job.identity or CognitoIdentity()
        return identity

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.time()) * 1000))

    @property
    def tmp(self) -> str:
        if self._tmp is None:
            self._tmp = scratch.invocation_dir(self._function.worker_tmp)
        return self._tmp

    def infer(self, name: str, item: Any) -> Any:
        """`item` through model `name`, batched with every other slot's requests.

        `await context.infer(...)` in an async handler; a plain call from a sync one (it
        blocks its thread until the batch has run). Requests still waiting when the
        invocation's deadline passes never reach the model.
        """
        from worker.inference import host  # only a function that uses a model loads it

        return host.infer(name, item, self.deadline)

    def client(self, service: str, **kwargs: Any) -> Any:
        """This process's pooled AWS client for `service` (`region_name=`, `endpoint_url=`
        optional): `await context.client("s3")` in an async handler (aiobotocore), a plain
        call from a sync one (boto3). Created once per process, shared by all slots."""
        from worker import aws  # only a function that asks for a client loads them

        return aws.current.client(service, **kwargs)

    def close(self) -> None:
        """End of the invocation: its scratch directory goes, whatever is in it."""
        if self._tmp is not None:
            scratch.remove(self._tmp)
            self._tmp = None

    def __repr__(self) -> str:
        return f"LambdaContext(aws_request_id={self.aws_request_id!r}, lane={self.lane!r})"
