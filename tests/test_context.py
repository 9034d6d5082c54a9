from __future__ import annotations

import os
import time
from pathlib import Path

from worker.context import ClientContext, CognitoIdentity, LambdaContext


def make(tmp_path: Path, deadline: float) -> LambdaContext:
    return LambdaContext(
        request_id="rid",
        deadline=deadline,
        function_name="fn",
        function_version="$LATEST",
        invoked_function_arn="arn:aws:lambda:us-east-1:000000000000:function:fn",
        memory_limit_in_mb="128",
        log_group_name="/aws/lambda/fn",
        log_stream_name="stream",
        lane="default",
        worker_tmp=str(tmp_path),
        identity=CognitoIdentity("id", "pool"),
        client_context=ClientContext.from_json(
            {"client": {"installation_id": "i"}, "custom": {"a": 1}, "env": {"b": 2}}
        ),
    )


def test_lambda_attributes(tmp_path: Path) -> None:
    ctx = make(tmp_path, time.time() + 2)
    assert 1000 < ctx.get_remaining_time_in_millis() <= 2000
    assert ctx.identity.cognito_identity_pool_id == "pool"
    assert ctx.client_context is not None and ctx.client_context.client is not None
    assert ctx.client_context.client.installation_id == "i"
    assert ctx.client_context.custom == {"a": 1}
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
