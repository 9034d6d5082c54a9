from __future__ import annotations

import os
import time
from pathlib import Path

from worker.context import ClientContext, CognitoIdentity, Function, LambdaContext
from worker.jobs import Job


def function(tmp_path: Path) -> Function:
    return Function(
        name="fn",
        version="$LATEST",
        arn="arn:aws:lambda:us-east-1:000000000000:function:fn",
        memory_limit_in_mb="128",
        log_group_name="/aws/lambda/fn",
        log_stream_name="stream",
        worker_tmp=str(tmp_path),
    )


def make(tmp_path: Path, deadline: float) -> LambdaContext:
    job = Job(
        {},
        None,
        "rid",
        trace_id="Root=1-abc",
        identity=CognitoIdentity("id", "pool"),
        client_context=ClientContext.from_json(
            {"client": {"installation_id": "i"}, "custom": {"a": 1}, "env": {"b": 2}}
        ),
        tenant_id="t1",
        kind="sqs",
        route="sqs:arn:q",
    )
    return LambdaContext(function(tmp_path), job, deadline, "default")


def test_lambda_attributes(tmp_path: Path) -> None:
    ctx = make(tmp_path, time.time() + 2)
    assert 1000 < ctx.get_remaining_time_in_millis() <= 2000
    assert ctx.identity.cognito_identity_pool_id == "pool"
    assert ctx.client_context is not None and ctx.client_context.client is not None
    assert ctx.client_context.client.installation_id == "i"
    assert ctx.client_context.custom == {"a": 1}
    # What the source told about the call is the job's, read through the context.
    assert (ctx.aws_request_id, ctx.trace_id, ctx.tenant_id) == ("rid", "Root=1-abc", "t1")
    assert (ctx.kind, ctx.route, ctx.lane) == ("sqs", "sqs:arn:q", "default")
    assert make(tmp_path, time.time() - 5).get_remaining_time_in_millis() == 0


def test_tmp_is_private_lazy_and_removed(tmp_path: Path) -> None:
    ctx = make(tmp_path, time.time() + 2)
    assert os.listdir(tmp_path) == []  # nothing made until asked for
    scratch = ctx.tmp
    assert scratch == ctx.tmp and Path(scratch).parent == tmp_path
    assert os.stat(scratch).st_mode & 0o777 == 0o700
    Path(scratch, "sub").mkdir()
    Path(scratch, "sub", "f").write_text("x")
    ctx.close()
    assert not os.path.exists(scratch)


def test_shared_attributes_come_from_the_function(tmp_path: Path) -> None:
    ctx = make(tmp_path, time.time() + 2)
    assert (ctx.function_name, ctx.function_version, ctx.memory_limit_in_mb) == (
        "fn",
        "$LATEST",
        "128",
    )
    assert (ctx.log_group_name, ctx.log_stream_name) == ("/aws/lambda/fn", "stream")
    assert ctx.invoked_function_arn == "arn:aws:lambda:us-east-1:000000000000:function:fn"
    job = Job({}, None, "rid2", invoked_arn="arn:x")
    called = LambdaContext(function(tmp_path), job, 0.0, "default")
    assert called.invoked_function_arn == "arn:x"
    # No identity from the caller: Lambda's empty one, both fields None.
    assert called.identity.cognito_identity_id is None
    assert called.identity.cognito_identity_pool_id is None
