"""`worker emulate --snapstart`: a real checkpoint of the runtime's process tree with CRIU.

While the runtime waits in `restore/next` (the emulator's snapshot), the emulator tries
what Lambda does at that moment: it checkpoints the whole process tree with CRIU
(`criu dump --leave-running`, so the emulation goes on with the running tree either way),
and logs what came of it. Where CRIU is missing or the kernel or the container does not
allow it (no CAP_CHECKPOINT_RESTORE, a kernel whose vDSO layout this CRIU does not know),
it logs one line saying why and the lifecycle goes on without it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile

log = logging.getLogger("worker.emulator")

#: How long `criu check` and a dump may take before the attempt is given up.
CHECK_TIMEOUT = 10.0
DUMP_TIMEOUT = 60.0


async def _run(argv: list[str], timeout: float) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, f"{argv[1]} took more than {timeout:.0f}s"
    return proc.returncode or 0, out.decode(errors="replace")


def _why(output: str) -> str:
    """What CRIU said went wrong, in its words (its generic "exited" lines left out)."""
    reasons = [
        line.split("): ", 1)[-1]
        for line in output.splitlines()
        if line.startswith("Error") and "exited, status" not in line
    ]
    if reasons:
        return "; ".join(reasons[:2])
    lines = output.strip().splitlines()
    return lines[-1] if lines else "no output"


async def checkpoint(pid: int) -> bool:
    """Checkpoint the tree rooted at `pid`; False (and a log line saying why) when it
    cannot be done here."""
    criu = shutil.which("criu")
    if criu is None:
        log.info("criu: skipped, criu is not installed (apt-get install criu)")
        return False
    code, output = await _run([criu, "check"], CHECK_TIMEOUT)
    if code != 0:
        log.info("criu: skipped, `criu check` failed: %s", _why(output))
        return False
    images = tempfile.mkdtemp(prefix="worker-criu-")
    code, output = await _run(
        [
            criu,
            "dump",
            "--tree",
            str(pid),
            "--images-dir",
            images,
            "--leave-running",
            "--tcp-established",  # the held restore/next is an open connection
            "--ext-unix-sk",
            "--shell-job",
        ],
        DUMP_TIMEOUT,
    )
    if code != 0:
        log.info("criu: the checkpoint failed: %s (images left in %s)", _why(output), images)
        return False
    size = sum(
        os.path.getsize(os.path.join(images, name))
        for name in os.listdir(images)
        if os.path.isfile(os.path.join(images, name))
    )
    log.info(
        "criu: checkpointed the runtime's process tree",
        extra={"fields": {"pid": pid, "images": images, "bytes": size}},
    )
    return True
