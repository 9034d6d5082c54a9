"""The container image, proven without a Docker engine: the wheel built as the builder stage
builds it, installed into a fresh venv away from the source tree, and the image's
ENTRYPOINT + CMD run from there in both modes on a read-only root filesystem with only
/tmp writable (Lambda's layout; a private mount namespace), HOME and the working
directory read-only among the rest. Plus hadolint on the Dockerfile and cfn-lint on every
deploy/ template.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client import invoke
from tests.conftest import ROOT, free_port, wait_answering

#: What the Dockerfile's builder stage copies (and .dockerignore lets through).
BUILD_INPUTS = ["pyproject.toml", "setup.py", "README.md", "ext", "worker", "handlers"]


#: Lambda's layout: the root filesystem read-only, /tmp writable. A private mount namespace
#: gives the command exactly that (nothing outside it sees the change).
READ_ONLY_ROOT = [
    "unshare",
    "-m",
    "--propagation",
    "private",
    "sh",
    "-c",
    'mount --bind /tmp /tmp && mount -o remount,bind,ro / && exec "$@"',
    "sh",
]


def _read_only_root_works() -> bool:
    probe = subprocess.run([*READ_ONLY_ROOT, "touch", "/var/tmp/.rw-probe"], capture_output=True)
    return probe.returncode != 0 and b"Read-only file system" in probe.stderr


class Installed:
    def __init__(self, venv: Path, readonly: Path) -> None:
        self.python = str(venv / "bin" / "python")
        self.readonly = readonly

    def env(self, **extra: str) -> dict[str, str]:
        """The image's environment, but bound to 127.0.0.1 (tests talk to nothing else)."""
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL")}
        return {
            **keep,
            "HOME": str(self.readonly),
            "LAMBDA_TASK_ROOT": str(self.readonly),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "WORKER_HOST": "127.0.0.1",
            **extra,
        }


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    # Outside /tmp: under the read-only root, as an image's site-packages is.
    base = Path(tempfile.mkdtemp(prefix="image-test-", dir="/var/tmp"))
    try:
        src = base / "src"
        src.mkdir()
        for name in BUILD_INPUTS:
            if (ROOT / name).is_dir():
                shutil.copytree(
                    ROOT / name,
                    src / name,
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c"),
                )
            else:
                shutil.copy2(ROOT / name, src / name)
        dist = base / "dist"
        # The builder stage's command, word for word.
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-cache-dir",
                "--no-deps",
                "--wheel-dir",
                str(dist),
                ".",
            ],
            cwd=src,
            check=True,
            capture_output=True,
        )
        wheels = list(dist.glob("runtime_worker-*.whl"))
        assert len(wheels) == 1, wheels
        assert "-cp" in wheels[0].name and "none-any" not in wheels[0].name  # extension built
        venv = base / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--quiet", str(wheels[0])],
            check=True,
            capture_output=True,
        )
        shutil.rmtree(src)
        readonly = base / "task"
        readonly.mkdir()
        readonly.chmod(0o555)
        yield Installed(venv, readonly)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _run(
    installed: Installed, argv: list[str], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    assert _read_only_root_works(), "cannot make a read-only root here (unshare -m)"
    return subprocess.Popen(
        [*READ_ONLY_ROOT, installed.python, "-m", "worker", *argv],
        cwd=installed.readonly,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    wait_answering(f"http://127.0.0.1:{port}/_worker/ready", proc, log.read_text, 60)


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.terminate()
    return proc.wait(timeout=30)


def test_the_installed_package_is_not_the_source_tree(installed: Installed) -> None:
    out = subprocess.run(
        [
            installed.python,
            "-c",
            "import worker, worker.classify as c; print(worker.__file__, c.classify.backend)",
        ],
        cwd=installed.readonly,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path, backend = out.split()
    assert str(ROOT) not in path and "site-packages" in path
    assert backend == "extension"  # the compiled classifier shipped in the wheel


def test_ecs_mode_serves_http_read_only(installed: Installed, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    # ENTRYPOINT ["python", "-m", "worker"] + CMD ["handlers.echo.handler"], no Runtime API.
    proc = _run(installed, ["handlers.echo.handler"], installed.env(WORKER_PORT=str(port)), log)
    try:
        _wait_ready(port, proc, log)
        assert asyncio.run(invoke(port, {"from": "ecs"})).json() == {"from": "ecs"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_worker/health", timeout=2) as r:
            assert r.status == 200  # what the HEALTHCHECK asks
    finally:
        assert _stop(proc) == 0
    assert list(installed.readonly.iterdir()) == []  # nothing written outside /tmp
    assert '"message":"serving"' in log.read_text()


def test_lambda_mode_under_the_emulator_read_only(installed: Installed, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "emulate.log"
    # The emulator sets AWS_LAMBDA_RUNTIME_API for the image's command: Lambda mode.
    argv = [
        "emulate",
        "--port",
        str(port),
        "--",
        installed.python,
        "-m",
        "worker",
        "handlers.echo.handler",
    ]
    proc = _run(installed, argv, installed.env(), log)
    try:
        _wait_ready(port, proc, log)
        assert asyncio.run(invoke(port, {"from": "lambda"})).json() == {"from": "lambda"}
    finally:
        assert _stop(proc) == 0
    assert list(installed.readonly.iterdir()) == []
    # `worker HANDLER` chose Lambda mode: it serves the Runtime API's address, not HTTP.
    assert re.search(r'"message":"serving".*"address":"127\.0\.0\.1:\d+"', log.read_text())


def test_hadolint_passes_on_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or "hadolint"
    res = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("template", sorted(p.name for p in (ROOT / "deploy").glob("*.yaml")))
def test_cfn_lint_passes_on_every_template(template: str) -> None:
    res = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(ROOT / "deploy" / template)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_template_is_linted() -> None:
    assert {p.name for p in (ROOT / "deploy").glob("*.yaml")} == {
        "ecs.yaml",
        "lambda.yaml",
        "lambda-lmi.yaml",
    }
