from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

import pytest

from worker.errors import LambdaError
from worker.initphase import InitResponder, run_init


def _status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as err:
        return err.code


def test_responder_answers_until_stopped() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    with InitResponder([sock]):
        assert _status(port, "/_worker/health") == 200
        assert _status(port, "/_worker/ready") == 503
        assert _status(port, "/2015-03-31/functions/f/invocations") == 503
    sock.close()


def test_init_time_limit() -> None:
    with pytest.raises(LambdaError) as info:
        run_init(lambda: time.sleep(5), 0.2)
    assert info.value.error_type == "Runtime.InitTimeout"
    assert run_init(lambda: 42, 5) == 42
