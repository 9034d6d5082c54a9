"""Private scratch space: a TMPDIR per worker process and a directory per invocation."""

from __future__ import annotations

import os
import shutil
import tempfile


def make_root(parent: str | None = None) -> str:
    """The supervisor's directory (mode 0700) that holds every worker's TMPDIR."""
    return tempfile.mkdtemp(prefix="runtime-worker-", dir=parent or "/tmp")


def worker_dir(root: str, pid: int) -> str:
    """Where worker `pid` keeps its TMPDIR: derived from the pid so the supervisor can
    clean it after a crash without asking the dead process."""
    return os.path.join(root, f"w{pid}")


def enter_worker_dir(root: str) -> str:
    """Create this process's TMPDIR (0700) and make `tempfile` and children use it."""
    path = worker_dir(root, os.getpid())
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    os.environ["TMPDIR"] = path
    tempfile.tempdir = path
    return path


def remove(path: str | None) -> None:
    if path:
        shutil.rmtree(path, ignore_errors=True)


def invocation_dir(worker_tmp: str) -> str:
    """A fresh directory for one invocation, private to it (0700)."""
    return tempfile.mkdtemp(prefix="inv-", dir=worker_tmp)
