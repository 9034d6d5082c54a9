"""`worker sqs` under ten kill -9 while 10,000 messages flow through moto: none is lost,
every success is deleted, and each replacement worker takes up the work."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

from tests.test_sqs import counts, lines, new_queue, send
from tests.test_supervisor import wait_for

MESSAGES = 10_000
KILLS = 10


def test_ten_kills_while_ten_thousand_messages_flow(sqs_worker, moto, tmp_path: Path) -> None:
    # A killed batch's messages come back once their visibility timeout (2 s) runs out.
    url = new_queue(moto, visibility=2)
    bodies = [f"m{i:05d}" for i in range(MESSAGES)]
    done, store = tmp_path / "done", tmp_path / "store"
    done.mkdir()
    srv = sqs_worker(
        "tests.apps.sqs_apps.tally",
        url,
        "--workers",
        "2",
        "--concurrency",
        "16",
        env={"SQS_DONE": str(done), "SQS_STORE": str(store), "WORKER_SQS_WAIT_SECONDS": "1"},
    )
    sender = threading.Thread(target=send, args=(moto, url, bodies))
    sender.start()  # messages flow in while the workers consume and are killed

    def markers() -> list[str]:
        return [name for name in os.listdir(done) if not name.startswith(".")]

    def processed() -> int:
        return len(markers())

    replaced_within: list[float] = []
    replacements: list[int] = []
    for k in range(KILLS):
        wait_for(lambda k=k: processed() >= 400 * (k + 1), f"steady flow before kill {k + 1}", 120)
        before = set(srv.children())
        victim = random.choice(sorted(before))
        os.kill(victim, signal.SIGKILL)  # mid-batch: every slot holds a batch
        killed_at = time.monotonic()
        wait_for(lambda b=before: len(set(srv.children()) - b) == 1, "a replacement worker", 5)
        replaced_within.append(time.monotonic() - killed_at)
        replacements.extend(set(srv.children()) - before)
    sender.join()
    wait_for(
        lambda: processed() >= MESSAGES and counts(moto, url) == (0, 0),
        "every message processed and deleted",
        timeout=300,
    )
    assert sorted(markers()) == bodies  # zero lost
    assert counts(moto, url) == (0, 0)  # every success deleted, nothing left in flight
    by_pid = {int((done / b).read_text()) for b in bodies}
    # Each replacement took up the work (the last one may have been killed before it did).
    assert len(set(replacements[:-1]) & by_pid) >= KILLS - 2, (replacements, by_pid)
    assert max(replaced_within) < 1.0, replaced_within
    duplicates = [x for x in lines(store) if x.startswith("duplicate")]
    print(
        f"kills: {KILLS}, replaced within {max(replaced_within) * 1000:.0f} ms at most"
        f" (median {sorted(replaced_within)[KILLS // 2] * 1000:.0f} ms), lost: 0 of {MESSAGES},"
        f" redelivered after a cut delete: {len(duplicates)}"
    )
