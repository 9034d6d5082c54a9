"""The platform's log egress: frames on the log fd (whole, never interleaved across
processes), the fd's variable consumed, and LMI's stdout/stderr connections."""

from __future__ import annotations

import logging
import os
import socket
import struct
import sys
import threading
import time
from pathlib import Path

import pytest

from worker.telemetry import egress
from worker.telemetry.egress import (
    FD_VARIABLE,
    JSON_FRAME_TYPES,
    SOCKET_VARIABLE,
    TEXT_FRAME_TYPES,
    FramedSink,
    StdoutSink,
)


def read_frames(data: bytes) -> list[tuple[bytes, int, bytes]]:
    """(type, timestamp µs, message) of each frame; fails on bytes that are not frames."""
    frames = []
    while data:
        kind, length, stamp = struct.unpack(">4sIQ", data[:16])
        assert kind[:2] == b"\xa5\x5a", f"not a frame: {data[:16]!r}"
        frames.append((kind, stamp, data[16 : 16 + length]))
        assert len(data) >= 16 + length, "a frame cut short"
        data = data[16 + length :]
    return frames


def drain(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_record_of_many_lines_is_one_frame_with_its_type_and_time() -> None:
    read_end, write_end = os.pipe()
    sink = FramedSink(write_end)
    before = time.time_ns() // 1000
    sink.log("[ERROR]\tone\ntwo\nthree\n", TEXT_FRAME_TYPES[logging.ERROR])
    sink.log("no level")
    sink.log_error(["[ERROR] ValueError: bad", "Traceback"], JSON_FRAME_TYPES[logging.ERROR])
    after = time.time_ns() // 1000
    os.close(write_end)
    frames = read_frames(drain(read_end))
    os.close(read_end)
    assert [(kind.hex(), message) for kind, _, message in frames] == [
        ("a55a0017", b"[ERROR]\tone\ntwo\nthree\n"),
        ("a55a0003", b"no level"),  # a record without a level: the plain text type
        ("a55a0016", b"[ERROR] ValueError: bad\nTraceback"),  # lines joined by "\n"
    ]
    assert all(before <= stamp <= after for _, stamp, _ in frames)


def test_stdout_keeps_an_error_report_on_one_line() -> None:
    import io

    out = io.StringIO()
    saved, sys.stdout = sys.stdout, out
    try:
        StdoutSink().log_error(["[ERROR] E: m", "Traceback", "\u00a0 File"], b"")
        StdoutSink().log("line\n")
    finally:
        sys.stdout = saved
    assert out.getvalue() == "[ERROR] E: m\rTraceback\r\u00a0 File\nline\n"


def test_frames_of_several_processes_sharing_the_fd_never_interleave() -> None:
    """Frames far over PIPE_BUF and the pipe's capacity, from four processes at once: a
    write the kernel splits would let another process's frame in, without the lock."""
    read_end, write_end = os.pipe()
    sink = FramedSink(write_end)
    sizes = [100, 70_000, 5_000, 130_000]
    children = []
    for writer in range(4):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(read_end)
                letter = "abcd"[writer]
                for n in range(12):
                    sink.log(letter * sizes[(writer + n) % 4], TEXT_FRAME_TYPES[logging.INFO])
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    os.close(write_end)
    data = drain(read_end)
    os.close(read_end)
    for pid in children:
        assert os.waitpid(pid, 0)[1] == 0
    frames = read_frames(data)
    assert len(frames) == 4 * 12
    for _, _, message in frames:
        assert message == message[:1] * len(message), "a frame holds another's bytes"


def test_the_fd_variable_is_consumed_and_its_fd_framed(monkeypatch: pytest.MonkeyPatch) -> None:
    read_end, write_end = os.pipe()
    monkeypatch.setenv(FD_VARIABLE, str(write_end))
    monkeypatch.delenv(SOCKET_VARIABLE, raising=False)
    sink = egress.open_sink()
    assert isinstance(sink, FramedSink) and sink.fd == write_end
    assert FD_VARIABLE not in os.environ  # the handler's code never sees it
    os.close(write_end)
    os.close(read_end)


def test_a_bad_fd_falls_back_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    env = {FD_VARIABLE: "not-a-number"}
    assert isinstance(egress.open_sink(env), StdoutSink) and not env
    read_end, write_end = os.pipe()
    os.close(write_end)
    assert isinstance(egress.open_sink({FD_VARIABLE: str(write_end)}), StdoutSink)
    os.close(read_end)
    assert "ignoring _LAMBDA_TELEMETRY_LOG_FD" in capsys.readouterr().err


def test_with_lmis_socket_the_framed_fd_is_closed_and_stdout_used() -> None:
    read_end, write_end = os.pipe()
    env = {FD_VARIABLE: str(write_end), SOCKET_VARIABLE: "/nonexistent"}
    assert isinstance(egress.open_sink(env), StdoutSink)
    assert FD_VARIABLE not in env
    with pytest.raises(OSError):
        os.fstat(write_end)
    os.close(read_end)


def test_without_the_socket_the_streams_stay_as_they_are() -> None:
    assert egress.connect_streams({}) is False


def test_an_unreachable_socket_leaves_the_streams_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert egress.connect_streams({SOCKET_VARIABLE: str(tmp_path / "none.sock")}) is False
    assert "cannot connect to the log socket" in capsys.readouterr().err


def test_a_worker_connects_stdout_then_stderr_each_on_its_own_connection(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "egress.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(4)
    server.settimeout(30)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            if egress.connect_streams({SOCKET_VARIABLE: path}):
                os.write(1, b"to stdout\n")
                os.write(2, b"to stderr\n")
                code = 0
        finally:
            os._exit(code)
    received: list[tuple[int, bytes]] = []
    readers = []
    for _ in range(2):
        conn, _ = server.accept()
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        index = len(received)
        received.append((struct.unpack("3i", creds)[0], b""))

        def read(conn: socket.socket = conn, index: int = index) -> None:
            chunks = []
            while chunk := conn.recv(4096):
                chunks.append(chunk)
            received[index] = (received[index][0], b"".join(chunks))
            conn.close()

        readers.append(threading.Thread(target=read))
        readers[-1].start()
    for reader in readers:
        reader.join(timeout=30)
    server.close()
    assert os.waitpid(pid, 0)[1] == 0
    assert received == [(pid, b"to stdout\n"), (pid, b"to stderr\n")]
