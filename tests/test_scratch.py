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


def test_a_worker_creates_files_private_to_its_user(tmp_path: Path) -> None:
    root = scratch.make_root(str(tmp_path))
    pid = os.fork()
    if pid == 0:  # a worker process enters its directory, then writes a file
        code = 1
        try:
            path = scratch.enter_worker_dir(root)
            with open(os.path.join(path, "f"), "w") as f:
                f.write("x")
            os.mkdir(os.path.join(path, "d"))
            code = 0
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0
    made = Path(scratch.worker_dir(root, pid))
    assert (made / "f").stat().st_mode & 0o777 == 0o600
    assert (made / "d").stat().st_mode & 0o777 == 0o700


def test_roots_of_dead_supervisors_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)  # a pid no process has now
    dead = tmp_path / f"{scratch.PREFIX}{pid}-abc"
    (dead / "w1").mkdir(parents=True)
    live = tmp_path / f"{scratch.PREFIX}{os.getpid()}-abc"
    live.mkdir()
    other = tmp_path / "runtime-worker-notapid"
    other.mkdir()
    root = scratch.make_root(str(tmp_path))
    assert not dead.exists() and live.exists() and other.exists()
    assert Path(root).name.startswith(f"{scratch.PREFIX}{os.getpid()}-")
