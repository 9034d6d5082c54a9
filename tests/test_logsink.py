"""The emulator's log egress: streams on its log socket, frames on its log fd; and what a
runtime's worker processes send there, ours and awslambdaric alike."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.client import invoke
from tests.conftest import Proc
from worker.emulator.logsink import LogSink
from worker.telemetry.egress import FD_VARIABLE, SOCKET_VARIABLE, TEXT_FRAME_TYPES, FramedSink

APP = "tests.apps.logging_apps"
FRAME = re.compile(r"^\[frame 0x([0-9a-f]{8}) (\d+)\] (.*)$")
STREAM = re.compile(r"^\[stream (\d+)\] (.*)$")


# -- the emulator's side, on the test's loop -----------------------------------------------


async def test_each_frame_is_shown_as_one_event() -> None:
    shown: list[str] = []
    sink = LogSink(streams=False, frames=True, write=shown.append)
    await sink.open()
    fd = int(sink.env[FD_VARIABLE])
    assert sink.pass_fds == (fd,)
    writer = FramedSink(fd)
    writer.log("[ERROR]\tone\ntwo\n", TEXT_FRAME_TYPES[logging.ERROR])
    writer.log("plain")
    await sink.close()  # closes the emulator's write end: the reader sees the fd end
    lines = "".join(shown).splitlines()
    assert len(lines) == 2
    first, second = (FRAME.match(line) for line in lines)
    assert first is not None and second is not None
    assert first.group(1) == "a55a0017" and json.loads(first.group(3)) == "[ERROR]\tone\ntwo\n"
    assert abs(int(first.group(2)) / 1e6 - time.time()) < 60
    assert second.group(1) == "a55a0003" and json.loads(second.group(3)) == "plain"


async def test_bytes_that_are_not_frames_are_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    shown: list[str] = []
    sink = LogSink(streams=False, frames=True, write=shown.append)
    await sink.open()
    fd = int(sink.env[FD_VARIABLE])
    os.write(fd, b"hello, this is not a frame at all\n")
    FramedSink(fd).log("after it")
    with caplog.at_level(logging.ERROR, logger="worker.emulator"):
        await sink.close()
    assert shown == []
    assert [r.getMessage() for r in caplog.records] == [
        "the log fd carries bytes that are not a frame; ignoring the rest"
    ]


async def test_each_connection_is_a_stream_of_its_own(caplog: pytest.LogCaptureFixture) -> None:
    shown: list[str] = []
    sink = LogSink(streams=True, frames=False, write=shown.append)
    with caplog.at_level(logging.INFO, logger="worker.emulator"):
        await sink.open()
        path = sink.env[SOCKET_VARIABLE]
        _, first = await asyncio.open_unix_connection(path)
        _, second = await asyncio.open_unix_connection(path)
        first.write(b"a\nb")  # "b" has no newline yet
        await first.drain()
        second.write(b"c\n")
        await second.drain()
        first.write(b"c\nlast")
        for writer in (first, second):
            writer.close()
            await writer.wait_closed()
        while len(sink.readers) < 2:  # both accepted
            await asyncio.sleep(0.01)
        await sink.close()
    lines = "".join(shown).splitlines()
    assert sorted(lines) == ["[stream 1] a", "[stream 1] bc", "[stream 1] last", "[stream 2] c"]
    opened = [r for r in caplog.records if r.getMessage() == "log stream opened"]
    fields = [r.fields for r in opened]  # type: ignore[attr-defined]
    assert fields == [{"stream": 1, "pid": os.getpid()}, {"stream": 2, "pid": os.getpid()}]
    assert not os.path.exists(path)


# -- real runtimes behind `worker emulate` --------------------------------------------------


def wait_for(proc: Proc, done: Callable[[str], bool], what: str, timeout: float = 30.0) -> str:
    """The emulator's output once `done` holds for it (the event that proves the state)."""
    end = time.monotonic() + timeout
    while True:
        text = proc.logs()
        if done(text):
            return text
        if time.monotonic() > end:
            raise AssertionError(f"{what} did not happen within {timeout:.0f}s:\n{text}")
        time.sleep(0.02)


def opened_streams(text: str) -> dict[int, list[int]]:
    """pid → the numbers of the streams it opened, in order."""
    by_pid: dict[int, list[int]] = {}
    for line in text.splitlines():
        if line.startswith("{") and '"log stream opened"' in line:
            fields = orjson.loads(line)
            by_pid.setdefault(fields["pid"], []).append(fields["stream"])
    return by_pid


async def _streams_of_two_workers(proc: Proc, meet: Path) -> None:
    """Two worker processes, each with its own stdout and stderr stream, each line of a
    handler on the stream of the process that wrote it."""
    text = wait_for(proc, lambda t: sum(map(len, opened_streams(t).values())) >= 4, "four streams")
    by_pid = opened_streams(text)
    assert len(by_pid) == 2 and all(len(streams) == 2 for streams in by_pid.values()), by_pid
    meet.mkdir()
    event = {"meet": str(meet), "count": 2}  # both workers take one call each, at once
    answers = await asyncio.gather(invoke(proc.port, event), invoke(proc.port, event))
    answered = {answer.json()["pid"] for answer in answers}  # type: ignore[index]
    assert answered == set(by_pid)
    for pid, (out, err) in by_pid.items():
        wanted = [f"[stream {out}] stdout of {pid}", f"[stream {err}] stderr of {pid}"]
        wait_for(proc, _has_lines(wanted), str(wanted))


def _has_lines(wanted: list[str]) -> Callable[[str], bool]:
    return lambda text: all(line in text.splitlines() for line in wanted)


async def test_our_workers_each_connect_their_stdout_and_stderr(
    emulate: Callable[..., Proc], tmp_path: Path
) -> None:
    env = {"WORKER_PROCESSES": "2", "WORKER_EMF": "0"}
    proc = emulate(f"{APP}.streams", "--concurrency", "2", "--log-socket", "1", env=env)
    await _streams_of_two_workers(proc, tmp_path / "meet")
    # The runtime's own lines are on each worker's stdout stream too.
    text = proc.logs()
    for pid, (out, _) in opened_streams(text).items():
        assert any(
            line.startswith(f"[stream {out}] {{")
            and f'"pid":{pid}' in line
            and "worker started" in line
            for line in text.splitlines()
        )


async def test_awslambdarics_workers_connect_alike(
    emulate: Callable[..., Proc], tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "awslambdaric", f"{APP}.streams"]
    proc = emulate("--concurrency", "2", "--log-socket", "1", command=command)
    await _streams_of_two_workers(proc, tmp_path / "meet")


def frames_after(text: str, mark: int) -> list[tuple[str, Any]]:
    """(type, message) of the frames shown past offset `mark`, the runtime's own left out."""
    out = []
    for line in text[mark:].splitlines():
        found = FRAME.match(line)
        if found is None:
            continue
        message = json.loads(found.group(3))
        if not _own(message):
            out.append((found.group(1), message))
    return out


def _has_frames_after(mark: int) -> Callable[[str], bool]:
    return lambda text: bool(frames_after(text, mark))


def _own(message: str) -> bool:
    """A record of the runtime's own (its "worker" loggers), not the handler's."""
    try:
        logger = orjson.loads(message).get("logger", "") if message.startswith("{") else ""
    except orjson.JSONDecodeError:
        return False
    return isinstance(logger, str) and logger.startswith("worker")


@pytest.mark.parametrize(
    ("settings", "kind"),
    [
        ({}, "a55a0003"),  # Text without a level: awslambdaric's plain handler, no level
        ({"AWS_LAMBDA_LOG_LEVEL": "INFO"}, "a55a0017"),  # text, ERROR
        ({"AWS_LAMBDA_LOG_FORMAT": "JSON"}, "a55a0016"),  # JSON, ERROR
    ],
    ids=["text", "text-level", "json"],
)
async def test_a_record_of_many_lines_arrives_as_one_frame_as_from_awslambdaric(
    emulate: Callable[..., Proc], settings: dict[str, str], kind: str
) -> None:
    env = {"WORKER_EMF": "0", **settings}
    ric_command = [sys.executable, "-m", "awslambdaric", f"{APP}.multiline"]
    seen = {}
    for name, proc in (
        ("awslambdaric", emulate("--log-frames", "1", command=ric_command, env=env)),
        ("ours", emulate(f"{APP}.multiline", "--log-frames", "1", env=env)),
    ):
        mark = len(proc.logs())
        answer = await invoke(proc.port, {})
        rid = answer.headers["x-amzn-requestid"]
        text = wait_for(proc, _has_frames_after(mark), f"{name}'s frame")
        frames = frames_after(text, mark)
        assert len(frames) == 1, frames
        raw = [line for line in text[mark:].splitlines() if not line.startswith("[frame")]
        assert not [line for line in raw if "three" in line], "the record reached stdout"
        got_kind, message = frames[0]
        normalised = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z", "<time>", message)
        seen[name] = (got_kind, normalised.replace(rid, "<request-id>"))
    assert seen["awslambdaric"][0] == kind
    assert "three" in seen["awslambdaric"][1]
    assert seen["ours"] == seen["awslambdaric"]
