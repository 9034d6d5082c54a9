from __future__ import annotations

import io
import threading

from worker.telemetry.lines import LineStream


def test_lines_printed_at_once_by_many_threads_stay_whole() -> None:
    out = io.StringIO()
    stream = LineStream(out)  # type: ignore[arg-type]
    start = threading.Barrier(8)

    def printer(n: int) -> None:
        start.wait()
        for i in range(200):
            print(f"thread {n} line {i}", file=stream)  # two writes: the text, then "\n"

    threads = [threading.Thread(target=printer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = out.getvalue().split("\n")
    assert lines[-1] == ""
    expected = {f"thread {n} line {i}" for n in range(8) for i in range(200)}
    assert sorted(lines[:-1]) == sorted(expected)


def test_a_partial_line_waits_for_its_end_or_a_flush() -> None:
    out = io.StringIO()
    stream = LineStream(out)  # type: ignore[arg-type]
    stream.write("progress: ")
    assert out.getvalue() == ""
    stream.write("50%\nnext")
    assert out.getvalue() == "progress: 50%\n"
    stream.flush()
    assert out.getvalue() == "progress: 50%\nnext"


def test_each_threads_partial_line_is_its_own() -> None:
    out = io.StringIO()
    stream = LineStream(out)  # type: ignore[arg-type]
    stream.write("main ")
    other = threading.Thread(target=lambda: stream.write("other\n"))
    other.start()
    other.join()
    stream.write("done\n")
    assert out.getvalue() == "other\nmain done\n"
