from __future__ import annotations

import os
import tempfile
from pathlib import Path

from worker import scratch


def test_worker_dir_is_private_and_becomes_tmpdir(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TMPDIR", "/tmp")
    root = scratch.make_root(str(tmp_path))
    try:
        path = scratch.enter_worker_dir(root)
        assert path == scratch.worker_dir(root, os.getpid())
        assert os.stat(path).st_mode & 0o777 == 0o700
        assert os.environ["TMPDIR"] == path and tempfile.gettempdir() == path
        inv = scratch.invocation_dir(path)
        assert os.path.dirname(inv) == path and os.stat(inv).st_mode & 0o777 == 0o700
    finally:
        tempfile.tempdir = None
        scratch.remove(root)
    assert not os.path.exists(root)
