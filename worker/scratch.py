"""Private scratch space: a TMPDIR per worker process and a directory per invocation.

What "private" can mean depends on the platform: every worker runs as the one UID the
supervisor runs as, so modes keep out other users, not sibling workers (a worker that
looks for another's TMPDIR can read it). Workers create files with umask 077 (0600 files,
0700 directories) so nothing they write is readable by another user of the machine.
"""

from __future__ import annotations

import os
import shutil
import tempfile

PREFIX = "runtime-worker-"


def make_root(parent: str | None = None) -> str:
    """The supervisor's directory (mode 0700) that holds every worker's TMPDIR, named for
    its pid; the roots of supervisors that died without cleaning up go first."""
    parent = parent or "/tmp"
    sweep(parent)
    return tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent)


def sweep(parent: str) -> list[str]:
    """Remove the scratch roots in `parent` whose supervisor is gone (it was killed, so
    nobody removed them): this user's, named for a pid no process has. Returns them."""
    removed: list[str] = []
    uid = os.getuid()
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        pid = entry.name[len(PREFIX) :].partition("-")[0]
        if not entry.name.startswith(PREFIX) or not pid.isdigit():
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat().st_uid != uid:
                continue
        except OSError:
            continue
        if not _alive(int(pid)):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: not ours to judge
    return True


def worker_dir(root: str, pid: int) -> str:
    """Where worker `pid` keeps its TMPDIR: derived from the pid so the supervisor can
    clean it after a crash without asking the dead process."""
    return os.path.join(root, f"w{pid}")


def enter_worker_dir(root: str) -> str:
    """Create this process's TMPDIR (0700), make `tempfile` and children use it, and make
    what this process creates from now on private to its user (umask 077)."""
    path = worker_dir(root, os.getpid())
    os.umask(0o077)
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
